"""Post outbox webhook rows: Standard Webhooks signatures, an SSRF guard, retries over 24 hours."""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import logging
import random
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session, scoped_session
from standardwebhooks.webhooks import Webhook

from gatekeeper import metrics
from gatekeeper.db.models import OutboxMessage, WebhookDelivery, WebhookSubscription
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import Clock
from gatekeeper.notify.worker import LEASE, Claim, DeliveryReport, claim

log = logging.getLogger(__name__)

KIND = "webhook"
BATCH_SIZE = 50
# A webhook is retried for a day after its event, then dead-lettered.
RETRY_BUDGET = timedelta(hours=24)
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=2)
# Start no post after this much of the lease: a live worker's rows are never offered again.
SENDING_TIME = LEASE / 2
# What is kept of a receiver's answer: enough to show why it refused.
RESPONSE_KEPT = 500
# A whole post (connect, send, answer) may take this many timeouts at most.
TOTAL_TIMEOUTS = 3
USER_AGENT = "Gatekeeper-Webhooks/1"
_SEAL_SALT = b"gatekeeper.webhook-secret"
# Cloud metadata services: refused whatever the settings say.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254")
)


@dataclass(frozen=True)
class WebhookSettings:
    secret_keys: Sequence[str]
    allow_private: bool = False
    timeout: float = 10.0


class RefusedTarget(Exception):
    """The URL may not receive webhooks: wrong scheme, or an address the guard refuses."""


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _cipher(secret_keys: Sequence[str]) -> MultiFernet:
    """Fernet keys derived from the application's secret keys, newest first: a secret sealed
    under an old key still opens while that key is listed, and new seals use the newest."""
    keys = []
    for key in reversed(secret_keys):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SEAL_SALT, info=b"").derive(
            key.encode()
        )
        keys.append(Fernet(base64.urlsafe_b64encode(derived)))
    return MultiFernet(keys)


def seal(secret: str, secret_keys: Sequence[str]) -> str:
    return _cipher(secret_keys).encrypt(secret.encode()).decode()


def unseal(sealed: str, secret_keys: Sequence[str]) -> str:
    return _cipher(secret_keys).decrypt(sealed.encode()).decode()


