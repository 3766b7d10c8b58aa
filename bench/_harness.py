"""Shared machinery for the server benchmarks: databases, gunicorn, wrk, worker memory, tables.

Not a benchmark itself. Everything here talks to 127.0.0.1 only, and everything it starts it
also stops: the gunicorn masters by their own pid, the bench databases by their own name.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
BENCH_KEY = "bench-signing-key-" + "x" * 32  # GATEKEEPER_SECRET_KEYS needs 32+ characters
BENCH_RECORD_KEY = "bench-record-key-" + "x" * 32
MANAGER = "release-manager@example.com"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# The only database names these scripts create and drop; `test` and others are never touched.
PG_NAME_PREFIX = "gatekeeper_bench"


# --- environment and app --------------------------------------------------------------------


def server_environ(
    database_url: str, *, base_url: str = "http://127.0.0.1:5000", **extra: str
) -> dict[str, str]:
    """The process environment without the caller's own GATEKEEPER_* settings, plus ours."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    environ.update(
        GATEKEEPER_ENV="development",
        GATEKEEPER_DATABASE_URL=database_url,
        GATEKEEPER_SECRET_KEYS=BENCH_KEY,
        GATEKEEPER_BASE_URL=base_url,
        # One deployment's keys: the process that builds the data and the servers share them.
        GATEKEEPER_RECORD_KEYS=BENCH_RECORD_KEY,
        GATEKEEPER_AUDIT_SIGNING_KEY_FILE=str(bench_audit_key()),
    )
    environ.update(extra)
    return environ


