"""What an ID token grants: the role map's syntax, group claims, verified addresses, the one
role a person gets from several, and who may still sign in by emailed link."""

from __future__ import annotations

import pytest

from gatekeeper.domain.roles import ADMIN, GOVERNANCE_REVIEWER, RELEASE_MANAGER, ROLES, strongest
from gatekeeper.domain.sso import (
    FALLBACK_ADMINS,
    FALLBACK_ALL,
    FALLBACK_OFF,
    Identity,
    SignInRefused,
    claim_values,
    parse_role_map,
    read_identity,
    roles_signing_in_by_link,
)

ROLE_MAP = {"release-managers": RELEASE_MANAGER, "board": GOVERNANCE_REVIEWER, "gk": ADMIN}


def identity(**claims: object) -> Identity:
    base: dict[str, object] = {"sub": "s-1", "email": "ana@example.com", "email_verified": True}
    base.update(claims)
    return read_identity(base, role_claim="groups", role_map=ROLE_MAP, require_verified_email=True)


def test_the_role_map_reads_group_equals_role_pairs() -> None:
    text = " release-managers=release_manager, ,cn=gk=admin ,board = governance_reviewer,"
    assert parse_role_map(text) == {
        "release-managers": RELEASE_MANAGER,
        "cn=gk": ADMIN,
        "board": GOVERNANCE_REVIEWER,
    }
    assert parse_role_map("a=admin,a=admin") == {"a": ADMIN}, "a repeated pair is harmless"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("release-managers", "'release-managers' is not group=role"),
        ("=admin", "'=admin' is not group=role"),
        ("gk=", "'gk=' is not group=role"),
        ("gk=release_mgr", "'release_mgr' is not a role .*did you mean release_manager\\?"),
        (
            "gk=root",
            "'root' is not a role \\(roles: admin, release_manager, governance_reviewer\\)$",
        ),
        ("gk=admin,gk=release_manager", "group 'gk' is mapped twice, to admin and release_manager"),
        (" , ", "map at least one group"),
    ],
)
def test_a_bad_role_map_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_role_map(text)


def test_the_strongest_role_wins_whatever_the_order() -> None:
    assert strongest([GOVERNANCE_REVIEWER, ADMIN, RELEASE_MANAGER]) == ADMIN
    assert strongest([GOVERNANCE_REVIEWER, RELEASE_MANAGER]) == RELEASE_MANAGER
    assert strongest([GOVERNANCE_REVIEWER]) == GOVERNANCE_REVIEWER
    assert strongest([]) is None
    assert ROLES[0] == ADMIN


def test_claims_are_lists_strings_or_nested_paths() -> None:
    claims: dict[str, object] = {
        "groups": ["a", 7, "b", None],
        "hd": "example.com",
        "realm_access": {"roles": ["kc-role"]},
        "https://example.com/groups": ("ns",),
        "nested": {"deeper": "x"},
        "number": 3,
    }
    assert claim_values(claims, "groups") == ("a", "b")
    assert claim_values(claims, "hd") == ("example.com",)
    assert claim_values(claims, "realm_access.roles") == ("kc-role",)
    assert claim_values(claims, "https://example.com/groups") == ("ns",)
    assert claim_values(claims, "nested.deeper.still") == ()
    assert claim_values(claims, "number") == ()
    assert claim_values(claims, "missing") == ()


def test_a_verified_address_and_mapped_groups_give_an_identity() -> None:
    found = identity(
        name=" Ana Lima ", email=" ana@example.com ", groups=["board", "release-managers", "x"]
    )
    assert found == Identity(
        subject="s-1",
        email="ana@example.com",
        name="Ana Lima",
        groups=("board", "release-managers", "x"),
        role=RELEASE_MANAGER,
    )
    assert identity(email_verified="TRUE").role is None
    assert identity(groups=["x"]).role is None
    assert identity(name="  ").name == "ana@example.com"
    assert identity(name=None).name == "ana@example.com"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"email": None}, "no_email"),
        ({"email": "   "}, "no_email"),
        ({"email": ["ana@example.com"]}, "no_email"),
        ({"email_verified": False}, "email_unverified"),
        ({"email_verified": "false"}, "email_unverified"),
        ({"email_verified": None}, "email_unverified"),
        ({"email_verified": "yes"}, "email_unverified"),
    ],
)
def test_an_address_the_provider_does_not_vouch_for_is_refused(
    claims: dict[str, object], reason: str
) -> None:
    with pytest.raises(SignInRefused) as refused:
        identity(**claims)
    assert refused.value.reason == reason
    assert refused.value.code == "sign_in_refused"


def test_an_unstated_verification_passes_only_when_not_required() -> None:
    claims: dict[str, object] = {"sub": "s", "email": "ana@example.com", "groups": "gk"}
    lenient = read_identity(
        claims, role_claim="groups", role_map=ROLE_MAP, require_verified_email=False
    )
    assert lenient.role == ADMIN
    with pytest.raises(SignInRefused):
        read_identity(
            {**claims, "email_verified": False},
            role_claim="groups",
            role_map=ROLE_MAP,
            require_verified_email=False,
        )


def test_a_refusal_has_a_known_reason() -> None:
    with pytest.raises(ValueError, match="unknown reason"):
        SignInRefused("because", "no")


@pytest.mark.parametrize(
    ("sso", "fallback", "roles"),
    [
        (False, FALLBACK_OFF, set(ROLES)),
        (True, FALLBACK_ALL, set(ROLES)),
        (True, FALLBACK_ADMINS, {ADMIN}),
        (True, FALLBACK_OFF, set()),
    ],
)
def test_who_may_still_sign_in_by_link(sso: bool, fallback: str, roles: set[str]) -> None:
    assert roles_signing_in_by_link(sso, fallback) == roles
