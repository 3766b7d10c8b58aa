"""Release-day burst on PostgreSQL: 50 key users answer their emailed links while CI polls the
gate, against the real server (`gunicorn --workers 2 gatekeeper.wsgi:app` on loopback).

Run:  python -m bench.signoff_load                 (defaults below; about a minute of load)
      python -m bench.signoff_load --packages 20 --pollers 10

Data, built through the services: --apps checklists of --items technical items and
--key-users key users each (10 x 5 = 50 distinct key users, 2 scenarios each); --packages
release packages holding every application, submitted (links and emails issued as in
production) and with every technical item already passed by the engineers, so the key users
are the last ones missing, as on a real release day. Each key user therefore has one emailed
link per package; the links are read from the outbox, as a person reads them from the email.

Load, driven by Locust in headless mode: one Locust user per key user (50, all started at
once), each following its links in random order: GET the page, then POST the form with its
CSRF token and every scenario confirmed. Meanwhile --pollers CI jobs ask for the gate of a
random package every --poll-interval seconds with an API token. The run ends when every key
user has answered every link. Target (6): no errors, and the median sign-off POST latency is at
most 3x the median gate GET latency measured in the same run. Worker memory (7) is sampled
throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa

from bench import _data
from bench._harness import (
    PG_ADMIN_URL,
    VENV_BIN,
    Gunicorn,
    RssMonitor,
    Stopwatch,
    create_postgres,
    dispose,
    free_port,
    make_app,
    median,
    migrate,
    postgres_available,
    postgres_databases,
    table,
    verdict,
)

TARGET = 3.0
RSS_TARGET_MB = 150.0
LINK = re.compile(r"https?://[^\s<>\"']+(/s/[A-Za-z0-9_\-.]+)")
LOCUSTFILE = Path(__file__).resolve().parent / "_locust_signoffs.py"
SIGN_PAGE = "GET /s/[token]"
SIGN_POST = "POST /s/[token]"
GATE = "GET /api/v1/packages/[key]/gate"


def build(url: str, base_url: str, work: Path, args: argparse.Namespace, log: Stopwatch) -> dict:
    """Everything through the services; returns the Locust plan."""
    from gatekeeper.db.base import db
    from gatekeeper.db.models import OutboxMessage
    from gatekeeper.db.unit_of_work import unit_of_work
    from gatekeeper.domain import signoff
    from gatekeeper.runtime import runtime
    from gatekeeper.services.tokens import SCOPE_GATE_READ

    app = make_app(url, work / "instance", base_url=base_url)
    migrate(app)
    rt = runtime(app)
    slugs = _data.write_checklists(
        work / "checklists",
        applications=args.apps,
        items=args.items,
        prefix="svc",
        key_users=args.key_users,
        scenarios=2,
    )
    keys = [f"release-day-{p:02d}" for p in range(args.packages)]
    with app.app_context():
        with unit_of_work(db.session) as session:
            _data.sync_and_approve(session, work / "checklists", rt.clock)
            token = _data.create_token(session, "bench-ci", [SCOPE_GATE_READ], rt.clock)
        for key in keys:
            with unit_of_work(db.session) as session:
                _data.create_and_submit(
                    session, key, slugs, links=rt.link_settings(), clock=rt.clock
                )
        log(f"  {len(keys)} packages submitted; engineers pass every technical item")
        signed = sum(
            _data.sign(db.session, key, clock=rt.clock, kinds=[signoff.ITEM]) for key in keys
        )
        log(f"  {signed} technical sign-offs recorded through the service")
        users: dict[str, list[str]] = {}
        key_users = {
            _data.key_user("svc", a, k) for a in range(args.apps) for k in range(args.key_users)
        }
        for to, text in db.session.execute(
            sa.select(OutboxMessage.to_address, OutboxMessage.body_text).where(
                OutboxMessage.template == "signoff_request"
            )
        ):
            if to in key_users:
                found = LINK.search(text)
                assert found, text
                users.setdefault(to, []).append(found.group(1))
        db.session.remove()
    dispose(app)
    return {
        "users": sorted(users.items()),
        "expected_posts": sum(len(v) for v in users.values()),
        "gate_paths": [f"/api/v1/packages/{key}/gate" for key in keys],
        "token": token,
        "pollers": args.pollers,
        "poll_interval": args.poll_interval,
        "keys": keys,
    }


def verify(url: str, work: Path, plan: dict) -> tuple[int, list[str]]:
    """Key-user sign-offs stored, and the status of every package's gate after the run."""
    from gatekeeper.db.base import db
    from gatekeeper.db.models import Signoff
    from gatekeeper.runtime import runtime
    from gatekeeper.services import packages

    app = make_app(url, work / "instance")
    with app.app_context():
        stored = (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(Signoff).where(Signoff.kind == "key_user")
            )
            or 0
        )
        statuses = [
            packages.evaluate_gate(
                db.session, key, clock=runtime(app).clock, overdue_policy="block"
            ).status
            for key in plan["keys"]
        ]
        db.session.remove()
    dispose(app)
    return stored, statuses


