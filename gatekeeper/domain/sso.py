"""What an identity provider's ID token grants: an address, a name and at most one role."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from gatekeeper.domain.errors import PermissionDenied
from gatekeeper.domain.roles import ADMIN, ROLES, strongest

# Who may still ask for an emailed sign-in link once single sign-on is on.
FALLBACK_ADMINS, FALLBACK_ALL, FALLBACK_OFF = FALLBACKS = ("admins", "all", "off")


class SignInRefused(PermissionDenied):
    """The identity provider vouched for someone Gatekeeper will not let in; `reason` picks
    the page that says why."""

    code = "sign_in_refused"
    REASONS = ("no_email", "email_unverified", "no_role", "deactivated")

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    """The person an ID token describes, as far as Gatekeeper cares."""

    subject: str
    email: str
    name: str
    groups: tuple[str, ...]
    role: str | None


def parse_role_map(text: str) -> dict[str, str]:
    """`group=role,group=role` into {group: role}; a message naming the bad entry otherwise.

    Group names may themselves contain `=` (the role is what follows the last one); they may
    not contain commas.
    """
    mapping: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        group, equals, role = (part.strip() for part in entry.rpartition("="))
        if not equals or not group or not role:
            raise ValueError(f"{entry!r} is not group=role")
        if role not in ROLES:
            close = difflib.get_close_matches(role, ROLES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"{role!r} is not a role (roles: {', '.join(ROLES)}){hint}")
        if mapping.get(group, role) != role:
            raise ValueError(f"group {group!r} is mapped twice, to {mapping[group]} and {role}")
        mapping[group] = role
    if not mapping:
        raise ValueError("map at least one group to a role, e.g. gk-admins=admin")
    return mapping


def roles_signing_in_by_link(sso_enabled: bool, fallback: str) -> frozenset[str]:
    """Whose accounts may still sign in with an emailed link."""
    if not sso_enabled or fallback == FALLBACK_ALL:
        return frozenset(ROLES)
    if fallback == FALLBACK_ADMINS:
        return frozenset({ADMIN})
    return frozenset()


def claim_values(claims: Mapping[str, object], name: str) -> tuple[str, ...]:
    """The strings a claim holds: a list of strings, or one string.

    `name` is looked up as it is first (namespaced claims such as
    `https://example.com/groups` contain dots), then as a dotted path into nested objects
    (Keycloak's `realm_access.roles`).
    """
    value: object = claims.get(name)
    if name not in claims:
        value = claims
        for part in name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _verified(value: object) -> bool | None:
    """True, False, or None when the provider did not say (some send "true" as a string)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def read_identity(
    claims: Mapping[str, object],
    *,
    role_claim: str,
    role_map: Mapping[str, str],
    require_verified_email: bool,
) -> Identity:
    """Who the validated ID token names and which role its groups map to (None: no access).

    The address must be one the provider vouches for: `email_verified` false always refuses;
    a missing `email_verified` refuses unless `require_verified_email` is off.
    """
    email = claims.get("email")
    if not isinstance(email, str) or not email.strip():
        raise SignInRefused(
            "no_email",
            "Your identity provider did not send your email address, and Gatekeeper knows "
            "people by it. Ask its administrators to release the email claim to Gatekeeper.",
        )
    verified = _verified(claims.get("email_verified"))
    if verified is False or (verified is None and require_verified_email):
        raise SignInRefused(
            "email_unverified",
            f"Your identity provider has not verified the address {email.strip()}. Verify it "
            "there (or ask its administrators to), then sign in again.",
        )
    groups = claim_values(claims, role_claim)
    name = claims.get("name")
    return Identity(
        subject=str(claims.get("sub", "")),
        email=email.strip(),
        name=name.strip() if isinstance(name, str) and name.strip() else email.strip(),
        groups=groups,
        role=strongest(role_map[g] for g in groups if g in role_map),
    )
