"""One pass of the worker: remind, warn and escalate, deliver the email that is due (except what
is moot), post the webhooks that are due, then tell CI platforms what the gate decided."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, scoped_session

from gatekeeper.db.unit_of_work import read_snapshot, unit_of_work
from gatekeeper.domain.clock import Clock
from gatekeeper.notify import platforms, webhooks, worker
from gatekeeper.services import (
    confirmations,
    deployment_gates,
    deputies,
    findings,
    head_cache,
    heartbeats,
    learning_reminders,
    reviews,
    sign_ins,
    signoffs,
)
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.services.reviews import send_review_reminders
from gatekeeper.services.signoffs import LinkSettings, send_reminders

# Bounded so one pass ends even if rows keep arriving; the next pass picks up the rest.
MAX_BATCHES_PER_PASS = 50


# What makes an email moot, per kind of link it carries. Problem-report links are not here:
# the release email that carries one is news in itself, and nothing uses the link before the
# recipient does.
MOOT_LINKS: dict[str, Callable[[Session, Collection[int], datetime], dict[int, str]]] = {
    signoffs.MAIL_LINK_KIND: signoffs.moot_links,
    reviews.MAIL_LINK_KIND: reviews.moot_links,
    sign_ins.MAIL_LINK_KIND: sign_ins.moot_links,
    findings.MAIL_LINK_KIND: findings.moot_links,
    confirmations.MAIL_LINK_KIND: confirmations.moot_links,
}


def moot_messages(
    session: Session, messages: Sequence[tuple[int, str, int]], now: datetime
) -> dict[int, str]:
    """Why each of `messages` (id, link kind, link id) is moot, for those whose link can no
    longer be used: it would arrive dead."""
    by_kind: dict[str, dict[int, list[int]]] = {}
    for message_id, kind, link_id in messages:
        by_kind.setdefault(kind, {}).setdefault(link_id, []).append(message_id)
    reasons: dict[int, str] = {}
    for kind, carried in by_kind.items():
        check = MOOT_LINKS.get(kind)
        if check is None:
            continue
        for link_id, why in check(session, carried.keys(), now).items():
            reasons.update(dict.fromkeys(carried[link_id], why))
    return reasons


@dataclass
class PassReport:
    delivery: worker.DeliveryReport = field(default_factory=worker.DeliveryReport)
    webhooks: worker.DeliveryReport = field(default_factory=worker.DeliveryReport)
    platform_calls: worker.DeliveryReport = field(default_factory=worker.DeliveryReport)
    deployments: deployment_gates.ReconcileReport = field(
        default_factory=deployment_gates.ReconcileReport
    )
    reminders: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def poll_gitlab(
    session: Session | scoped_session[Session],
    *,
    clock: Clock,
    gate: deployment_gates.GateSettings,
    calls: platforms.PlatformSettings,
) -> list[str]:
    """Record the blocked deployments of every mapped GitLab project, when a poll is due;
    what went wrong, for the worker's log."""
    with unit_of_work(session) as tx:
        if not deployment_gates.take_poll(tx, "gitlab", now=clock.now(), every=gate.poll_every):
            return []
        wanted = deployment_gates.targets(tx, "gitlab")
    errors = []
    for project, environment in wanted:
        # No transaction stays open while GitLab answers.
        found = platforms.gitlab_blocked(calls, project, environment)
        if isinstance(found, platforms.Answer):
            errors.append(f"gitlab {project} {environment}: {found.error}")
            continue
        with unit_of_work(session) as tx:
            for deployment in found:
                request = deployment_gates.gitlab_request(project, environment, deployment)
                deployment_gates.record_request(tx, request, clock=clock, settings=gate)
    return errors


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
    hooks: webhooks.WebhookSettings,
    heartbeat: heartbeats.Heartbeat | None = None,
    gate: deployment_gates.GateSettings | None = None,
    calls: platforms.PlatformSettings | None = None,
) -> PassReport:
    """With `heartbeat`, the worker is recorded alive as the pass starts and after every batch
    it delivers: its heartbeat is never older than one batch (at most SENDING_TIME)."""
    report = PassReport()
    # A read of the audit head each pass keeps this host's witness current (and logs a broken
    # chain) even while nobody polls a gate (services/head_witness.py).
    with read_snapshot(session) as reading:
        head_cache.chain_break(reading)
    with unit_of_work(session) as tx:
        if heartbeat is not None:
            heartbeats.beat(tx, heartbeat, clock.now())
        report.reminders = send_reminders(tx, settings=links, clock=clock)
    # Absences begin and end on their own: each pass hands the requests of whoever has just
    # left to their deputies, and gives back those of whoever has just returned.
    with unit_of_work(session) as tx:
        report.reminders.update(deputies.settle(tx, clock=clock, links=links).counts)
    # Its own transaction: the sign-off reminders above stay committed whatever happens here.
    with unit_of_work(session) as tx:
        report.reminders.update(send_review_reminders(tx, settings=governance, clock=clock))
    with unit_of_work(session) as tx:
        report.reminders.update(
            confirmations.send_confirmation_requests(tx, settings=governance, clock=clock)
        )
    with unit_of_work(session) as tx:
        report.reminders.update(
            learning_reminders.send_learning_reminders(tx, settings=governance, clock=clock)
        )
    for _ in range(MAX_BATCHES_PER_PASS):
        batch = worker.deliver(
            session,
            mail_state=mail_state,
            worker=worker_id,
            clock=clock,
            timeout=timeout,
            sender=sender,
            moot=moot_messages,
        )
        report.delivery.add(batch)
        if batch.handled == 0 or batch.retried:
            break
        _beat(session, heartbeat, clock)
    for _ in range(MAX_BATCHES_PER_PASS):
        posted = webhooks.deliver(session, worker=worker_id, clock=clock, settings=hooks)
        report.webhooks.add(posted)
        if posted.handled == 0 or posted.retried:
            break
        _beat(session, heartbeat, clock)
    if gate is not None and calls is not None:
        if calls.gitlab_token:
            report.errors.extend(poll_gitlab(session, clock=clock, gate=gate, calls=calls))
        # Every pass: a gate changed by anything (a sign-off, a finding, time itself) reaches
        # the deployments waiting on it within one pass.
        with unit_of_work(session) as tx:
            report.deployments = deployment_gates.reconcile(tx, clock=clock, settings=gate)
        for _ in range(MAX_BATCHES_PER_PASS):
            called = platforms.deliver(session, worker=worker_id, clock=clock, settings=calls)
            report.platform_calls.add(called)
            if called.handled == 0 or called.retried:
                break
            _beat(session, heartbeat, clock)
    return report


def _beat(
    session: Session | scoped_session[Session], heartbeat: heartbeats.Heartbeat | None, clock: Clock
) -> None:
    if heartbeat is not None:
        with unit_of_work(session) as tx:
            heartbeats.beat(tx, heartbeat, clock.now())
