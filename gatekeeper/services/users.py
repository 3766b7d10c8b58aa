"""Staff accounts: add, list, deactivate and reactivate; roles decide what the web UI allows.

Every change is an audit event: who may approve releases is itself something auditors ask.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.orm import Session

from gatekeeper.db.models import ROLES, User
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import Conflict, NotFound, ValidationFailed
from gatekeeper.services import audit, tokens

ADMIN, RELEASE_MANAGER, GOVERNANCE_REVIEWER = ROLES
MAX_NAME_CHARS = 200


def normalise_email(email: str) -> str:
    try:
        checked = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ValidationFailed(f"{email.strip()!r} is not a valid email address") from None
    return str(checked.normalized).lower()


def add_user(
    session: Session, *, email: str, name: str, role: str, clock: Clock, actor: str = "cli"
) -> User:
    address = normalise_email(email)
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of: {', '.join(ROLES)}")
    cleaned = name.strip()
    if not cleaned or len(cleaned) > MAX_NAME_CHARS:
        raise ValidationFailed(f"a name of 1-{MAX_NAME_CHARS} characters is required")
    if session.scalar(sa.select(User.id).where(User.email == address)) is not None:
        raise Conflict(f"a user {address} already exists")
    user = User(
        email=address,
        name=cleaned,
        role=role,
        active=True,
        created_at=clock.now(),
        session_version=1,
    )
    session.add(user)
    session.flush()
    _account_event(session, "user.added", user, actor=actor, now=clock.now())
    return user


def _account_event(session: Session, action: str, user: User, *, actor: str, now: datetime) -> None:
    audit.record(
        session,
        action=action,
        actor=actor,
        subject=f"staff account {user.email}",
        now=now,
        details={"role": user.role, "name": user.name},
    )


def list_users(session: Session) -> list[User]:
    return list(session.scalars(sa.select(User).order_by(User.email)))


def get_user(session: Session, email: str) -> User:
    user = session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user {email.strip()!r}")
    return user


def find_active(session: Session, email: str, *, for_update: bool = False) -> User | None:
    query = sa.select(User).where(User.email == email.strip().lower(), User.active.is_(True))
    return session.scalar(query.with_for_update() if for_update else query)


def session_user(session: Session, user_id: int, session_version: int) -> User | None:
    """The user a browser session belongs to, if it is still valid: active, same version."""
    return session.scalar(
        sa.select(User).where(
            User.id == user_id,
            User.active.is_(True),
            User.session_version == session_version,
        )
    )


def user_by_id(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user #{user_id}")
    return user


def deactivate_user(session: Session, email: str, *, clock: Clock, actor: str = "cli") -> User:
    """Deactivate and sign out everywhere: every session of this user stops working at once,
    and every API token they own is revoked (for good: activating the account again brings
    neither back, as a departed person's scripts may still hold them).

    Nobody deactivates their own account (they would lock themselves out mid-action), and the
    last active admin stays: without one, nobody could manage accounts from the web UI.
    """
    user = get_user(session, email)
    if not user.active:
        return user
    if user.email == actor:
        raise Conflict("you cannot deactivate your own account; ask another admin")
    if user.role == ADMIN:
        admins = session.scalar(
            sa.select(sa.func.count())
            .select_from(User)
            .where(User.role == ADMIN, User.active.is_(True))
        )
        if admins == 1:
            raise Conflict(f"{user.email} is the last active admin; add another admin first")
    user.active = False
    user.deactivated_at = clock.now()
    user.session_version += 1
    session.flush()
    _account_event(session, "user.deactivated", user, actor=actor, now=user.deactivated_at)
    tokens.revoke_tokens_of(
        session,
        user.email,
        now=user.deactivated_at,
        actor=actor,
        reason=f"owner {user.email} deactivated",
    )
    return user


def sign_out(session: Session, user_id: int, *, clock: Clock) -> None:
    """End every session of this user, on the server: a session cookie lives on the client, and
    a copy taken before sign-out would otherwise stay valid until it expires. Bumping the
    session version (part of every session's identity) makes each copy resolve to nobody."""
    user = user_by_id(session, user_id)
    user.session_version += 1
    session.flush()
    audit.record(
        session,
        action="user.signed_out",
        actor=user.email,
        subject=f"staff account {user.email}",
        now=clock.now(),
    )


def activate_user(session: Session, email: str, *, clock: Clock, actor: str = "cli") -> User:
    user = get_user(session, email)
    if user.active:
        return user
    user.active = True
    user.deactivated_at = None
    session.flush()
    _account_event(session, "user.activated", user, actor=actor, now=clock.now())
    return user
