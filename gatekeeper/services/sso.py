"""Single sign-on: each round trip finishes once, accounts are made on first sign-in, and the
role comes from the identity provider's groups at every sign-in.

The OpenID Connect protocol itself (redirects, code exchange, ID-token checks) is Authlib's, in
the web adapter; this module decides what a validated ID token lets in, and audits it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gatekeeper.db.models import SsoAttempt, User
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import LinkUnusable, TokenInvalid, ValidationFailed
from gatekeeper.domain.sso import Identity, SignInRefused, read_identity
from gatekeeper.services import audit, users
from gatekeeper.services.links import nonce_hash

# Long enough to sign in at the provider (a password, a second factor), short enough that a
# forgotten tab cannot finish a sign-in the next morning.
ATTEMPT_TTL = timedelta(minutes=10)
# Expired attempts are deleted this long after they expire; until then they still answer
# "expired" rather than "not started here".
ATTEMPT_KEPT = timedelta(days=1)
ACTOR = "sso"


@dataclass(frozen=True)
class SsoSettings:
    issuer: str
    role_claim: str
    role_map: Mapping[str, str]
    require_verified_email: bool


@dataclass(frozen=True)
class SignedIn:
    """The staff session to open."""

    user_id: int
    email: str
    name: str
    role: str
    session_version: int


def begin_attempt(session: Session, state: str, *, now: datetime) -> None:
    """Remember a round trip begun with `state` (its hash only)."""
    session.execute(sa.delete(SsoAttempt).where(SsoAttempt.expires_at < now - ATTEMPT_KEPT))
    session.add(
        SsoAttempt(state_hash=nonce_hash(state), created_at=now, expires_at=now + ATTEMPT_TTL)
    )
    session.flush()


def claim_attempt(session: Session, state: str, *, now: datetime) -> None:
    """Finish the round trip begun with `state`, once: a conditional UPDATE checked by rowcount,
    so a replayed or doubled callback is refused even when the browser's cookie is replayed
    with it."""
    digest = nonce_hash(state)
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(SsoAttempt)
        .where(
            SsoAttempt.state_hash == digest,
            SsoAttempt.used_at.is_(None),
            SsoAttempt.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 1:
        return
    attempt = session.scalar(sa.select(SsoAttempt).where(SsoAttempt.state_hash == digest))
    if attempt is None:
        raise TokenInvalid("this sign-in was not started here")
    if attempt.used_at is not None:
        raise LinkUnusable("used", "This sign-in was completed already; each one works once.")
    raise LinkUnusable("expired", "This sign-in took longer than 10 minutes to come back.")


def complete_sign_in(
    session: Session, claims: Mapping[str, object], *, settings: SsoSettings, clock: Clock
) -> SignedIn | SignInRefused:
    """Let in the person a validated ID token names, or say why not.

    The account is made on the first sign-in and takes its role from the groups every time,
    so a group removed at the provider removes the role here. A deactivated account stays out
    whatever the groups say. Every outcome is an audit event; a refusal is returned, not
    raised, because it is committed too (its audit event, a removed role).
    """
    now = clock.now()
    try:
        identity = read_identity(
            claims,
            role_claim=settings.role_claim,
            role_map=settings.role_map,
            require_verified_email=settings.require_verified_email,
        )
        email = _address(identity)
    except SignInRefused as unvouched:
        return _refuse(session, unvouched, ACTOR, claims, settings, now)
    user = session.scalar(sa.select(User).where(User.email == email))
    if user is not None and not user.active:
        refusal = SignInRefused(
            "deactivated",
            f"The Gatekeeper account {email} is deactivated. An admin can activate it again.",
        )
        return _refuse(session, refusal, email, claims, settings, now)
    if user is None and identity.role is not None:
        user = users.add_user(
            session,
            email=email,
            name=identity.name[: users.MAX_NAME_CHARS],
            role=identity.role,
            clock=clock,
            actor=ACTOR,
        )
    elif user is not None and user.role != identity.role:
        _change_role(session, user, identity, settings, now)
    if user is None or user.role is None:
        refusal = SignInRefused(
            "no_role",
            "None of your groups at the identity provider gives a Gatekeeper role, so there is "
            "nothing for you to see here. If you need access, ask your administrators to add "
            "you to a Gatekeeper group.",
        )
        return _refuse(session, refusal, email, claims, settings, now)
    audit.record(
        session,
        action="user.signed_in",
        actor=email,
        subject="single sign-on",
        now=now,
        details={**_provenance(claims, settings), "role": user.role},
    )
    return SignedIn(user.id, user.email, user.name, user.role, user.session_version)


def _address(identity: Identity) -> str:
    try:
        return users.normalise_email(identity.email)
    except ValidationFailed:
        raise SignInRefused(
            "no_email",
            "Your identity provider sent an email address that is not valid, and Gatekeeper "
            "knows people by it. Ask its administrators to correct it.",
        ) from None


def _change_role(
    session: Session, user: User, identity: Identity, settings: SsoSettings, now: datetime
) -> None:
    """The provider's groups decide. Other sessions of the account end: they were opened with
    the old role."""
    before = user.role
    user.role = identity.role
    user.session_version += 1
    session.flush()
    audit.record(
        session,
        action="user.role_changed",
        actor=ACTOR,
        subject=f"staff account {user.email}",
        now=now,
        details={
            "from": before,
            "to": user.role,
            "groups": sorted(g for g in identity.groups if g in settings.role_map),
            "issuer": settings.issuer,
        },
    )


def _refuse(
    session: Session,
    refusal: SignInRefused,
    actor: str,
    claims: Mapping[str, object],
    settings: SsoSettings,
    now: datetime,
) -> SignInRefused:
    audit.record(
        session,
        action="user.sign_in_refused",
        actor=actor,
        subject="single sign-on",
        now=now,
        details={**_provenance(claims, settings), "reason": refusal.reason},
    )
    return refusal


def _provenance(claims: Mapping[str, object], settings: SsoSettings) -> dict[str, object]:
    """Which provider vouched, and for which of its subjects (stable even if the address
    changes there)."""
    return {"method": "sso", "issuer": settings.issuer, "subject": str(claims.get("sub", ""))}
