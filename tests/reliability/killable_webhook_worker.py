"""One worker pass in a process of its own, for a test to kill with SIGKILL while a webhook
receiver holds its answer.

    python -m tests.reliability.killable_webhook_worker DATABASE_URL INSTANCE NOW

It runs exactly what `gatekeeper worker --once` runs, on the test's database and at the test's
fixed instant, with loopback receivers allowed and a timeout longer than the test waits.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from gatekeeper.domain.clock import FixedClock
from tests.conftest import make_app
from tests.support.mail import run_worker

WORKER_ID = "doomed"


def main(database_url: str, instance: str, now: str) -> None:
    app = make_app(
        database_url,
        Path(instance),
        FixedClock(datetime.fromisoformat(now)),
        GATEKEEPER_WEBHOOK_ALLOW_PRIVATE="true",
        GATEKEEPER_WEBHOOK_TIMEOUT="120",
    )
    with app.app_context():
        run_worker(app, worker_id=WORKER_ID)
    print("the pass finished: it should have been killed", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
