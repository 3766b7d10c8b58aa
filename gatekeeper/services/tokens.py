"""API tokens: random, prefixed, shown once, stored as sha256, scoped and revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import ROLES, ApiToken, User
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    ValidationFailed,
)
from gatekeeper.services import audit
from gatekeeper.services.head_cache import Head, HeadCache, committed_head

ADMIN, RELEASE_MANAGER, _GOVERNANCE_REVIEWER = ROLES
# Who may assemble packages, as in the web UI: only they may own a packages:write token.
ASSEMBLER_ROLES = (RELEASE_MANAGER, ADMIN)

PREFIX = "gk_"
SCOPE_GATE_READ = "gate:read"
SCOPE_PACKAGES_WRITE = "packages:write"
SCOPE_RELEASES_WRITE = "releases:write"
SCOPE_AUDIT_READ = "audit:read"
SCOPES = (SCOPE_GATE_READ, SCOPE_PACKAGES_WRITE, SCOPE_RELEASES_WRITE, SCOPE_AUDIT_READ)
# Throttle last-used writes: a CI poller must not turn every gate read into a write.
LAST_USED_RESOLUTION_SECONDS = 60


@dataclass(frozen=True)
class IssuedToken:
    name: str
    secret: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Caller:
    """Who is calling the API: the token's name (the audit actor) and what it may do."""

    token_id: int
    name: str
    scopes: frozenset[str]
    owner: str | None
    last_used_at: datetime | None = None
    owner_role: str | None = None

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        if not self.may(scope):
            raise PermissionDenied(f"this token lacks the {scope} scope")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _checked_owner(session: Session, owner: str | None, scopes: tuple[str, ...]) -> str | None:
    """The owner's address, when it may own a token with these scopes: an active staff account,
    and one that may assemble packages for a packages:write token (else every write refuses)."""
    writes_packages = SCOPE_PACKAGES_WRITE in scopes
    if owner is None or not owner.strip():
        if writes_packages:
            raise ValidationFailed(
                f"a {SCOPE_PACKAGES_WRITE} token needs an owner (--owner EMAIL): the release "
                "manager or admin accountable for the packages it writes"
            )
        return None
    address = owner.strip().lower()
    role = session.scalar(sa.select(User.role).where(User.email == address, User.active.is_(True)))
    if role is None:
        raise ValidationFailed(
            f"{owner.strip()!r} is not the address of an active staff account "
            "(gatekeeper users list)"
        )
    if writes_packages and role not in ASSEMBLER_ROLES:
        raise ValidationFailed(
            f"{address} is a {role}: only a {RELEASE_MANAGER} or an {ADMIN} may own a "
            f"{SCOPE_PACKAGES_WRITE} token"
        )
    return address


def create_token(
    session: Session,
    *,
    name: str,
    scopes: tuple[str, ...],
    owner: str | None,
    clock: Clock,
    actor: str = "cli",
) -> IssuedToken:
    name = name.strip()
    if not name or len(name) > 64:
        raise ValidationFailed("a token needs a name of 1-64 characters")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValidationFailed(f"scopes must be among: {', '.join(SCOPES)}")
    owner = _checked_owner(session, owner, scopes)
    if session.scalar(sa.select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"a token named {name!r} already exists; revoke it or pick another name")
    secret = PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            prefix=secret[:10],
            token_hash=_hash(secret),
            scopes=" ".join(sorted(set(scopes))),
            owner=owner,
            created_at=clock.now(),
        )
    )
    session.flush()
    audit.record(
        session,
        action="token.created",
        actor=actor,
        subject=f"API token {name}",
        now=clock.now(),
        details={"scopes": sorted(set(scopes)), "owner": owner, "prefix": secret[:10]},
    )
    return IssuedToken(name, secret, tuple(sorted(set(scopes))))


def _well_formed(secret: str) -> bool:
    return secret.startswith(PREFIX) and len(secret) <= 200


def _digest_of(secret: str) -> str:
    if not _well_formed(secret):
        raise Unauthenticated("invalid or revoked API token")
    return _hash(secret)


