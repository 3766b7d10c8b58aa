"""Gate API under load on the real server: throughput against /healthz, latency as history grows,
and gunicorn worker memory. SQLite and PostgreSQL, side by side in one run.

Run:  python -m bench.gate_api                      (defaults: 10,000 packages, both engines)
      python -m bench.gate_api --engines sqlite --rounds 5 --seconds 5

For each engine it builds two databases that differ only in history:

* small: the measured package (20 applications x 40 items, fully signed through the services,
  820 sign-offs) and 99 released packages of history;
* big:   the same, plus history up to --packages packages (3 applications each, 123 requests and
  123 sign-offs per package: 10,000 packages hold over 1,230,000 sign-off rows).

Each database gets its own gunicorn (`gunicorn --workers 2 gatekeeper.wsgi:app`, loopback).
wrk then runs, round after round with the order rotated, so drift on this shared machine hits
every figure alike:

* /healthz and the gate on the small server with --connections (4) connections: throughput;
* the gate on the small and on the big server with one connection: latency without queueing.

A further load polls the gate with If-None-Match holding its current ETag (the 304 a waiting
`gate check --wait` gets). Medians of the rounds are compared: (1) gate / healthz requests per
second >= 0.9, for the cached 200 and for the 304; (2) gate
median latency big / small <= 1.25; (7) the peak VmRSS of every worker < 150 MB (sampled every
0.2 s from /proc through the whole load). With --packages 100 both databases are the same size,
which shows the noise floor of (2) on the machine at hand.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench import _data
from bench._harness import (
    PG_ADMIN_URL,
    Gunicorn,
    RssMonitor,
    Stopwatch,
    WrkResult,
    copy_sqlite,
    create_postgres,
    dispose,
    make_app,
    median,
    migrate,
    postgres_available,
    postgres_databases,
    require_wrk,
    table,
    verdict,
    wrk,
)

MEASURED = "bench-20x40"
HEALTHZ = "healthz, small db"
GATE_SMALL = "gate, small db"
GATE_304 = "gate 304, small db"
LATENCY_SMALL = "gate, small db, 1 conn"
LATENCY_BIG = "gate, big db, 1 conn"
SMALL_PACKAGES = 100
THROUGHPUT_TARGET = 0.9
LATENCY_TARGET = 1.25
RSS_TARGET_MB = 150.0


@dataclass
class EngineRun:
    engine: str
    build_seconds: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    results: dict[str, list[WrkResult]] = field(default_factory=dict)
    rss_peaks: dict[str, float] = field(default_factory=dict)
    gate_status: str = ""

    def med(self, label: str, attribute: str) -> float:
        return median([getattr(r, attribute) for r in self.results.get(label, [])])

    @property
    def throughput_ratio(self) -> float:
        return self.med(GATE_SMALL, "requests_per_second") / self.med(
            HEALTHZ, "requests_per_second"
        )

    @property
    def not_modified_ratio(self) -> float:
        return self.med(GATE_304, "requests_per_second") / self.med(HEALTHZ, "requests_per_second")

    @property
    def latency_ratio(self) -> float:
        return self.med(LATENCY_BIG, "p50_ms") / self.med(LATENCY_SMALL, "p50_ms")

    @property
    def errors(self) -> int:
        return sum(r.errors for rs in self.results.values() for r in rs)


def build_small(url: str, work: Path, args: argparse.Namespace, log: Stopwatch) -> tuple[str, str]:
    """Migrate, sync and approve checklists, the measured package fully signed, a token, and
    the first 99 history packages. Returns (token, gate status)."""
    from gatekeeper.db.base import db
    from gatekeeper.db.unit_of_work import unit_of_work
    from gatekeeper.runtime import runtime
    from gatekeeper.services import packages
    from gatekeeper.services.tokens import SCOPE_GATE_READ

    app = make_app(url, work / "instance")
    migrate(app)
    rt = runtime(app)
    slugs = _data.write_checklists(
        work / "checklists", applications=args.apps, items=args.items, prefix="app"
    )
    with app.app_context():
        with unit_of_work(db.session) as session:
            _data.sync_and_approve(session, work / "checklists", rt.clock)
            token = _data.create_token(session, "bench-ci", [SCOPE_GATE_READ], rt.clock)
        with unit_of_work(db.session) as session:
            _data.create_and_submit(
                session, MEASURED, slugs, links=rt.link_settings(), clock=rt.clock
            )
        log(f"  submitted {MEASURED}; signing every request through the service")
        signed = _data.sign(db.session, MEASURED, clock=rt.clock)
        status = packages.evaluate_gate(
            db.session, MEASURED, clock=rt.clock, overdue_policy="block"
        ).status
        db.session.remove()
        log(f"  {signed} sign-offs recorded; gate is {status}")
    dispose(app)
    engine = _data.loader_engine(url)
    try:
        _data.add_history(engine, template_key=MEASURED, count=SMALL_PACKAGES - 1, first_index=0)
    finally:
        engine.dispose()
    return token, status


def grow(url: str, packages_total: int) -> dict[str, int]:
    engine = _data.loader_engine(url)
    try:
        return _data.add_history(
            engine,
            template_key=MEASURED,
            count=packages_total - SMALL_PACKAGES,
            first_index=SMALL_PACKAGES - 1,
        )
    finally:
        engine.dispose()


def sizes(url: str, work: Path) -> dict[str, int]:
    from gatekeeper.db.base import db
    from gatekeeper.db.models import Package, Signoff, SignoffRequest

    app = make_app(url, work / "instance")
    with app.app_context():
        _data.analyze(db.engine)
        found = {
            "packages": _data.count_rows(db.engine, Package.__table__),
            "signoff_requests": _data.count_rows(db.engine, SignoffRequest.__table__),
            "signoffs": _data.count_rows(db.engine, Signoff.__table__),
        }
    dispose(app)
    return found


def current_etag(url: str, token: str) -> str:
    """The gate's ETag, for the load that polls with If-None-Match as `gate check --wait` does."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("benchmarks only load 127.0.0.1")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        etag: str = response.headers["ETag"]
    return etag


