"""One mail-worker pass in a process of its own, for a test to kill with SIGKILL halfway.

    python -m tests.reliability.killable_worker DATABASE_URL INSTANCE SMTP_PORT NOW

It delivers exactly as `gatekeeper worker --once` does (reminders, then the outbox over real
SMTP), on the test's database and at the test's fixed instant, so the lease arithmetic of the
process that takes over is the test's own.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from gatekeeper.domain.clock import FixedClock
from tests.conftest import make_app
from tests.support.mail import point_mail_at, run_worker

WORKER_ID = "doomed"
# Longer than any test waits: the SMTP server stalls the worker, the test kills it.
SMTP_TIMEOUT = 120.0


def main(database_url: str, instance: str, port: str, now: str) -> None:
    app = make_app(database_url, Path(instance), FixedClock(datetime.fromisoformat(now)))
    with app.app_context():
        point_mail_at(app, int(port))
        run_worker(app, timeout=SMTP_TIMEOUT, worker_id=WORKER_ID)
    print("the pass finished: it should have been killed", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