def service_times(access_log: str) -> dict[str, list[float]]:
    """Milliseconds each request kept a worker busy, from gunicorn's access log (%(D)s)."""
    found: dict[str, list[float]] = {}
    for line in access_log.splitlines():
        parts = line.split()
        if len(parts) != 4 or not parts[3].isdigit():
            continue
        method, path, _status, micros = parts
        if path.startswith("/s/"):
            name = SIGN_PAGE if method == "GET" else SIGN_POST
        elif path.startswith("/api/v1/packages/") and path.endswith("/gate"):
            name = GATE
        else:
            continue
        found.setdefault(name, []).append(int(micros) / 1000)
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=10)
    parser.add_argument("--apps", type=int, default=10)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--key-users", type=int, default=5, help="per application")
    parser.add_argument("--pollers", type=int, default=5)
    parser.add_argument("--poll-interval", type=float, default=0.25)
    parser.add_argument("--run-time", type=int, default=180, help="safety bound, seconds")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    if not (VENV_BIN / "locust").exists():
        print("error: Locust is needed: pip install -e '.[bench]'", file=sys.stderr)
        return 1
    if why := postgres_available(args.pg_admin_url):
        print(f"error: PostgreSQL is needed and not reachable ({why})", file=sys.stderr)
        return 1
    log = Stopwatch()
    with (
        tempfile.TemporaryDirectory(prefix="gk-bench-signoffs-") as tmp,
        postgres_databases(args.pg_admin_url) as created,
    ):
        work = Path(tmp)
        created.append("gatekeeper_bench_signoffs")
        url = create_postgres(args.pg_admin_url, "gatekeeper_bench_signoffs")
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log("postgresql: building release-day data through the services")
        plan = build(url, base_url, work, args, log)
        (work / "plan.json").write_text(json.dumps(plan))
        samples_path = work / "samples.json"
        log(
            f"  {len(plan['users'])} key users, {plan['expected_posts']} links to answer, "
            f"{args.pollers} gate pollers"
        )
        with (
            RssMonitor() as monitor,
            Gunicorn(
                url,
                work / "gunicorn.log",
                label="server",
                port=port,
                access_log=work / "access.log",
            ) as server,
        ):
            monitor.watch(server)
            users = len(plan["users"]) + args.pollers
            command = [
                str(VENV_BIN / "locust"),
                "-f",
                str(LOCUSTFILE),
                "--headless",
                "--users",
                str(users),
                "--spawn-rate",
                str(users),
                "--run-time",
                f"{args.run_time}s",
                "--host",
                server.base_url,
                "--only-summary",
                "--stop-timeout",
                "10",
            ]
            log(f"  gunicorn up on :{port}; Locust starts {users} users at once")
            environ = {
                **os.environ,
                "GK_BENCH_PLAN": str(work / "plan.json"),
                "GK_BENCH_SAMPLES": str(samples_path),
            }
            with (work / "locust.log").open("w") as locust_log:
                completed = subprocess.run(
                    command,
                    env=environ,
                    stdout=locust_log,
                    stderr=subprocess.STDOUT,
                    check=False,
                    timeout=args.run_time + 60,
                )
            monitor.sample()
            gunicorn_log = server.log(50)
        log(f"  locust exited with {completed.returncode}")
        locust_output = (work / "locust.log").read_text(errors="replace")
        if not samples_path.exists():
            print(locust_output[-3000:], file=sys.stderr)
            print("error: locust wrote no samples", file=sys.stderr)
            return 1
        recorded = json.loads(samples_path.read_text())
        service = service_times((work / "access.log").read_text(errors="replace"))
        stored, statuses = verify(url, work, plan)
    by_name: dict[str, list[float]] = {}
    failures: dict[str, int] = {}
    moments = []
    for name, milliseconds, ok, moment in recorded["samples"]:
        by_name.setdefault(name, []).append(milliseconds)
        failures[name] = failures.get(name, 0) + (0 if ok else 1)
        moments.append(moment)
    elapsed = max(moments) - min(moments) if moments else float("nan")
    print()
    print(
        f"PostgreSQL, gunicorn --workers 2; {len(plan['users'])} key users answering "
        f"{plan['expected_posts']} links across {len(plan['keys'])} packages while "
        f"{args.pollers} CI jobs poll the gate every {args.poll_interval} s (Locust, headless)"
    )
    rows = []
    for name in (SIGN_PAGE, SIGN_POST, GATE):
        values = by_name.get(name, [])
        rows.append(
            [
                name,
                len(values),
                failures.get(name, 0),
                f"{median(values):.1f}",
                f"{percentile(values, 0.9):.1f}",
                f"{percentile(values, 0.99):.1f}",
                f"{median(service.get(name, [])):.1f}",
            ]
        )
    print(
        table(
            ["request", "count", "failures", "p50 ms", "p90 ms", "p99 ms", "server p50 ms"],
            rows,
        )
    )
    print(
        f"{len(moments)} requests in {elapsed:.0f} s ({len(moments) / elapsed:.1f}/s); "
        "p50..p99 as the clients saw them, server p50 = the worker's own time per request "
        "(gunicorn access log), without the wait in the listen queue"
    )
    errors = sum(failures.values())
    ratio = median(by_name.get(SIGN_POST, [])) / median(by_name.get(GATE, []))
    server_ratio = median(service.get(SIGN_POST, [])) / median(service.get(GATE, []))
    peak = max(monitor.peaks.values(), default=0.0)
    print()
    print(
        f"key-user sign-offs stored: {stored} of {plan['expected_posts']}; gates after the "
        f"run: {', '.join(f'{s} x{statuses.count(s)}' for s in sorted(set(statuses)))}"
    )
    print()
    problems = []
    if errors:
        problems.append(f"{errors} failed requests")
    if stored != plan["expected_posts"]:
        problems.append(f"{stored} key-user sign-offs stored, {plan['expected_posts']} expected")
    if recorded["answered"] != plan["expected_posts"]:
        problems.append(f"{recorded['answered']} links answered, {plan['expected_posts']} expected")
    print(
        table(
            ["target", "measured", "target", "verdict"],
            [
                ["(6) errors", errors, "0", verdict(not problems)],
                [
                    "(6) sign-off POST p50 / gate GET p50",
                    f"{ratio:.2f}x",
                    f"<= {TARGET:.0f}x",
                    verdict(ratio <= TARGET),
                ],
                [
                    "    same, server time only (info)",
                    f"{server_ratio:.2f}x",
                    "",
                    "",
                ],
                [
                    "(7) peak gunicorn worker RSS",
                    f"{peak:.0f} MB",
                    f"< {RSS_TARGET_MB:.0f} MB",
                    verdict(peak < RSS_TARGET_MB),
                ],
            ],
        )
    )
    log("done")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print(locust_output[-3000:], file=sys.stderr)
        print(gunicorn_log, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