def bench_audit_key() -> Path:
    """An Ed25519 key for every benchmark process, outside the checkout."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(tempfile.gettempdir()) / f"gatekeeper-bench-audit-key-{os.getuid()}.pem"
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        staged = path.with_suffix(f".{os.getpid()}.tmp")
        staged.write_bytes(pem)
        staged.replace(path)
    return path


def make_app(
    database_url: str, instance: Path, *, base_url: str = "http://127.0.0.1:5000", **extra: str
) -> Flask:
    from gatekeeper.app import create_app

    return create_app(
        environ=server_environ(database_url, base_url=base_url, **extra),
        instance_path=str(instance),
    )


def migrate(app: Flask) -> None:
    from flask_migrate import upgrade

    # The migration environment configures logging itself; keep its INFO lines out of the table.
    logging.disable(logging.INFO)
    try:
        with app.app_context():
            upgrade()
    finally:
        logging.disable(logging.NOTSET)


def dispose(app: Flask) -> None:
    from gatekeeper.db.base import db

    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


# --- databases ------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not re.fullmatch(rf"{PG_NAME_PREFIX}[a-z0-9_]*", name):
        raise SystemExit(f"refusing to create or drop database {name!r}: not a bench database")


def _admin(admin_url: str) -> sa.Engine:
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def pg_url(admin_url: str, name: str) -> str:
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(admin_url: str, name: str) -> None:
    _check_name(name)
    engine = _admin(admin_url)
    with engine.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    engine.dispose()


def create_postgres(admin_url: str, name: str, *, template: str | None = None) -> str:
    """Create (after dropping a leftover of the same name) a bench database; returns its URL."""
    _check_name(name)
    drop_postgres(admin_url, name)
    engine = _admin(admin_url)
    with engine.connect() as connection:
        if template is None:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        else:
            _check_name(template)
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    engine.dispose()
    return pg_url(admin_url, name)


@contextlib.contextmanager
def postgres_databases(admin_url: str) -> Iterator[list[str]]:
    """Collects the names of the bench databases created inside; drops them all at the end."""
    created: list[str] = []
    try:
        yield created
    finally:
        for name in created:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                drop_postgres(admin_url, name)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (WAL included), through SQLite's backup API."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def postgres_available(admin_url: str) -> str | None:
    """None when the server answers; otherwise why not."""
    engine = _admin(admin_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except sa.exc.SQLAlchemyError as exc:
        return str(exc.orig or exc).splitlines()[0]
    finally:
        engine.dispose()
    return None


# --- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; fields after it are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Gunicorn:
    """`gunicorn --workers N gatekeeper.wsgi:app` on loopback, as the README recommends."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        *,
        workers: int = 2,
        label: str = "",
        port: int | None = None,
        access_log: Path | None = None,
        config: str | None = None,
    ) -> None:
        self.config = config
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.workers = workers
        self.label = label
        self.log_path = log_path
        self.access_log = access_log
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        command = [
            str(VENV_BIN / "gunicorn"),
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "gatekeeper.wsgi:app",
        ]
        if self.config is not None:
            command[1:1] = ["--config", self.config]
        if self.access_log is not None:
            # Method, path, status and the worker's own time for the request in microseconds:
            # service time without the wait in the listen queue.
            command[-1:-1] = [
                "--access-logfile",
                str(self.access_log),
                "--access-logformat",
                "%(m)s %(U)s %(s)s %(D)s",
            ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=server_environ(self.database_url, base_url=self.base_url),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start; see {self.log_path}:\n{self.log()}")
            try:
                # base_url is always http://127.0.0.1:<port>, built above.
                health = f"{self.base_url}/healthz"
                with urllib.request.urlopen(health, timeout=2) as answer:  # noqa: S310
                    if answer.status == 200 and len(self.worker_pids()) == self.workers:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz in 60 s:\n{self.log()}")

    def worker_pids(self) -> list[int]:
        return children_of(self.process.pid) if self.process else []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class RssMonitor:
    """Samples VmRSS of every gunicorn worker of the given servers; keeps the peak per server."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.servers: list[Gunicorn] = []
        self.peaks: dict[str, float] = {}
        self.worker_count: dict[str, set[int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, server: Gunicorn) -> None:
        self.servers.append(server)

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def sample(self) -> None:
        for server in list(self.servers):
            for pid in server.worker_pids():
                value = rss_mb(pid)
                if value is None:
                    continue
                self.worker_count.setdefault(server.label, set()).add(pid)
                self.peaks[server.label] = max(self.peaks.get(server.label, 0.0), value)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    @property
    def peak(self) -> float:
        return max(self.peaks.values(), default=0.0)


# --- wrk --------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not found:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


@dataclass
class WrkResult:
    label: str
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx: int = 0
    raw: str = ""

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse_wrk(label: str, output: str) -> WrkResult:
    def grab(pattern: str) -> str:
        found = re.search(pattern, output, re.MULTILINE)
        if not found:
            raise ValueError(f"cannot read {pattern!r} in wrk output:\n{output}")
        return found.group(1)

    errors: dict[str, int] = {}
    socket_line = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_line:
        errors = dict(
            zip(
                ("connect", "read", "write", "timeout"), map(int, socket_line.groups()), strict=True
            )
        )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return WrkResult(
        label=label,
        requests_per_second=float(grab(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)")),
        p90_ms=_ms(grab(r"^\s+90%\s+(\S+)")),
        p99_ms=_ms(grab(r"^\s+99%\s+(\S+)")),
        requests=int(grab(r"^\s+(\d+) requests in")),
        socket_errors=errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        raw=output,
    )


def wrk(
    label: str,
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = 1,
    headers: Sequence[str] = (),
) -> WrkResult:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("benchmarks only load 127.0.0.1")
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
    ]
    for header in headers:
        command += ["-H", header]
    command.append(url)
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr}")
    return parse_wrk(label, completed.stdout)


def require_wrk() -> None:
    try:
        subprocess.run(["wrk", "--version"], capture_output=True, check=False)
    except FileNotFoundError:
        raise SystemExit("wrk is needed: apt-get install -y wrk") from None


# --- printing -------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


class Stopwatch:
    """Seconds since start, for the phase log each benchmark prints as it goes."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.start:6.1f} s] {message}", flush=True)
