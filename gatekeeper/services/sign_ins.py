"""Passwordless staff sign-in: a short-lived, single-use link emailed to an active account."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gatekeeper.db.models import SignInLink, User
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import LinkUnusable, TokenExpired, TokenInvalid
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, users
from gatekeeper.services.links import new_nonce, nonce_hash
from gatekeeper.signing import TokenService

LOGIN_PURPOSE = "login"
SIGN_IN_TTL = timedelta(minutes=15)
ACTIVE, USED, SUPERSEDED = "active", "used", "superseded"


@dataclass(frozen=True)
class SignInSettings:
    base_url: str
    secret_keys: tuple[str, ...]
    ttl: timedelta = SIGN_IN_TTL

    def tokens(self, clock: Clock) -> TokenService:
        return TokenService(self.secret_keys, LOGIN_PURPOSE, int(self.ttl.total_seconds()), clock)


@dataclass(frozen=True)
class SignInView:
    """Who a sign-in link signs in; what the confirmation page shows."""

    link_id: int
    user_id: int
    email: str
    name: str
    role: str
    session_version: int
    expires_at: datetime


def request_sign_in(
    session: Session, email: str, *, settings: SignInSettings, clock: Clock
) -> str | None:
    """Email a sign-in link to an active account and return it; None, and no email, otherwise.

    The caller must answer the same either way, so nobody can probe which addresses exist.
    Earlier unused links of the account die: only the newest one works.
    """
    user = users.find_active(session, email)
    if user is None:
        return None
    now = clock.now()
    session.execute(
        sa.update(SignInLink)
        .where(SignInLink.user_id == user.id, SignInLink.state == ACTIVE)
        .values(state=SUPERSEDED)
        .execution_options(synchronize_session=False)
    )
    nonce, hashed = new_nonce()
    link = SignInLink(
        user_id=user.id,
        nonce_hash=hashed,
        state=ACTIVE,
        created_at=now,
        expires_at=now + settings.ttl,
    )
    session.add(link)
    session.flush()
    url = f"{settings.base_url}/login/{settings.tokens(clock).dumps({'l': link.id, 'n': nonce})}"
    queue_email(
        session,
        to=user.email,
        template="sign_in",
        context={
            "name": user.name,
            "url": url,
            "minutes": int(settings.ttl.total_seconds() // 60),
            "expires_at": link.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        },
        now=now,
    )
    return url


def _load(
    session: Session, token: str, settings: SignInSettings, clock: Clock
) -> tuple[SignInLink, User]:
    try:
        payload = settings.tokens(clock).loads(token)
    except TokenExpired:
        raise LinkUnusable("expired", "This sign-in link has expired.") from None
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("l"), int)
        and isinstance(payload.get("n"), str)
    ):
        raise TokenInvalid("this sign-in link is not valid")
    found = session.execute(
        sa.select(SignInLink, User)
        .join(User, User.id == SignInLink.user_id)
        .where(SignInLink.id == payload["l"])
    ).first()
    if found is None or not hmac.compare_digest(found[0].nonce_hash, nonce_hash(payload["n"])):
        raise TokenInvalid("this sign-in link is not valid")
    return found[0], found[1]


def open_sign_in(
    session: Session, token: str, *, settings: SignInSettings, clock: Clock
) -> SignInView:
    """Who the link would sign in. Reading never changes anything: mail scanners open links."""
    link, user = _load(session, token, settings, clock)
    if link.state == USED:
        raise LinkUnusable("used", "This sign-in link was used already; links work once.")
    if link.state == SUPERSEDED:
        raise LinkUnusable(
            "superseded", "A newer sign-in link was sent; use the newest email, or ask again."
        )
    if clock.now() >= link.expires_at:
        raise LinkUnusable("expired", "This sign-in link has expired.")
    if not user.active:
        raise LinkUnusable("revoked", "This account is not active.")
    return SignInView(
        link.id,
        user.id,
        user.email,
        user.name,
        user.role,
        user.session_version,
        link.expires_at,
    )


def consume_sign_in(
    session: Session, token: str, *, settings: SignInSettings, clock: Clock
) -> SignInView:
    """Use the link exactly once (conditional UPDATE, checked by rowcount) and say who it was."""
    view = open_sign_in(session, token, settings=settings, clock=clock)
    now = clock.now()
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(SignInLink)
        .where(
            SignInLink.id == view.link_id,
            SignInLink.state == ACTIVE,
            SignInLink.expires_at > now,
        )
        .values(state=USED, used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise LinkUnusable("used", "This sign-in link was used already; links work once.")
    audit.record(
        session,
        action="user.signed_in",
        actor=view.email,
        subject=f"sign-in link {view.link_id}",
        now=now,
        details={"role": view.role},
    )
    return view
