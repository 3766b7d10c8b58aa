"""1,000 CI pipelines waiting on their gates, polling every 10 s, against one gunicorn server.

Run:  python -m bench.pipelines                         (both engines, ~2 min)
      python -m bench.pipelines --engines sqlite --seconds 30 --rounds 3

What it builds, per engine: --packages packages in review (pending: every item signed, the key
users not yet), and one `gate:read` token per --pipelines-per-token pipelines, as CI projects
share a token. Then one gunicorn with the shipped configuration
(`gunicorn --config python:gatekeeper.gunicorn_config --workers 2`, access log included),
on 127.0.0.1.

The schedule is compressed in length, not in rate: 1,000 pipelines polling every 10 s make 100
polls per second, so poll k goes out at k / 100 s, from pipeline k mod 1,000, each in its own
TCP connection with the ETag that pipeline holds (as `gate check --wait --interval 10` does).
One untimed cycle first gives every pipeline its ETag: they have been waiting for a while.
While measured, a sign-off is recorded every --change-every seconds through the services, so
every cache in every worker starts over that often (the realistic rate is far lower).

The same schedule is then run against /healthz. Rounds alternate gate and healthz. From /proc,
the CPU time (user + system) of the gunicorn master and workers over each load gives:

* CPU per poll, and % of one core for 1,000 pipelines at 10 s (target < 25 %);
* gate / healthz: healthz CPU per request over gate CPU per poll, i.e. the throughput ratio
  the CPU bound gives (target >= 0.9).

Medians of the rounds. The run stops by itself; it exits non-zero on failed requests or a
schedule it could not keep (then the figures would not be at the stated rate).
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import _data
from bench._harness import (
    PG_ADMIN_URL,
    Gunicorn,
    Stopwatch,
    create_postgres,
    dispose,
    make_app,
    migrate,
    postgres_available,
    postgres_databases,
    table,
    verdict,
)

CONFIG = "python:gatekeeper.gunicorn_config"
CPU_TARGET = 0.25
RATIO_TARGET = 0.9
TICKS = os.sysconf("SC_CLK_TCK")
CLIENT_THREADS = 12


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


@dataclass
class Load:
    label: str
    polls: int = 0
    cpu: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    late: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def cpu_per_poll_ms(self) -> float:
        return self.cpu / self.polls * 1000


class Pipelines:
    """Pipeline i asks for package i mod P with token i mod T and keeps the last ETag."""

    def __init__(self, port: int, paths: list[str], tokens: list[str], count: int) -> None:
        self.port = port
        self.paths = paths
        self.tokens = tokens
        self.etags: list[str | None] = [None] * count
        self.count = count

    def poll(self, pipeline: int, load: Load, *, healthz: bool, lock: threading.Lock) -> None:
        headers = {"Connection": "close"}
        path = "/healthz"
        if not healthz:
            path = self.paths[pipeline % len(self.paths)]
            headers["Authorization"] = f"Bearer {self.tokens[pipeline % len(self.tokens)]}"
            etag = self.etags[pipeline]
            if etag:
                headers["If-None-Match"] = etag
        start = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
            if not healthz and status == 200:
                self.etags[pipeline] = response.getheader("ETag")
        except OSError:
            status = 0
        finally:
            connection.close()
        with lock:
            load.latencies.append(time.perf_counter() - start)
            load.statuses[status] = load.statuses.get(status, 0) + 1
            if status not in (200, 304):
                load.errors += 1

    def run(self, load: Load, *, polls: int, rate: float, healthz: bool, first: int = 0) -> None:
        """Poll k (k from `first`) at (k - first) / rate seconds; CLIENT_THREADS send them."""
        lock = threading.Lock()
        counter = iter(range(first, first + polls))
        start = time.perf_counter()

        def sender() -> None:
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                due = start + (k - first) / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    with lock:
                        load.late.append(-delay)
                self.poll(k % self.count, load, healthz=healthz, lock=lock)

        threads = [threading.Thread(target=sender) for _ in range(CLIENT_THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def build(
    url: str, work: Path, args: argparse.Namespace, log: Stopwatch
) -> tuple[list[str], list[str]]:
    """Packages in review with their items signed (the key users still to sign), and tokens."""
    from gatekeeper.db.base import db
    from gatekeeper.db.unit_of_work import unit_of_work
    from gatekeeper.runtime import runtime
    from gatekeeper.services.tokens import SCOPE_GATE_READ

    app = make_app(url, work / "instance")
    migrate(app)
    rt = runtime(app)
    slugs = _data.write_checklists(
        work / "checklists", applications=args.apps, items=args.items, prefix="app"
    )
    keys = [f"bench-wait-{n:03d}" for n in range(args.packages)]
    with app.app_context():
        with unit_of_work(db.session) as session:
            _data.sync_and_approve(session, work / "checklists", rt.clock)
            tokens = [
                _data.create_token(session, f"ci-{n:03d}", [SCOPE_GATE_READ], rt.clock)
                for n in range(-(-args.pipelines // args.pipelines_per_token))
            ]
        for key in keys:
            with unit_of_work(db.session) as session:
                _data.create_and_submit(
                    session, key, slugs, links=rt.link_settings(), clock=rt.clock
                )
            _data.sign(db.session, key, clock=rt.clock, kinds=["item"])
        db.session.remove()
    dispose(app)
    log(f"  {len(keys)} packages pending on their key users, {len(tokens)} tokens")
    return [f"/api/v1/packages/{key}/gate" for key in keys], tokens


class Changes:
    """A sign-off every `every` seconds, in a thread, through the services: each is a change
    that empties every worker's caches."""

    def __init__(self, url: str, work: Path, keys: list[str], every: float) -> None:
        self.app = make_app(url, work / "instance")
        self.keys = keys
        self.every = every
        self.stop = threading.Event()
        self.made = 0
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        from gatekeeper.db.base import db
        from gatekeeper.db.models import SignoffRequest
        from gatekeeper.db.unit_of_work import unit_of_work
        from gatekeeper.runtime import runtime
        from gatekeeper.services import packages
        from tests.support import generated

        clock = runtime(self.app).clock
        with self.app.app_context():
            while not self.stop.wait(self.every):
                key = self.keys[self.made % len(self.keys)]
                with unit_of_work(db.session) as tx:
                    request = next(iter(packages.pending_requests(tx, key)), None)
                    if request is not None:
                        found = tx.get(SignoffRequest, request.id)
                        assert found is not None
                        decision = generated.positive_decision(found)
                        packages.record_signoff(tx, request.id, decision, clock=clock)
                db.session.remove()
                self.made += 1

    def __enter__(self) -> Changes:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        dispose(self.app)


