"""Deliver the outbox over SMTP: safe claims, socket timeout, retry with backoff, dead letters."""

from __future__ import annotations

import io
import logging
import smtplib
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.errors import MessageError
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message as MIMEMessage
from email.policy import compat32
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask_mail import BadHeaderError, Connection, Mail, Message
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, scoped_session

from gatekeeper import metrics
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import Clock
from gatekeeper.notify.outbox import header_safe

log = logging.getLogger(__name__)

mail = Mail()

BATCH_SIZE = 200
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=2)
# A row claimed longer ago than this belongs to a worker that died; it is offered again.
LEASE = timedelta(minutes=10)
# A batch starts no message after this much of its lease: what is left is released, so the
# rows of a live worker are never offered to another one, however slow the server is.
SENDING_TIME = LEASE / 2


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    moot: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.released += other.released
        self.moot += other.moot
        self.errors.extend(other.errors)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.dead + self.released + self.moot


# (message id, link kind, link id) of claimed rows that carry a link -> {message id: why it
# is moot} for those whose link can no longer be used. Supplied by the services layer, which
# knows what makes each kind of link unusable.
MootCheck = Callable[[Session, Sequence[tuple[int, str, int]], datetime], dict[int, str]]


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


# compat32 with CRLF line ends: the headers go out as Flask-Mail stored them. Flask-Mail builds
# its message from the standard library's compat32 MIME classes, RFC 2047-encoding non-ASCII
# subjects and display names itself, then serialises it under `email.policy.SMTP`, which sends
# every header the generator reads (each part's Content-Type included) through the modern header
# registry's parser: half of the worker's time, profiled (3.6 of 6.9 s for 2,000 sign-off
# requests). compat32 writes the stored values and folds them with `email.header.Header`:
# encoded words are kept and folded at 78 columns, and a line break inside a value that would
# start a new header raises `HeaderParseError`.
WIRE_POLICY = compat32.clone(linesep="\r\n", mangle_from_=False)


def wire_bytes(message: MIMEMessage) -> bytes:
    """The message as SMTP DATA: CRLF line ends, headers folded by compat32."""
    buffer = io.BytesIO()
    BytesGenerator(buffer, policy=WIRE_POLICY).flatten(message)
    return buffer.getvalue()


class OutboxMail(Message):
    """Flask-Mail's `Message`, rendered once, under `WIRE_POLICY`, before it is sent.

    Flask-Mail still builds the message (`Message._message()`: MIME parts, RFC 2047 subject
    and addresses, Date, Message-ID) and its `Connection.send` still checks the headers, sends
    and signals `email_dispatched`; only the serialisation differs, see `WIRE_POLICY`, and a
    non-ASCII subject is encoded to fit its first line, see `render`.
    """

    _wire: bytes | None = None

    def render(self) -> bytes:
        """Check and serialise; raises (nothing sent yet) if the message cannot be built."""
        if self.has_bad_headers():
            raise BadHeaderError("CR or LF in a header")
        if self.date is None:
            self.date = time.time()
        tree = self._message()
        tree.policy = WIRE_POLICY
        if self.subject and not self.subject.isascii():
            # Flask-Mail encodes a non-ASCII subject into words sized for a line of their own:
            # the first does not fit after "Subject: ", so the value would start on the next
            # line, and readers show that as a leading space. Encoded knowing its header's
            # name, the first word fits on the first line (policy.SMTP re-encodes it too).
            subject = Header(self.subject, self.charset or "utf-8", header_name="Subject")
            tree.replace_header("Subject", subject.encode(linesep=WIRE_POLICY.linesep))
        self._wire = wire_bytes(tree)
        return self._wire

    def as_bytes(self) -> bytes:
        return self._wire if self._wire is not None else self.render()


# Building a message can only fail on its content: the same content fails every time.
_BUILD_ERRORS = (BadHeaderError, MessageError, ValueError)


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


class Claim(NamedTuple):
    """Rows one worker took at one instant: the worker still holds a row while the row is
    `sending` under this worker and instant. Once the lease is over another worker may take it,
    and then only the new holder records its outcome."""

    worker: str
    at: datetime
    ids: list[int]

    def holds(self) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            OutboxMessage.state == "sending",
            OutboxMessage.claimed_by == self.worker,
            OutboxMessage.claimed_at == self.at,
        )


