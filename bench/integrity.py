"""What record MACs and audit signatures cost: gate evaluation and audit append, with and
without, side by side in one run, as ratios.

Run:  python -m bench.integrity                 (SQLite, 20 applications x 40 items, 5 rounds)
      python -m bench.integrity --rounds 9 --evaluations 40 --appends 400

The measured package is built through the services (820 sign-offs, every one with its MAC),
then, round after round with the order alternated:

* a fresh gate evaluation (`services.packages.evaluate_gate`, no cache): every sign-off's and
  every approving review's HMAC-SHA256 checked, against the same evaluation with the check
  replaced by "accept everything";
* an audit append (`services.audit.record`, one event per committed transaction): Ed25519
  signing, against the same append with signing replaced by "no signature".

The "without" variants exist only in this process, to measure: the product has no switch.
The gate that CI polls is served from the per-process cache while the audit head stands, so
the gate/healthz throughput target is measured by bench/gate_api.py on the real server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import _data
from bench._harness import Stopwatch, dispose, make_app, median, migrate, table

MEASURED = "bench-20x40"


@contextmanager
def without_integrity() -> Iterator[None]:
    """Record MACs accepted unchecked and audit events appended unsigned, for comparison."""
    from gatekeeper.services import integrity

    verifies, sign = integrity.RecordKeys.verifies, integrity.AuditKeys.sign
    integrity.RecordKeys.verifies = lambda *_args: True  # type: ignore[method-assign]
    integrity.AuditKeys.sign = lambda *_args: (None, None)  # type: ignore[method-assign,assignment,return-value]
    try:
        yield
    finally:
        integrity.RecordKeys.verifies = verifies  # type: ignore[method-assign]
        integrity.AuditKeys.sign = sign  # type: ignore[method-assign]


def per_call_ms(action: Callable[[], Any], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        action()
    return (time.perf_counter() - started) * 1000 / count


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--evaluations", type=int, default=20, help="fresh gates per round")
    parser.add_argument("--appends", type=int, default=200, help="audit appends per round")
    parser.add_argument("--apps", type=int, default=20)
    parser.add_argument("--items", type=int, default=40)
    args = parser.parse_args()
    log = Stopwatch()
    from gatekeeper.db.base import db
    from gatekeeper.db.unit_of_work import unit_of_work
    from gatekeeper.runtime import runtime
    from gatekeeper.services import audit, packages

    with tempfile.TemporaryDirectory(prefix="gk-bench-integrity-") as folder:
        work = Path(folder)
        app = make_app(f"sqlite:///{work / 'bench.sqlite'}", work / "instance")
        migrate(app)
        rt = runtime(app)
        slugs = _data.write_checklists(
            work / "checklists", applications=args.apps, items=args.items, prefix="app"
        )
        with app.app_context():
            with unit_of_work(db.session) as session:
                _data.sync_and_approve(session, work / "checklists", rt.clock)
            with unit_of_work(db.session) as session:
                _data.create_and_submit(
                    session, MEASURED, slugs, links=rt.link_settings(), clock=rt.clock
                )
            signed = _data.sign(db.session, MEASURED, clock=rt.clock)
            log(f"  {signed} sign-offs recorded through the service")

            def evaluate() -> None:
                result = packages.evaluate_gate(
                    db.session, MEASURED, clock=rt.clock, overdue_policy="block"
                )
                db.session.rollback()
                assert result.status == "open", result.blockers[:3]

            def append() -> None:
                with unit_of_work(db.session) as session:
                    audit.record(
                        session,
                        action="bench.event",
                        actor="bench",
                        subject="x",
                        now=rt.clock.now(),
                    )

            figures: dict[str, list[float]] = {k: [] for k in ("gate+", "gate-", "app+", "app-")}
            for index in range(args.rounds):
                order = (True, False) if index % 2 == 0 else (False, True)
                for checked in order:
                    if checked:
                        figures["gate+"].append(per_call_ms(evaluate, args.evaluations))
                        figures["app+"].append(per_call_ms(append, args.appends))
                    else:
                        with without_integrity():
                            figures["gate-"].append(per_call_ms(evaluate, args.evaluations))
                            figures["app-"].append(per_call_ms(append, args.appends))
        dispose(app)
    gate_with, gate_without = median(figures["gate+"]), median(figures["gate-"])
    app_with, app_without = median(figures["app+"]), median(figures["app-"])
    print(
        table(
            ["median of rounds (SQLite)", "with", "without", "with / without"],
            [
                [
                    f"fresh gate evaluation, {signed} sign-offs",
                    f"{gate_with:.2f} ms",
                    f"{gate_without:.2f} ms",
                    f"{gate_with / gate_without:.2f}x",
                ],
                [
                    "audit append (one committed event)",
                    f"{app_with:.3f} ms",
                    f"{app_without:.3f} ms",
                    f"{app_with / app_without:.2f}x",
                ],
            ],
        )
    )
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
