"""Remind now: the release manager re-sends fresh links to everyone who has not answered."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import Conflict
from gatekeeper.services import packages, signoffs


def remind_now(
    session: Session, key: str, *, clock: Clock, links: signoffs.LinkSettings
) -> list[str]:
    """Email every signer with pending requests a reminder with a new link (earlier links die).

    Returns who was reminded. The automatic reminder ladder is not reset by this.
    """
    package = packages.get_package(session, key, for_update=True)
    if package.state != lifecycle.IN_REVIEW:
        raise Conflict(
            f"package {key} is {package.state.replace('_', ' ')}; only a package in review "
            "has people to remind"
        )
    issued = signoffs.issue_links(session, package, settings=links, clock=clock, reminder=True)
    return sorted(link.signer for link in issued)