def claim(
    session: Session | scoped_session[Session],
    *,
    worker: str,
    clock: Clock,
    limit: int,
    kind: str = "email",
) -> Claim:
    """Atomically take due rows of one kind: SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on
    SQLite. Each kind has its own deliverer (SMTP here, HTTP in notify/webhooks)."""
    now = clock.now()
    with unit_of_work(session) as tx:
        tx.execute(
            sa.update(OutboxMessage)
            .where(
                OutboxMessage.kind == kind,
                OutboxMessage.state == "sending",
                OutboxMessage.claimed_at < now - LEASE,
            )
            .values(state="queued", claimed_by=None, claimed_at=None)
        )
        ids = list(
            tx.scalars(
                sa.select(OutboxMessage.id)
                .where(
                    OutboxMessage.kind == kind,
                    OutboxMessage.state == "queued",
                    OutboxMessage.next_attempt_at <= now,
                )
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
    return Claim(worker, now, ids)


class _Content(NamedTuple):
    """What the worker reads of a claimed row: only the columns it sends, and its link."""

    id: int
    attempts: int
    to_address: str
    subject: str
    body_text: str
    body_html: str
    link_kind: str | None
    link_id: int | None


_CONTENT = [getattr(OutboxMessage, name) for name in _Content._fields]


def _message(row: _Content, sender: str) -> OutboxMail:
    """The row as a Flask-Mail message, rendered; raises one of _BUILD_ERRORS if it cannot be."""
    message = OutboxMail(
        # queue_email already made these safe; a row written any other way is made safe here.
        subject=header_safe(row.subject),
        recipients=[header_safe(row.to_address)],
        body=row.body_text,
        html=row.body_html,
        sender=sender,
    )
    message.render()
    return message


def deliver(
    session: Session | scoped_session[Session],
    *,
    mail_state: Any,
    worker: str,
    clock: Clock,
    timeout: float,
    sender: str,
    limit: int = BATCH_SIZE,
    moot: MootCheck | None = None,
) -> DeliveryReport:
    """One pass: claim a batch, drop what is moot, send the rest over one SMTP connection,
    record every outcome.

    Rows are marked only after the batch, in one transaction: a row is `sent` only once the
    server accepted its DATA. The batch starts no message after SENDING_TIME, well inside the
    lease. If the worker dies mid-batch (or one message outlasts the lease), its rows stay
    `sending` and are offered again after LEASE: a message can be sent twice then, never lost.
    """
    taken = claim(session, worker=worker, clock=clock, limit=limit)
    report = DeliveryReport()
    if not taken.ids:
        return report
    rows = [
        _Content(*row)
        for row in _session(session).execute(
            sa.select(*_CONTENT).where(OutboxMessage.id.in_(taken.ids)).order_by(OutboxMessage.id)
        )
    ]
    outcomes: dict[int, tuple[str, str]] = {}
    linked = [(r.id, r.link_kind, r.link_id) for r in rows if r.link_kind and r.link_id]
    if moot is not None and linked:
        try:
            found = moot(_session(session), linked, clock.now())
        except Exception:
            # A failing check must not hold mail back: the link's own page still refuses
            # whatever can no longer be done.
            log.exception("could not tell which outbox messages are moot; sending them all")
            found = {}
        outcomes.update({row_id: ("moot", why) for row_id, why in found.items()})
    _session(session).rollback()  # no transaction stays open while we talk SMTP
    claimed = [(row.id, row.attempts) for row in rows]

    def in_time() -> bool:
        return clock.now() < taken.at + SENDING_TIME

    try:
        live = [row for row in rows if row.id not in outcomes]
        if live:
            _send(
                live,
                outcomes,
                mail_state=mail_state,
                timeout=timeout,
                sender=sender,
                in_time=in_time,
            )
    except BaseException:
        # Stopped by something unforeseen (a bug, Ctrl+C): what the server accepted is recorded
        # as sent and the rest released, rather than the whole batch waiting for the lease.
        _record(session, taken, claimed, outcomes, clock, report)
        raise
    _record(session, taken, claimed, outcomes, clock, report)
    return report


def _send(
    rows: Sequence[_Content],
    outcomes: dict[int, tuple[str, str]],
    *,
    mail_state: Any,
    timeout: float,
    sender: str,
    in_time: Callable[[], bool],
) -> None:
    """Send the rows over one connection while `in_time()`; `outcomes` gets each row's, as soon
    as it is known (a row without one was not tried)."""
    try:
        with TimeoutConnection(mail_state, timeout) as connection:
            for row in rows:
                if not in_time():
                    break
                try:
                    message = _message(row, sender)
                except _BUILD_ERRORS as exc:
                    outcomes[row.id] = ("dead", f"cannot build the message: {exc!r}")
                    continue
                try:
                    connection.send(message)
                except smtplib.SMTPServerDisconnected as exc:
                    outcomes[row.id] = ("retry", f"connection lost: {exc}")
                    break
                except (smtplib.SMTPException, OSError) as exc:
                    permanent, description = _classify(exc)
                    outcomes[row.id] = ("dead" if permanent else "retry", description)
                    # SMTPException subclasses OSError; only a socket error ends the connection.
                    if not isinstance(exc, smtplib.SMTPException):
                        break
                else:
                    outcomes[row.id] = ("sent", "")
    except (smtplib.SMTPException, OSError) as exc:
        _, description = _classify(exc)
        for row in rows:
            outcomes.setdefault(row.id, ("retry", f"cannot connect: {description}"))


def _record(
    session: Session | scoped_session[Session],
    taken: Claim,
    claimed: Sequence[tuple[int, int]],
    outcomes: dict[int, tuple[str, str]],
    clock: Clock,
    report: DeliveryReport,
) -> None:
    """Every outcome of a batch, in one transaction, for the rows the worker still holds.

    Sent rows and released rows (never tried: the connection ended first, or time ran out)
    take one UPDATE each for the whole batch; only failures and moot rows, rare and each with
    its own error (or reason) and backoff, are loaded and updated one by one. A row another
    worker took over after the lease is left to that worker: writing this batch's outcome over
    it would undo what happened since (a dead letter retried and delivered would be dead again).
    """
    now = clock.now()
    for outcome, _ in outcomes.values():
        if outcome in ("retry", "dead"):
            metrics.count_outbound_failure("email")
    sent = [row_id for row_id, _ in claimed if outcomes.get(row_id, ("",))[0] == "sent"]
    released = [row_id for row_id, _ in claimed if row_id not in outcomes]
    failed = {
        row_id: attempts
        for row_id, attempts in claimed
        if row_id in outcomes and outcomes[row_id][0] != "sent"
    }
    bulk = {"synchronize_session": False}
    lost = 0
    with unit_of_work(session) as tx:
        if sent:
            # An UPDATE's result is a CursorResult (rowcount); execute() is typed as Result.
            marked: CursorResult[Any] = tx.execute(  # type: ignore[assignment]
                sa.update(OutboxMessage)
                .where(OutboxMessage.id.in_(sent), *taken.holds())
                .values(
                    state="sent", sent_at=now, last_error="", attempts=OutboxMessage.attempts + 1
                ),
                execution_options=bulk,
            )
            report.sent += marked.rowcount
            lost += len(sent) - marked.rowcount
        if released:
            freed: CursorResult[Any] = tx.execute(  # type: ignore[assignment]  # as above
                sa.update(OutboxMessage)
                .where(OutboxMessage.id.in_(released), *taken.holds())
                .values(state="queued", claimed_by=None, claimed_at=None),
                execution_options=bulk,
            )
            report.released += freed.rowcount
            lost += len(released) - freed.rowcount
        rows = (
            list(
                tx.scalars(
                    sa.select(OutboxMessage)
                    .where(OutboxMessage.id.in_(list(failed)), *taken.holds())
                    .order_by(OutboxMessage.id)
                )
            )
            if failed
            else []
        )
        lost += len(failed) - len(rows)
        if lost:
            log.warning(
                "outbox: %s message(s) of worker %s were taken over by another worker after the "
                "lease ran out; their outcome is left to it",
                lost,
                taken.worker,
            )
        for row in rows:
            outcome, error = outcomes[row.id]
            if outcome == "moot":
                row.state, row.claimed_by, row.claimed_at = "moot", None, None
                row.last_error = error[:2000]
                report.moot += 1
                log.info("outbox message %s not sent, moot: %s", row.id, error)
                continue
            row.attempts = failed[row.id] + 1
            row.last_error = error[:2000]
            report.errors.append(f"message {row.id} to {row.to_address}: {error}")
            if outcome == "dead" or row.attempts >= MAX_ATTEMPTS:
                row.state = "dead"
                report.dead += 1
                log.error("outbox message %s dead-lettered: %s", row.id, error)
            else:
                row.state, row.claimed_by, row.claimed_at = "queued", None, None
                row.next_attempt_at = now + backoff(row.attempts)
                report.retried += 1
                log.warning("outbox message %s will be retried: %s", row.id, error)


def dead_letters(session: Session | scoped_session[Session]) -> list[OutboxMessage]:
    return list(
        _session(session).scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.state == "dead")
            .order_by(OutboxMessage.id.desc())
        )
    )


def moot_messages(
    session: Session | scoped_session[Session], *, limit: int = 20
) -> list[OutboxMessage]:
    """The newest messages not sent because they were moot, with why."""
    return list(
        _session(session).scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.state == "moot")
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
    )


def requeue(session: Session, message_id: int, *, clock: Clock) -> OutboxMessage | None:
    row = session.get(OutboxMessage, message_id)
    if row is None or row.state != "dead":
        return None
    row.state, row.attempts, row.next_attempt_at = "queued", 0, clock.now()
    row.claimed_by = row.claimed_at = None
    if row.kind in ("webhook", "platform_call"):
        # A webhook or a platform call is retried for a day from its row's creation: queued
        # again, it gets a new day (a webhook's body still carries the event's own time).
        row.created_at = clock.now()
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