def measure(
    run: EngineRun,
    urls: dict[str, str],
    token: str,
    work: Path,
    args: argparse.Namespace,
    log: Stopwatch,
) -> None:
    auth = [f"Authorization: Bearer {token}"]
    gate_path = f"/api/v1/packages/{MEASURED}/gate"
    with (
        RssMonitor() as monitor,
        Gunicorn(urls["small"], work / "gunicorn-small.log", label="small") as small,
        Gunicorn(urls["big"], work / "gunicorn-big.log", label="big") as big,
    ):
        monitor.watch(small)
        monitor.watch(big)
        c = args.connections
        if_none_match = [*auth, f"If-None-Match: {current_etag(small.base_url + gate_path, token)}"]
        loads = [
            (HEALTHZ, f"{small.base_url}/healthz", [], c),
            (GATE_SMALL, f"{small.base_url}{gate_path}", auth, c),
            (GATE_304, f"{small.base_url}{gate_path}", if_none_match, c),
            (LATENCY_SMALL, f"{small.base_url}{gate_path}", auth, 1),
            (LATENCY_BIG, f"{big.base_url}{gate_path}", auth, 1),
        ]
        log(f"  servers up (small :{small.port}, big :{big.port}); warming up")
        for label, url, headers, connections in loads:
            wrk(label, url, seconds=1, connections=connections, headers=headers)
        for round_number in range(1, args.rounds + 1):
            # Each round starts with a different load, so no figure always follows the same one.
            shift = (round_number - 1) % len(loads)
            for label, url, headers, connections in loads[shift:] + loads[:shift]:
                result = wrk(
                    label, url, seconds=args.seconds, connections=connections, headers=headers
                )
                run.results.setdefault(label, []).append(result)
                if result.errors:
                    print(f"    {label}: {result.errors} errors\n{result.raw}", file=sys.stderr)
            log(
                f"  round {round_number}: "
                + ", ".join(
                    f"{label} {run.results[label][-1].requests_per_second:.0f}/s "
                    f"p50 {run.results[label][-1].p50_ms:.1f} ms"
                    for label, _, _, _ in loads
                )
            )
        monitor.sample()
        run.rss_peaks = dict(monitor.peaks)


def run_engine(engine: str, args: argparse.Namespace, log: Stopwatch) -> EngineRun:
    run = EngineRun(engine)
    with (
        tempfile.TemporaryDirectory(prefix=f"gk-bench-{engine}-") as tmp,
        postgres_databases(args.pg_admin_url) as created,
    ):
        work = Path(tmp)
        log(f"{engine}: building the small database ({SMALL_PACKAGES} packages)")
        start = time.perf_counter()
        if engine == "sqlite":
            urls = {
                "small": f"sqlite:///{work / 'small.sqlite'}",
                "big": f"sqlite:///{work / 'big.sqlite'}",
            }
        else:
            created.append("gatekeeper_bench_small")
            urls = {"small": create_postgres(args.pg_admin_url, "gatekeeper_bench_small")}
        token, run.gate_status = build_small(urls["small"], work, args, log)
        run.build_seconds["small"] = time.perf_counter() - start
        log(f"{engine}: growing a copy to {args.packages} packages")
        start = time.perf_counter()
        if engine == "sqlite":
            copy_sqlite(work / "small.sqlite", work / "big.sqlite")
        else:
            created.append("gatekeeper_bench_big")
            urls["big"] = create_postgres(
                args.pg_admin_url, "gatekeeper_bench_big", template="gatekeeper_bench_small"
            )
        grow(urls["big"], args.packages)
        run.build_seconds["big"] = time.perf_counter() - start
        for size in ("small", "big"):
            run.sizes[size] = sizes(urls[size], work)
        log(
            f"{engine}: small {run.sizes['small']}, big {run.sizes['big']} "
            f"(built in {run.build_seconds['small']:.0f} s + {run.build_seconds['big']:.0f} s)"
        )
        measure(run, urls, token, work, args, log)
    return run


