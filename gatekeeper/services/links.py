"""Emailed links: a nonce kept only as a hash, and one way to issue, load, use and retire them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gatekeeper.db.base import is_id
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import LinkUnusable, TokenExpired, TokenInvalid
from gatekeeper.signing import TokenService

ACTIVE, USED, SUPERSEDED = "active", "used", "superseded"


class Link(Protocol):
    id: int
    nonce_hash: str
    state: str
    created_at: datetime
    expires_at: datetime


LinkT = TypeVar("LinkT", bound=Link)


@dataclass(frozen=True)
class LinkSigning:
    """Where one kind of emailed link points, and how long it stays valid."""

    base_url: str
    secret_keys: tuple[str, ...]
    ttl: timedelta
    # Salts the signature, so a token made for one kind of link is refused by every other kind.
    purpose: ClassVar[str]

    def tokens(self, clock: Clock) -> TokenService:
        return TokenService(self.secret_keys, self.purpose, int(self.ttl.total_seconds()), clock)


def new_nonce() -> tuple[str, str]:
    """A fresh nonce for the token, and the hash the database keeps instead of it."""
    nonce = secrets.token_urlsafe(24)
    return nonce, nonce_hash(nonce)


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def token_for(tokens: TokenService, link_id: int, nonce: str) -> str:
    return tokens.dumps({"l": link_id, "n": nonce})


def issue_link(
    session: Session,
    link: Link,
    *,
    tokens: TokenService,
    base_url: str,
    route: str,
    now: datetime,
    ttl: timedelta,
) -> str:
    """Store `link` as a new active link valid for `ttl`; return the URL to email.

    `base_url` is the configured one: a URL built from the request's Host header would let
    whoever sends the request choose where the emailed secret goes.
    """
    nonce, link.nonce_hash = new_nonce()
    link.state = ACTIVE
    link.created_at = now
    link.expires_at = now + ttl
    session.add(link)
    session.flush()
    return f"{base_url}/{route}/{token_for(tokens, link.id, nonce)}"


def retire_links(
    session: Session,
    model: type[Link],
    *where: sa.ColumnElement[bool],
    state: str = SUPERSEDED,
) -> None:
    """The active links of `model` that match `where` stop working."""
    session.execute(
        sa.update(model)
        .where(sa.inspect(model).columns.state == ACTIVE, *where)
        .values(state=state)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class RecipientLimit:
    """How often one recipient may be sent a new link of one kind, whoever asks and from where.

    Counted from the links table itself, so the limit holds across processes and client
    addresses: knowing someone's address must not be enough to flood their inbox, nor to keep
    killing their link by asking for a new one (only the newest link works).
    """

    keep_newer_than: timedelta  # an active link younger than this is kept, and none is sent
    per_hour: int  # no new link once this many were sent to the recipient in the past hour


RECENT = timedelta(hours=1)


def may_send_another(
    session: Session,
    model: type[Link],
    *,
    recipient: sa.ColumnElement[bool],
    replaced: sa.ColumnElement[bool],
    now: datetime,
    limit: RecipientLimit,
) -> bool:
    """Whether a new link may go to `recipient` now; `replaced` names the links it would kill."""
    columns = sa.inspect(model).columns
    young = session.scalar(
        sa.select(sa.func.count())
        .select_from(model)
        .where(
            replaced,
            columns.state == ACTIVE,
            columns.expires_at > now,
            columns.created_at > now - limit.keep_newer_than,
        )
    )
    if young:
        return False
    recent = session.scalar(
        sa.select(sa.func.count())
        .select_from(model)
        .where(recipient, columns.created_at > now - RECENT)
    )
    return (recent or 0) < limit.per_hour


def use_link(
    session: Session, model: type[Link], link_id: int, *, now: datetime, used: str
) -> None:
    """Mark the link used, with a conditional UPDATE checked by rowcount: of two requests racing
    with one link exactly one wins, and the other is told `used`."""
    columns = sa.inspect(model).columns
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(model)
        .where(columns.id == link_id, columns.state == ACTIVE, columns.expires_at > now)
        .values(state=USED, used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise LinkUnusable("used", used)


def unusable(links: Iterable[LinkT], check: Callable[[LinkT], None]) -> dict[int, str]:
    """Why each of `links` can no longer be used (what `check` raises), for those that cannot:
    an email carrying such a link is moot."""
    reasons: dict[int, str] = {}
    for link in links:
        try:
            check(link)
        except LinkUnusable as refused:
            reasons[link.id] = f"{refused.reason}: {refused.message}"
    return reasons


def load_link(
    session: Session,
    token: str,
    *,
    tokens: TokenService,
    model: type[LinkT],
    expired: str = "This link has expired.",
    invalid: str = "this link is not valid",
) -> LinkT:
    """The link row a token names: signature, age and nonce checked, in constant time."""
    try:
        payload: Any = tokens.loads(token)
    except TokenExpired:
        raise LinkUnusable("expired", expired) from None
    # A well-signed id out of the column's range names no link: refused before the query.
    if not (
        isinstance(payload, dict) and is_id(payload.get("l")) and isinstance(payload.get("n"), str)
    ):
        raise TokenInvalid(invalid)
    link = session.get(model, payload["l"])
    if link is None or not hmac.compare_digest(link.nonce_hash, nonce_hash(payload["n"])):
        raise TokenInvalid(invalid)
    return link