def address_allowed(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_private: bool
) -> bool:
    """Public addresses always; private and loopback ones only when allowed; link-local,
    metadata, multicast and unspecified ones never (nor anything else that is not global)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES or address.is_link_local or address.is_multicast:
        return False
    if address.is_unspecified:
        return False
    if address.is_global:
        return True
    return allow_private and (address.is_private or address.is_loopback)


class Target(NamedTuple):
    """Where a post goes: the URL's parts and the one address it was checked at."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def resolve(url: str, *, allow_private: bool) -> Target:
    """Check `url` and pick the address to connect to, after DNS resolution: every address
    the name resolves to must pass, so a name cannot mix a public and a private answer."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedTarget("only http and https URLs can receive webhooks")
    if not parts.hostname:
        raise RefusedTarget("the URL names no host")
    if parts.username or parts.password:
        raise RefusedTarget("the URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedTarget("the URL's port is not a number") from None
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise LookupError(f"cannot resolve {parts.hostname}: {exc}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found]
    for address in addresses:
        if not address_allowed(address, allow_private=allow_private):
            raise RefusedTarget(
                f"{parts.hostname} resolves to {address}, an address webhooks are not sent to"
            )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, str(addresses[0]))


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked address, whatever the name resolves to by now (DNS rebinding);
    the Host header still names the host."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As _PinnedHTTP, over TLS: the certificate is checked against the host name."""

    def __init__(self, target: Target, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._address = target.address

    def connect(self) -> None:
        plain = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(plain, server_hostname=self.host)


class Attempt(NamedTuple):
    status_code: int | None
    error: str
    duration_ms: int
    # Retrying cannot help: the guard refuses the address, or the secret cannot be read.
    permanent: bool = False

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(secret: str, webhook_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers, signed by the specification's own library."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body),
    }


def _cut(connection: http.client.HTTPConnection, cut: threading.Event) -> None:
    """End a post from the watchdog thread: a shut socket wakes the worker's blocked read."""
    cut.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: the post ended by itself
            sock.shutdown(socket.SHUT_RDWR)


class Exchange(NamedTuple):
    status: int | None
    text: str  # the start of the answer's body
    error: str
    duration_ms: int


def exchange(
    method: str,
    target: Target,
    body: bytes | None,
    headers: dict[str, str],
    *,
    timeout: float,
    keep: int = RESPONSE_KEPT,
) -> Exchange:
    """One request to a checked target, no redirect followed (http.client never follows one):
    a 3xx is a failure, so credentials in `headers` reach only the host the check named.

    `timeout` bounds each socket operation, and TOTAL_TIMEOUTS of it the whole exchange: a
    receiver trickling its answer a byte at a time cannot hold the worker past its lease."""
    connection_class = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    connection = connection_class(target, timeout)
    started = time.monotonic()
    cut = threading.Event()
    watchdog = threading.Timer(timeout * TOTAL_TIMEOUTS, _cut, args=(connection, cut))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(
            method, target.path, body=body, headers={"User-Agent": USER_AGENT, **headers}
        )
        response = connection.getresponse()
        text = response.read(keep).decode(errors="replace")
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        if isinstance(exc, TimeoutError | socket.timeout):
            return Exchange(None, "", f"timed out after {timeout:g} s", elapsed)
        if cut.is_set():
            return Exchange(None, "", f"took longer than {timeout * TOTAL_TIMEOUTS:g} s", elapsed)
        return Exchange(None, "", f"{type(exc).__name__}: {exc}", elapsed)
    finally:
        watchdog.cancel()
        connection.close()
    elapsed = int((time.monotonic() - started) * 1000)
    if 200 <= status < 300:
        return Exchange(status, text, "", elapsed)
    if 300 <= status < 400:
        return Exchange(status, text, f"HTTP {status}: redirects are not followed", elapsed)
    return Exchange(status, text, f"HTTP {status}: {text.strip()[:200]}", elapsed)


def post(target: Target, body: str, headers: dict[str, str], *, timeout: float) -> Attempt:
    """One JSON POST of a webhook or platform event (see `exchange`)."""
    answer = exchange(
        "POST",
        target,
        body.encode(),
        {"Content-Type": "application/json", **headers},
        timeout=timeout,
    )
    return Attempt(answer.status, answer.error, answer.duration_ms)


def backoff(attempts: int, *, jitter: float) -> timedelta:
    """Exponential, capped, and `jitter` (0..1) spreads it over its upper half, so receivers
    coming back up are not hit by every retry at once."""
    delay = min(BACKOFF_BASE * (1 << min(max(attempts - 1, 0), 20)), BACKOFF_MAX)
    return delay * (0.5 + jitter / 2)


class _Row(NamedTuple):
    id: int
    attempts: int
    created_at: datetime
    template: str
    webhook_id: str
    body_text: str
    subscription_id: int
    url: str
    secret_sealed: str


_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.attempts,
    OutboxMessage.created_at,
    OutboxMessage.template,
    OutboxMessage.webhook_id,
    OutboxMessage.body_text,
    OutboxMessage.subscription_id,
    WebhookSubscription.url,
    WebhookSubscription.secret_sealed,
)


def _session(session: Session | scoped_session[Session]) -> Session:
    return session() if isinstance(session, scoped_session) else session


def deliver(
    session: Session | scoped_session[Session],
    *,
    worker: str,
    clock: Clock,
    settings: WebhookSettings,
    limit: int = BATCH_SIZE,
) -> DeliveryReport:
    """One pass: claim due webhook rows, post each, record each outcome as soon as it is known.

    A row is `sent` only after a 2xx. If the worker dies between the receiver's answer and the
    record, the row stays `sending` and is posted again after the lease, with the same
    webhook-id: a receiver may see a webhook twice, and can tell; it never misses one.
    """
    taken = claim(session, worker=worker, clock=clock, limit=limit, kind=KIND)
    report = DeliveryReport()
    if not taken.ids:
        return report
    rows = [
        _Row._make(row)
        for row in _session(session).execute(
            sa.select(*_COLUMNS)
            .join(WebhookSubscription, WebhookSubscription.id == OutboxMessage.subscription_id)
            .where(OutboxMessage.id.in_(taken.ids))
            .order_by(OutboxMessage.id)
        )
    ]
    _session(session).rollback()  # no transaction stays open while we talk HTTP
    for index, row in enumerate(rows):
        if clock.now() >= taken.at + SENDING_TIME:
            _release(session, taken, [r.id for r in rows[index:]], report)
            break
        attempt = _attempt(row, clock=clock, settings=settings)
        _record(session, taken, row, attempt, clock=clock, report=report)
    return report


