"""Deliver the outbox over SMTP: safe claims, socket timeout, retry with backoff, dead letters."""

from __future__ import annotations

import logging
import smtplib
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask_mail import Connection, Mail, Message
from sqlalchemy.orm import Session, scoped_session

from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import Clock

log = logging.getLogger(__name__)

mail = Mail()

BATCH_SIZE = 200
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=2)
# A row claimed longer ago than this belongs to a worker that died; it is offered again.
LEASE = timedelta(minutes=10)


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.released += other.released
        self.errors.extend(other.errors)


class TimeoutConnection(Connection):
    """Flask-Mail's connection, with the socket timeout Flask-Mail itself never sets."""

    def __init__(self, mail_state: Mail, timeout: float) -> None:
        super().__init__(mail_state)
        self.timeout = timeout

    def configure_host(self) -> smtplib.SMTP | smtplib.SMTP_SSL:
        host: smtplib.SMTP | smtplib.SMTP_SSL
        if self.mail.use_ssl:
            host = smtplib.SMTP_SSL(self.mail.server, self.mail.port, timeout=self.timeout)
        else:
            host = smtplib.SMTP(self.mail.server, self.mail.port, timeout=self.timeout)
        if self.mail.use_tls:
            host.starttls()
        if self.mail.username and self.mail.password:
            host.login(self.mail.username, self.mail.password)
        return host

    def __exit__(self, *exc: object) -> None:
        if self.host is not None:
            try:
                self.host.quit()
            except (smtplib.SMTPException, OSError):
                self.host.close()


class PermanentFailure(Exception):
    """The server refused the message for good (5xx); retrying will not help."""


def _classify(error: Exception) -> tuple[bool, str]:
    """(permanent?, description) for an SMTP failure."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        permanent = bool(codes) and all(code >= 500 for code in codes)
        return permanent, f"recipient refused: {error.recipients}"
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
        text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
        return error.smtp_code >= 500, f"SMTP {error.smtp_code}: {text}"
    if isinstance(error, socket.timeout | TimeoutError):
        return False, "SMTP server timed out"
    return False, f"{type(error).__name__}: {error}"


def backoff(attempts: int) -> timedelta:
    return min(BACKOFF_BASE * (1 << min(max(attempts - 1, 0), 20)), BACKOFF_MAX)


def _session(session: Session | scoped_session[Session]) -> Session:
    return session() if isinstance(session, scoped_session) else session


def claim(
    session: Session | scoped_session[Session], *, worker: str, clock: Clock, limit: int
) -> list[int]:
    """Atomically take due rows: SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite."""
    now = clock.now()
    with unit_of_work(session) as tx:
        tx.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.state == "sending", OutboxMessage.claimed_at < now - LEASE)
            .values(state="queued", claimed_by=None, claimed_at=None)
        )
        ids = list(
            tx.scalars(
                sa.select(OutboxMessage.id)
                .where(OutboxMessage.state == "queued", OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            tx.execute(
                sa.update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids), OutboxMessage.state == "queued")
                .values(state="sending", claimed_by=worker, claimed_at=now)
            )
    return ids


def _message(row: OutboxMessage, sender: str) -> Message:
    return Message(
        subject=row.subject,
        recipients=[row.to_address],
        body=row.body_text,
        html=row.body_html,
        sender=sender,
    )


def deliver(
    session: Session | scoped_session[Session],
    *,
    mail_state: Any,
    worker: str,
    clock: Clock,
    timeout: float,
    sender: str,
    limit: int = BATCH_SIZE,
) -> DeliveryReport:
    """One pass: claim a batch, send it over one SMTP connection, record every outcome."""
    ids = claim(session, worker=worker, clock=clock, limit=limit)
    report = DeliveryReport()
    if not ids:
        return report
    rows = list(
        _session(session).scalars(
            sa.select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
        )
    )
    payloads = [(row.id, row.attempts, _message(row, sender)) for row in rows]
    _session(session).rollback()
    outcomes: dict[int, tuple[str, str]] = {}
    try:
        with TimeoutConnection(mail_state, timeout) as connection:
            for row_id, _attempts, message in payloads:
                try:
                    connection.send(message)
                except smtplib.SMTPServerDisconnected as exc:
                    outcomes[row_id] = ("retry", f"connection lost: {exc}")
                    break
                except (smtplib.SMTPException, OSError) as exc:
                    permanent, description = _classify(exc)
                    outcomes[row_id] = ("dead" if permanent else "retry", description)
                    # SMTPException subclasses OSError; only a socket error ends the connection.
                    if not isinstance(exc, smtplib.SMTPException):
                        break
                else:
                    outcomes[row_id] = ("sent", "")
    except (smtplib.SMTPException, OSError) as exc:
        permanent, description = _classify(exc)
        for row_id, _, _ in payloads:
            outcomes.setdefault(row_id, ("retry", f"cannot connect: {description}"))
    _record(session, payloads, outcomes, clock, report)
    return report


def _record(
    session: Session | scoped_session[Session],
    payloads: Sequence[tuple[int, int, Message]],
    outcomes: dict[int, tuple[str, str]],
    clock: Clock,
    report: DeliveryReport,
) -> None:
    now = clock.now()
    with unit_of_work(session) as tx:
        # One query for the whole batch: a SELECT per row cost more than sending it.
        rows = {
            row.id: row
            for row in tx.scalars(
                sa.select(OutboxMessage).where(OutboxMessage.id.in_([p[0] for p in payloads]))
            )
        }
        for row_id, attempts, _ in payloads:
            outcome, error = outcomes.get(row_id, ("release", ""))
            row = rows.get(row_id)
            if row is None:  # pragma: no cover - rows are never deleted
                continue
            if outcome == "sent":
                row.state, row.sent_at, row.last_error = "sent", now, ""
                row.attempts = attempts + 1
                report.sent += 1
            elif outcome == "release":
                row.state, row.claimed_by, row.claimed_at = "queued", None, None
                report.released += 1
            else:
                row.attempts = attempts + 1
                row.last_error = error[:2000]
                report.errors.append(f"message {row_id} to {row.to_address}: {error}")
                if outcome == "dead" or row.attempts >= MAX_ATTEMPTS:
                    row.state = "dead"
                    report.dead += 1
                    log.error("outbox message %s dead-lettered: %s", row_id, error)
                else:
                    row.state, row.claimed_by, row.claimed_at = "queued", None, None
                    row.next_attempt_at = now + backoff(row.attempts)
                    report.retried += 1
                    log.warning("outbox message %s will be retried: %s", row_id, error)


def dead_letters(session: Session | scoped_session[Session]) -> list[OutboxMessage]:
    return list(
        _session(session).scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.state == "dead")
            .order_by(OutboxMessage.id.desc())
        )
    )


def requeue(session: Session, message_id: int, *, clock: Clock) -> OutboxMessage | None:
    row = session.get(OutboxMessage, message_id)
    if row is None or row.state != "dead":
        return None
    row.state, row.attempts, row.next_attempt_at = "queued", 0, clock.now()
    row.claimed_by = row.claimed_at = None
    return row


def outbox_counts(session: Session | scoped_session[Session]) -> dict[str, int]:
    rows = _session(session).execute(
        sa.select(OutboxMessage.state, sa.func.count()).group_by(OutboxMessage.state)
    )
    return dict(rows.all())


def next_due(session: Session | scoped_session[Session], now: datetime) -> bool:
    found = _session(session).scalar(
        sa.select(OutboxMessage.id)
        .where(OutboxMessage.state == "queued", OutboxMessage.next_attempt_at <= now)
        .limit(1)
    )
    return found is not None
