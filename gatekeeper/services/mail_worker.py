"""One pass of the mail worker: remind, warn and escalate, then deliver what is due."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, scoped_session

from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import Clock
from gatekeeper.notify import worker
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.services.reviews import send_review_reminders
from gatekeeper.services.signoffs import LinkSettings, send_reminders

# Bounded so one pass ends even if rows keep arriving; the next pass picks up the rest.
MAX_BATCHES_PER_PASS = 50


@dataclass
class PassReport:
    delivery: worker.DeliveryReport = field(default_factory=worker.DeliveryReport)
    reminders: dict[str, int] = field(default_factory=dict)


def worker_pass(
    session: Session | scoped_session[Session],
    *,
    mail_state: Any,
    worker_id: str,
    clock: Clock,
    timeout: float,
    sender: str,
    links: LinkSettings,
    governance: GovernanceSettings,
) -> PassReport:
    report = PassReport()
    with unit_of_work(session) as tx:
        report.reminders = send_reminders(tx, settings=links, clock=clock)
    # Its own transaction: the sign-off reminders above stay committed whatever happens here.
    with unit_of_work(session) as tx:
        report.reminders.update(send_review_reminders(tx, settings=governance, clock=clock))
    for _ in range(MAX_BATCHES_PER_PASS):
        batch = worker.deliver(
            session,
            mail_state=mail_state,
            worker=worker_id,
            clock=clock,
            timeout=timeout,
            sender=sender,
        )
        report.delivery.add(batch)
        if batch.sent + batch.retried + batch.dead + batch.released == 0 or batch.retried:
            break
    return report
