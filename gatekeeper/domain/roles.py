"""Staff roles, strongest first: the order decides when a person is granted several."""

from __future__ import annotations

from collections.abc import Iterable

ADMIN, RELEASE_MANAGER, GOVERNANCE_REVIEWER = ROLES = (
    "admin",
    "release_manager",
    "governance_reviewer",
)


def strongest(roles: Iterable[str]) -> str | None:
    """The one role an account gets from several: admin, then release manager (who can change
    packages), then governance reviewer (who reads them). None when there is none."""
    granted = set(roles)
    return next((role for role in ROLES if role in granted), None)