def authenticate(session: Session, secret: str) -> Caller:
    """Find the live token for `secret`; unknown, malformed and revoked tokens all fail alike,
    and so does a token whose owner has no active account (deactivation stops it at once)."""
    digest = _digest_of(secret)
    # Plain columns on the connection, not an ORM entity: CI polls the gate with a token on
    # every call, and the ORM's loading costs more than the query itself.
    token = (
        session.connection()
        .execute(
            sa.select(
                ApiToken.id,
                ApiToken.name,
                ApiToken.scopes,
                ApiToken.owner,
                ApiToken.last_used_at,
                ApiToken.revoked_at,
                ApiToken.token_hash,
                User.active.label("owner_active"),
                User.role.label("owner_role"),
            )
            .outerjoin(User, User.email == ApiToken.owner)
            .where(ApiToken.token_hash == digest)
        )
        .first()
    )
    if (
        token is None
        or token.revoked_at is not None
        or (token.owner is not None and not token.owner_active)
        or not hmac.compare_digest(token.token_hash, digest)
    ):
        raise Unauthenticated("invalid or revoked API token")
    return Caller(
        token.id,
        token.name,
        frozenset(token.scopes.split()),
        token.owner,
        token.last_used_at,
        token.owner_role,
    )


class CallerCache(HeadCache[str, Caller]):
    """Authenticated tokens per process, keyed by the secret's sha256. Creating and revoking a
    token, and deactivating its owner, all append an audit event, so a revoked token or one
    whose owner was deactivated is refused from the next request on; failures are never
    cached."""

    def authenticate(self, session: Session, secret: str) -> Caller:
        head = committed_head(session)
        found = self.cached_at(head, secret)
        if found is not None:
            return found
        caller = authenticate(session, secret)
        self.put(_digest_of(secret), head, caller)
        return caller

    def cached_at(self, head: Head | None, secret: str) -> Caller | None:
        """The caller this secret authenticated as at this head, if it was looked up then."""
        return self.get(_hash(secret), head) if _well_formed(secret) else None

    def touched(self, secret: str) -> None:
        """The token's last use was just recorded: its cached copy has an old one."""
        self.forget(_digest_of(secret))


def needs_touch(caller: Caller, *, clock: Clock) -> bool:
    last = caller.last_used_at
    return last is None or (clock.now() - last).total_seconds() >= LAST_USED_RESOLUTION_SECONDS


def touch(session: Session, caller: Caller, *, clock: Clock) -> None:
    """Record the token's last use; throttled so a polling CI job does not write on every call."""
    now = clock.now()
    session.execute(
        sa.update(ApiToken)
        .where(ApiToken.id == caller.token_id)
        .where(
            sa.or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at <= now - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS),
            )
        )
        .values(last_used_at=now)
    )


def revoke_token(session: Session, name: str, *, clock: Clock, actor: str = "cli") -> ApiToken:
    token = session.scalar(sa.select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFound(f"no token named {name!r}")
    if token.revoked_at is None:
        _revoke(session, token, now=clock.now(), actor=actor)
    session.flush()
    return token


def revoke_tokens_of(
    session: Session, owner: str, *, now: datetime, actor: str, reason: str
) -> list[str]:
    """Revoke every live token `owner` owns (their account is being deactivated); the names."""
    live = session.scalars(
        sa.select(ApiToken)
        .where(ApiToken.owner == owner, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.name)
    ).all()
    for token in live:
        _revoke(session, token, now=now, actor=actor, reason=reason)
    session.flush()
    return [token.name for token in live]


def _revoke(
    session: Session, token: ApiToken, *, now: datetime, actor: str, reason: str | None = None
) -> None:
    token.revoked_at = now
    audit.record(
        session,
        action="token.revoked",
        actor=actor,
        subject=f"API token {token.name}",
        now=now,
        details={"reason": reason} if reason else None,
    )


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(sa.select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)))


def accountable_owner(caller: Caller) -> str:
    """The release manager a package-writing token acts for; ownerless tokens may not write, nor
    tokens whose owner may not assemble packages."""
    if caller.owner is None:
        raise PermissionDenied(
            "this token has no owner; packages need an accountable release manager "
            "(gatekeeper tokens create --owner EMAIL)"
        )
    if caller.owner_role not in ASSEMBLER_ROLES:
        raise PermissionDenied(
            f"this token's owner {caller.owner} is a {caller.owner_role}: only a "
            f"{RELEASE_MANAGER} or an {ADMIN} may assemble packages"
        )
    return caller.owner


def package_scope(caller: Caller) -> str | None:
    """The packages a token may change, as in the web UI: those its owner assembled, or every
    package when the owner is an admin. None means every package."""
    owner = accountable_owner(caller)
    return None if caller.owner_role == ADMIN else owner