def report(runs: list[EngineRun], args: argparse.Namespace) -> None:
    print()
    print(
        f"wrk -t1 -d{args.seconds}s, -c{args.connections} for throughput and -c1 for latency; "
        f"{args.rounds} rounds, order rotated each round; medians of the rounds"
    )
    for run in runs:
        print()
        print(
            f"{run.engine}: small = {run.sizes['small']['packages']:,} packages / "
            f"{run.sizes['small']['signoffs']:,} sign-offs, big = "
            f"{run.sizes['big']['packages']:,} packages / {run.sizes['big']['signoffs']:,} "
            f"sign-offs; measured package gate: {run.gate_status}"
        )
        rows = []
        for label in (HEALTHZ, GATE_SMALL, GATE_304, LATENCY_SMALL, LATENCY_BIG):
            rows.append(
                [
                    label,
                    f"{run.med(label, 'requests_per_second'):.0f}",
                    f"{run.med(label, 'p50_ms'):.2f}",
                    f"{run.med(label, 'p90_ms'):.2f}",
                    f"{run.med(label, 'p99_ms'):.2f}",
                    sum(r.requests for r in run.results[label]),
                    sum(r.errors for r in run.results[label]),
                ]
            )
        print(
            table(
                [
                    "endpoint @ database",
                    "req/s",
                    "p50 ms",
                    "p90 ms",
                    "p99 ms",
                    "requests",
                    "errors",
                ],
                rows,
            )
        )
    print()
    rows = []
    for run in runs:
        rows.append(
            [
                f"(1) {run.engine}: gate / healthz throughput",
                f"{run.throughput_ratio:.2f}x",
                f">= {THROUGHPUT_TARGET}x",
                verdict(run.throughput_ratio >= THROUGHPUT_TARGET),
            ]
        )
        rows.append(
            [
                f"(1) {run.engine}: gate 304 / healthz throughput",
                f"{run.not_modified_ratio:.2f}x",
                f">= {THROUGHPUT_TARGET}x",
                verdict(run.not_modified_ratio >= THROUGHPUT_TARGET),
            ]
        )
        rows.append(
            [
                f"(2) {run.engine}: gate p50, {run.sizes['big']['packages']:,} / "
                f"{run.sizes['small']['packages']:,} packages",
                f"{run.latency_ratio:.2f}x",
                f"<= {LATENCY_TARGET}x",
                verdict(run.latency_ratio <= LATENCY_TARGET),
            ]
        )
        peak = max(run.rss_peaks.values(), default=0.0)
        rows.append(
            [
                f"(7) {run.engine}: peak gunicorn worker RSS",
                f"{peak:.0f} MB",
                f"< {RSS_TARGET_MB:.0f} MB",
                verdict(peak < RSS_TARGET_MB),
            ]
        )
    print(table(["target", "measured", "target", "verdict"], rows))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packages", type=int, default=10_000, help="packages in the big database")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=3, help="per wrk run")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections")
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    if args.packages < SMALL_PACKAGES:
        parser.error(f"--packages must be at least {SMALL_PACKAGES}")
    require_wrk()
    log = Stopwatch()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    runs = []
    for engine in engines:
        if engine not in ("sqlite", "postgresql"):
            parser.error(f"unknown engine {engine!r}")
        if engine == "postgresql":
            why = postgres_available(args.pg_admin_url)
            if why:
                print(f"postgresql: skipped, server not reachable ({why})", file=sys.stderr)
                continue
        runs.append(run_engine(engine, args, log))
    report(runs, args)
    log("done")
    errors = sum(r.errors for r in runs)
    not_open = [r.engine for r in runs if r.gate_status != "open"]
    if not_open:
        print(f"error: the measured package's gate is not open on {not_open}", file=sys.stderr)
    if errors:
        print(f"error: {errors} failed requests (non-2xx or socket errors)", file=sys.stderr)
    return 1 if errors or not_open else 0


if __name__ == "__main__":
    sys.exit(main())