def measure(
    url: str, work: Path, args: argparse.Namespace, log: Stopwatch
) -> dict[str, list[Load]]:
    paths, tokens = build(url, work, args, log)
    keys = [p.split("/")[4] for p in paths]
    rate = args.pipelines / args.every
    polls = int(rate * args.seconds)
    results: dict[str, list[Load]] = {"gate": [], "healthz": []}
    with Gunicorn(url, work / "gunicorn.log", config=CONFIG, workers=2) as server:
        pipelines = Pipelines(server.port, paths, tokens, args.pipelines)
        pids = [server.process.pid, *server.worker_pids()] if server.process else []
        log(f"  gunicorn up (:{server.port}, {len(pids) - 1} workers); every pipeline polls once")
        pipelines.run(Load("warm-up"), polls=args.pipelines, rate=rate * 4, healthz=False)
        next_poll = 0
        for round_number in range(1, args.rounds + 1):
            for label in ("gate", "healthz") if round_number % 2 else ("healthz", "gate"):
                load = Load(label)
                before = cpu_seconds(pids)
                if label == "gate" and args.change_every > 0:
                    with Changes(url, work, keys, args.change_every):
                        pipelines.run(load, polls=polls, rate=rate, healthz=False, first=next_poll)
                    next_poll += polls
                elif label == "gate":
                    pipelines.run(load, polls=polls, rate=rate, healthz=False, first=next_poll)
                    next_poll += polls
                else:
                    pipelines.run(load, polls=polls, rate=rate, healthz=True)
                load.cpu = cpu_seconds(pids) - before
                load.polls = polls
                results[label].append(load)
                late = statistics.median(load.late) * 1000 if load.late else 0.0
                log(
                    f"  round {round_number} {label}: {polls} requests in {args.seconds} s, "
                    f"CPU {load.cpu:.2f} s = {load.cpu_per_poll_ms:.2f} ms each, "
                    f"statuses {dict(sorted(load.statuses.items()))}, "
                    f"median latency {statistics.median(load.latencies) * 1000:.1f} ms, "
                    f"{len(load.late)} sent late (median {late:.0f} ms)"
                )
        if server.worker_pids() != pids[1:]:
            print("a worker was replaced during the run; see the gunicorn log", file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument(
        "--every", type=float, default=10.0, help="seconds between a pipeline's polls"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="per measured load")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--packages", type=int, default=50, help="packages the pipelines wait on")
    parser.add_argument("--pipelines-per-token", type=int, default=10)
    parser.add_argument(
        "--change-every", type=float, default=5.0, help="seconds between sign-offs (0: none)"
    )
    parser.add_argument("--apps", type=int, default=3)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    log = Stopwatch()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    summary = []
    failed = False
    for engine in engines:
        with (
            tempfile.TemporaryDirectory(prefix=f"gk-pipelines-{engine}-") as tmp,
            postgres_databases(args.pg_admin_url) as created,
        ):
            work = Path(tmp)
            if engine == "sqlite":
                url = f"sqlite:///{work / 'pipelines.sqlite'}"
            else:
                problem = postgres_available(args.pg_admin_url)
                if problem:
                    print(f"postgresql skipped: {problem}", file=sys.stderr)
                    continue
                created.append("gatekeeper_bench_pipelines")
                url = create_postgres(args.pg_admin_url, "gatekeeper_bench_pipelines")
            log(f"{engine}: building")
            results = measure(url, work, args, log)
        gate_cpu = statistics.median(load.cpu_per_poll_ms for load in results["gate"])
        healthz_cpu = statistics.median(load.cpu_per_poll_ms for load in results["healthz"])
        core = gate_cpu / 1000 * args.pipelines / args.every
        ratio = healthz_cpu / gate_cpu
        errors = sum(load.errors for loads in results.values() for load in loads)
        failed = failed or errors > 0
        summary += [
            [f"{engine}: server CPU per gate poll", f"{gate_cpu:.2f} ms", "", ""],
            [f"{engine}: server CPU per /healthz", f"{healthz_cpu:.2f} ms", "", ""],
            [
                f"{engine}: {args.pipelines:,} pipelines every {args.every:g} s",
                f"{core:.1%} of one core",
                f"< {CPU_TARGET:.0%}",
                verdict(core < CPU_TARGET),
            ],
            [
                f"{engine}: gate / healthz (CPU per request)",
                f"{ratio:.2f}x",
                f">= {RATIO_TARGET}x",
                verdict(ratio >= RATIO_TARGET),
            ],
            [f"{engine}: failed requests", str(errors), "0", verdict(errors == 0)],
        ]
    print()
    print(
        f"{args.pipelines:,} pipelines, each polling every {args.every:g} s "
        f"({args.pipelines / args.every:g} requests/s), {args.seconds:g} s per load, "
        f"{args.rounds} rounds; a sign-off every {args.change_every:g} s; medians"
    )
    print(table(["measure", "figure", "target", "verdict"], summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