def _attempt(row: _Row, *, clock: Clock, settings: WebhookSettings) -> Attempt:
    try:
        target = resolve(row.url, allow_private=settings.allow_private)
    except RefusedTarget as refused:
        return Attempt(None, f"refused: {refused}", 0, permanent=True)
    except LookupError as exc:
        return Attempt(None, str(exc), 0)
    try:
        secret = unseal(row.secret_sealed, settings.secret_keys)
    except InvalidToken:
        return Attempt(
            None, "the signing secret cannot be read: was its secret key removed?", 0, True
        )
    headers = signed_headers(secret, row.webhook_id, clock.now(), row.body_text)
    return post(target, row.body_text, headers, timeout=settings.timeout)


def _release(
    session: Session | scoped_session[Session],
    taken: Claim,
    ids: list[int],
    report: DeliveryReport,
) -> None:
    with unit_of_work(session) as tx:
        # An UPDATE's result is a CursorResult (rowcount); execute() is typed as Result.
        freed: CursorResult[Any] = tx.execute(  # type: ignore[assignment]
            sa.update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), *taken.holds())
            .values(state="queued", claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        report.released += freed.rowcount


def _record(
    session: Session | scoped_session[Session],
    taken: Claim,
    row: _Row,
    attempt: Attempt,
    *,
    clock: Clock,
    report: DeliveryReport,
) -> None:
    """The attempt in the subscription's log and the row's new state, in one transaction, if
    this worker still holds the row."""
    now = clock.now()
    with unit_of_work(session) as tx:
        message = tx.scalar(
            sa.select(OutboxMessage).where(OutboxMessage.id == row.id, *taken.holds())
        )
        if message is None:
            log.warning(
                "webhook %s was taken over by another worker; its outcome is left to it", row.id
            )
            return
        tx.add(
            WebhookDelivery(
                subscription_id=row.subscription_id,
                outbox_id=row.id,
                webhook_id=row.webhook_id,
                event=row.template,
                attempted_at=now,
                status_code=attempt.status_code,
                error=attempt.error[:2000],
                duration_ms=attempt.duration_ms,
            )
        )
        message.attempts = row.attempts + 1
        message.claimed_by = message.claimed_at = None
        if attempt.delivered:
            message.state, message.sent_at, message.last_error = "sent", now, ""
            report.sent += 1
            return
        message.last_error = attempt.error[:2000]
        report.errors.append(f"webhook {row.id} to {row.url}: {attempt.error}")
        metrics.count_outbound_failure("webhook")
        deadline = row.created_at + RETRY_BUDGET
        if attempt.permanent or now >= deadline:
            message.state = "dead"
            report.dead += 1
            log.error("webhook %s dead-lettered: %s", row.id, attempt.error)
            return
        message.state = "queued"
        jitter = random.random()  # noqa: S311  # spreads retries out; nothing secret
        message.next_attempt_at = min(now + backoff(message.attempts, jitter=jitter), deadline)
        report.retried += 1
        log.warning("webhook %s will be retried: %s", row.id, attempt.error)


def body(event: str, data: dict[str, object], *, at: datetime) -> str:
    """The JSON posted for an event: the Standard Webhooks envelope (type, timestamp, data)."""
    return json.dumps(
        {"type": event, "timestamp": at.isoformat().replace("+00:00", "Z"), "data": data},
        sort_keys=True,
        separators=(",", ":"),
    )
