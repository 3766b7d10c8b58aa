"""Webhook subscriptions, and the events they receive, queued in the transaction of the change."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import OutboxMessage, WebhookDelivery, WebhookSubscription
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import NotFound, ValidationFailed
from gatekeeper.domain.gate import GateResult
from gatekeeper.notify import webhooks as delivery

# Re-exported: adapters and the runtime build it without reaching into notify.
from gatekeeper.notify.webhooks import WebhookSettings as WebhookSettings
from gatekeeper.services import audit

GATE_CHANGED = "gate.changed"
PACKAGE_SUBMITTED = "package.submitted"
PACKAGE_RELEASED = "package.released"
PACKAGE_CANCELLED = "package.cancelled"
FINDING_REPORTED = "finding.reported"
REVIEW_DUE = "review.due"
EVENTS = (
    GATE_CHANGED,
    PACKAGE_SUBMITTED,
    PACKAGE_RELEASED,
    PACKAGE_CANCELLED,
    FINDING_REPORTED,
    REVIEW_DUE,
)
URL_LIMIT = 2000


@dataclass(frozen=True)
class SubscriptionView:
    id: int
    url: str
    events: tuple[str, ...]
    created_by: str
    created_at: datetime
    rotated_at: datetime | None
    queued: int
    dead: int


def _clean(url: str, events: Sequence[str], settings: WebhookSettings) -> tuple[str, list[str]]:
    url = url.strip()
    if not url or len(url) > URL_LIMIT:
        raise ValidationFailed(f"give a URL of at most {URL_LIMIT} characters")
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise ValidationFailed(
            f"unknown event {', '.join(unknown)}" if unknown else "choose at least one event",
            details={"events": list(EVENTS)},
        )
    try:
        delivery.resolve(url, allow_private=settings.allow_private)
    except delivery.RefusedTarget as refused:
        raise ValidationFailed(str(refused)) from None
    except LookupError as exc:
        raise ValidationFailed(str(exc)) from None
    return url, [e for e in EVENTS if e in events]


def _get(session: Session, subscription_id: int) -> WebhookSubscription:
    found = session.get(WebhookSubscription, subscription_id)
    if found is None:
        raise NotFound(f"no webhook subscription #{subscription_id}")
    return found


def add_subscription(
    session: Session,
    *,
    url: str,
    events: Sequence[str],
    actor: str,
    clock: Clock,
    settings: WebhookSettings,
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its signing secret, which is shown once and kept sealed."""
    url, chosen = _clean(url, events, settings)
    secret = delivery.new_secret()
    now = clock.now()
    subscription = WebhookSubscription(
        url=url,
        events=chosen,
        secret_sealed=delivery.seal(secret, settings.secret_keys),
        created_by=actor,
        created_at=now,
    )
    session.add(subscription)
    session.flush()
    audit.record(
        session,
        action="webhook.added",
        actor=actor,
        subject=f"webhook #{subscription.id}",
        now=now,
        details={"url": url, "events": chosen},
    )
    return subscription, secret


def remove_subscription(
    session: Session, subscription_id: int, *, actor: str, clock: Clock
) -> WebhookSubscription:
    """Remove it with its delivery log and everything still queued for it."""
    subscription = _get(session, subscription_id)
    audit.record(
        session,
        action="webhook.removed",
        actor=actor,
        subject=f"webhook #{subscription.id}",
        now=clock.now(),
        details={"url": subscription.url, "events": list(subscription.events)},
    )
    session.execute(
        sa.delete(OutboxMessage).where(OutboxMessage.subscription_id == subscription.id)
    )
    session.execute(
        sa.delete(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription.id)
    )
    session.delete(subscription)
    session.flush()
    return subscription


def rotate_secret(
    session: Session,
    subscription_id: int,
    *,
    actor: str,
    clock: Clock,
    settings: WebhookSettings,
) -> str:
    """A new secret: every post from now on, retries included, is signed with it."""
    subscription = _get(session, subscription_id)
    secret = delivery.new_secret()
    subscription.secret_sealed = delivery.seal(secret, settings.secret_keys)
    subscription.rotated_at = now = clock.now()
    session.flush()
    audit.record(
        session,
        action="webhook.secret_rotated",
        actor=actor,
        subject=f"webhook #{subscription.id}",
        now=now,
    )
    return secret


def list_subscriptions(session: Session) -> list[SubscriptionView]:
    """Every subscription with how many of its webhooks wait and how many are dead."""
    counts: dict[tuple[int, str], int] = {
        (sub_id, state): n
        for sub_id, state, n in session.execute(
            sa.select(OutboxMessage.subscription_id, OutboxMessage.state, sa.func.count())
            .where(OutboxMessage.kind == delivery.KIND)
            .group_by(OutboxMessage.subscription_id, OutboxMessage.state)
        )
        if sub_id is not None
    }
    return [
        SubscriptionView(
            s.id,
            s.url,
            tuple(s.events),
            s.created_by,
            s.created_at,
            s.rotated_at,
            counts.get((s.id, "queued"), 0) + counts.get((s.id, "sending"), 0),
            counts.get((s.id, "dead"), 0),
        )
        for s in session.scalars(sa.select(WebhookSubscription).order_by(WebhookSubscription.id))
    ]


def delivery_log(
    session: Session, subscription_id: int, *, limit: int = 50
) -> tuple[WebhookSubscription, list[WebhookDelivery]]:
    """The subscription and its newest delivery attempts."""
    subscription = _get(session, subscription_id)
    attempts = session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    return subscription, list(attempts)


def _subscribers(session: Session, event: str) -> list[tuple[int, str]]:
    # Subscriptions are few: filtering their event lists here is portable across engines.
    return [
        (sub_id, url)
        for sub_id, url, events in session.execute(
            sa.select(WebhookSubscription.id, WebhookSubscription.url, WebhookSubscription.events)
        )
        if event in events
    ]


def listening(session: Session, event: str) -> bool:
    return bool(_subscribers(session, event))


def emit(session: Session, event: str, data: Mapping[str, Any], *, now: datetime) -> str | None:
    """Queue `event` for every subscriber, in the caller's transaction; its webhook-id (one
    per event, kept across retries), or None when nobody listens."""
    subscribers = _subscribers(session, event)
    if not subscribers:
        return None
    webhook_id = "msg_" + secrets.token_urlsafe(18)
    body = delivery.body(event, dict(data), at=now)
    summary = ", ".join(f"{k} {v}" for k, v in data.items() if isinstance(v, str | int))[:250]
    for sub_id, url in subscribers:
        session.add(
            OutboxMessage(
                kind=delivery.KIND,
                template=event,
                to_address=url[:254],
                subject=f"{event}: {summary}"[:300],
                body_text=body,
                body_html="",
                state="queued",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                subscription_id=sub_id,
                webhook_id=webhook_id,
            )
        )
    return webhook_id


def package_data(package: Any) -> dict[str, Any]:
    return {
        "package": package.key,
        "title": package.title,
        "environment": package.environment,
        "revision": package.revision,
        "state": package.state,
    }


def gate_changed(
    session: Session, before: GateResult | None, after: GateResult, *, now: datetime
) -> str | None:
    """`gate.changed` when the status moved between `before` (None: nobody was listening when
    the change began) and `after`."""
    if before is None or before.status == after.status:
        return None
    return emit(
        session,
        GATE_CHANGED,
        {
            "package": after.package,
            "revision": after.revision,
            "old_status": before.status,
            "new_status": after.status,
            "digest": after.digest,
        },
        now=now,
    )
