"""API tokens for tests: issued through the service with an owner account, or stored as a token
issued before owners were checked (to test the defences that still stand behind that check)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import ApiToken, User
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import tokens, users


def issue_token(
    session: Session,
    *,
    name: str,
    scopes: Iterable[str],
    owner: str | None,
    clock: FixedClock,
    role: str = users.RELEASE_MANAGER,
) -> str:
    """A token's secret; its owner gets an account with `role` unless they have one already (a
    token's owner must be an active staff account)."""
    if owner is not None and session.scalar(sa.select(User.id).where(User.email == owner)) is None:
        users.add_user(
            session, email=owner, name=owner.split("@")[0].title(), role=role, clock=clock
        )
    return tokens.create_token(
        session, name=name, scopes=tuple(scopes), owner=owner, clock=clock
    ).secret


def legacy_token(
    session: Session, *, name: str, scopes: Iterable[str], owner: str | None, clock: FixedClock
) -> str:
    """A token stored as `tokens create` stored it before it checked owners: any owner string,
    or none, with any scope. Only the checks made on each request stand in its way."""
    secret = tokens.PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            prefix=secret[:10],
            token_hash=hashlib.sha256(secret.encode()).hexdigest(),
            scopes=" ".join(sorted(set(scopes))),
            owner=owner,
            created_at=clock.now(),
        )
    )
    session.flush()
    return secret
