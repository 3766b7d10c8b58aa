"""Passwordless staff sign-in: a short-lived, single-use link emailed to an active account."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import SignInLink, User
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import LinkUnusable
from gatekeeper.domain.roles import ROLES
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, links, users

LOGIN_PURPOSE = "login"
SIGN_IN_TTL = timedelta(minutes=15)
# A sign-in link younger than 2 minutes is kept (and nothing is sent) while it is unused; at
# most 5 sign-in emails go to one account in an hour, whoever asks and from where.
SIGN_IN_LIMIT = links.RecipientLimit(keep_newer_than=timedelta(minutes=2), per_hour=5)
USED_ALREADY = "This sign-in link was used already; links work once."
MAIL_LINK_KIND = "sign_in"  # how an outbox row names the sign-in link it carries


@dataclass(frozen=True)
class SignInSettings(links.LinkSigning):
    purpose: ClassVar[str] = LOGIN_PURPOSE
    ttl: timedelta = SIGN_IN_TTL
    # Accounts with these roles may sign in by link; with single sign-on, maybe admins only.
    roles: frozenset[str] = frozenset(ROLES)


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
    """Email a sign-in link to an active account whose role may sign in by link, and return
    it; None, and no email, otherwise (no such account, or SIGN_IN_LIMIT reached).

    The caller must answer the same either way, so nobody can probe which addresses exist.
    Earlier unused links of the account die: only the newest one works.
    """
    # Locked: two requests at once must not both pass the per-account limit.
    user = users.find_active(session, email, for_update=True)
    if user is None or user.role not in settings.roles:
        return None
    now = clock.now()
    mine = SignInLink.user_id == user.id
    if not links.may_send_another(
        session, SignInLink, recipient=mine, replaced=mine, now=now, limit=SIGN_IN_LIMIT
    ):
        return None
    links.retire_links(session, SignInLink, mine)
    link = SignInLink(user_id=user.id)
    url = links.issue_link(
        session,
        link,
        tokens=settings.tokens(clock),
        base_url=settings.base_url,
        route="login",
        now=now,
        ttl=settings.ttl,
    )
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
        link=(MAIL_LINK_KIND, link.id),
    )
    return url


def _load(
    session: Session, token: str, settings: SignInSettings, clock: Clock
) -> tuple[SignInLink, User]:
    link = links.load_link(
        session,
        token,
        tokens=settings.tokens(clock),
        model=SignInLink,
        expired="This sign-in link has expired.",
        invalid="this sign-in link is not valid",
    )
    return link, session.get_one(User, link.user_id)


def open_sign_in(
    session: Session, token: str, *, settings: SignInSettings, clock: Clock
) -> SignInView:
    """Who the link would sign in. Reading never changes anything: mail scanners open links."""
    link, user = _load(session, token, settings, clock)
    _check_usable(link, user, clock.now())
    role = user.role
    if role is None or role not in settings.roles:
        raise LinkUnusable(
            "revoked", "This account signs in with single sign-on, not with an emailed link."
        )
    return SignInView(
        link.id,
        user.id,
        user.email,
        user.name,
        role,
        user.session_version,
        link.expires_at,
    )


def _check_usable(link: SignInLink, user: User, now: datetime) -> None:
    if link.state == links.USED:
        raise LinkUnusable("used", USED_ALREADY)
    if link.state == links.SUPERSEDED:
        raise LinkUnusable(
            "superseded", "A newer sign-in link was sent; use the newest email, or ask again."
        )
    if now >= link.expires_at:
        raise LinkUnusable("expired", "This sign-in link has expired.")
    if not user.active:
        raise LinkUnusable("revoked", "This account is not active.")


def moot_links(session: Session, ids: Collection[int], now: datetime) -> dict[int, str]:
    """Why each of these sign-in links can no longer be used, for those that cannot."""
    found = session.execute(
        sa.select(SignInLink, User)
        .join(User, User.id == SignInLink.user_id)
        .where(SignInLink.id.in_(sorted(ids)))
    ).all()
    owner = {link.id: user for link, user in found}
    return links.unusable(
        [link for link, _ in found], lambda link: _check_usable(link, owner[link.id], now)
    )


def consume_sign_in(
    session: Session, token: str, *, settings: SignInSettings, clock: Clock
) -> SignInView:
    """Use the link exactly once (conditional UPDATE, checked by rowcount) and say who it was."""
    view = open_sign_in(session, token, settings=settings, clock=clock)
    now = clock.now()
    links.use_link(session, SignInLink, view.link_id, now=now, used=USED_ALREADY)
    audit.record(
        session,
        action="user.signed_in",
        actor=view.email,
        subject=f"sign-in link {view.link_id}",
        now=now,
        details={"role": view.role},
    )
    return view
