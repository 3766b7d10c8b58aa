"""Deployment reports: what they must hold, how a version or sha is matched, and when no open or
released gate covered them."""

from __future__ import annotations

import pytest

from gatekeeper.domain import deployment as rules
from gatekeeper.domain.deployment import DeployedApplication, DeploymentReport
from gatekeeper.domain.errors import ValidationFailed

SHA = "3f9c2ab7e1d04c5b9a8f6e2d1c0b9a8f7e6d5c4b"
URL = "https://ci.example.com/pipelines/7"


def report(
    *applications: DeployedApplication, environment: str = "production", url: str = URL
) -> DeploymentReport:
    return DeploymentReport(environment, applications, url)


def test_a_report_is_cleaned_up() -> None:
    cleaned = rules.check_report(
        report(
            DeployedApplication("payments-api", " 7.4.0 "),
            DeployedApplication("storefront-web", sha=SHA.upper()),
            environment=" production ",
            url=f" {URL} ",
        )
    )
    assert cleaned == DeploymentReport(
        "production",
        (
            DeployedApplication("payments-api", "7.4.0"),
            DeployedApplication("storefront-web", None, SHA),
        ),
        URL,
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (report(DeployedApplication("a", "1"), environment=" "), "environment must be"),
        (report(DeployedApplication("a", "1"), environment="e" * 65), "environment must be"),
        (report(), "list 1-200 deployed applications"),
        (report(*(DeployedApplication(f"a{i}", "1") for i in range(201))), "list 1-200"),
        (report(DeployedApplication("Not A Slug", "1")), "is not an application slug"),
        (report(DeployedApplication("a", "1"), DeployedApplication("a", "2")), "listed twice"),
        (report(DeployedApplication("a", "  ")), "the version of a must be"),
        (report(DeployedApplication("a", "v" * 101)), "the version of a must be"),
        (report(DeployedApplication("a", sha="abc")), "7-64 hexadecimal digits"),
        (report(DeployedApplication("a", sha="g" * 40)), "7-64 hexadecimal digits"),
        (report(DeployedApplication("a")), "give the version or the sha"),
        (report(DeployedApplication("a", "1"), url="ftp://ci.example.com/1"), "pipeline_url"),
        (report(DeployedApplication("a", "1"), url="https://"), "pipeline_url"),
        (report(DeployedApplication("a", "1"), url="https://e.example/" + "x" * 2000), "pipeline"),
    ],
)
def test_bad_reports_are_refused(bad: DeploymentReport, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message):
        rules.check_report(bad)


@pytest.mark.parametrize(
    ("deployed", "approved", "matches"),
    [
        (DeployedApplication("a", "7.4.0"), "7.4.0", True),
        (DeployedApplication("a", "7.4.0"), "7.4.1", False),
        # A version is compared exactly, even when a sha is given too.
        (DeployedApplication("a", "7.4.0", SHA), SHA, False),
        (DeployedApplication("a", sha=SHA), SHA, True),
        (DeployedApplication("a", sha=SHA[:7]), SHA, True),
        (DeployedApplication("a", sha=SHA), SHA[:7].upper(), True),
        (DeployedApplication("a", sha=SHA[:6] + "0"), SHA, False),
        (DeployedApplication("a", sha=SHA), "3f9c2a", False),
        (DeployedApplication("a", sha=SHA), "7.4.0", False),
    ],
)
def test_a_deployed_version_or_sha_matches_what_the_package_holds(
    deployed: DeployedApplication, approved: str, matches: bool
) -> None:
    assert deployed.matches(approved) is matches


def test_labels_and_dicts() -> None:
    assert DeployedApplication("a", "1").label == "1"
    assert DeployedApplication("a", sha=SHA).label == f"sha {SHA}"
    assert DeployedApplication("a", sha=SHA).to_dict() == {
        "application": "a",
        "version": None,
        "sha": SHA,
    }


def uncovered(state: str, status: str, *deployed: DeployedApplication) -> list[str]:
    found = rules.uncovered(
        package="k",
        package_state=state,
        gate_status=status,
        approved={"payments-api": "7.4.0"},
        deployed=deployed or (DeployedApplication("payments-api", "7.4.0"),),
    )
    return [u.code for u in found]


@pytest.mark.parametrize(
    ("state", "status", "covered"),
    [
        ("released", "open", True),
        # Released covers its versions even when the gate later reads otherwise.
        ("released", "blocked", True),
        ("in_review", "open", True),
        ("in_review", "pending", False),
        ("in_review", "blocked", False),
        ("draft", "pending", False),
        ("cancelled", "blocked", False),
    ],
)
def test_only_an_open_or_released_gate_covers_a_deployment(
    state: str, status: str, covered: bool
) -> None:
    assert uncovered(state, status) == ([] if covered else [rules.GATE_NOT_OPEN])


def test_a_version_the_package_does_not_hold_is_not_covered() -> None:
    found = rules.uncovered(
        package="k",
        package_state="in_review",
        gate_status="pending",
        approved={"payments-api": "7.4.0"},
        deployed=(
            DeployedApplication("payments-api", "7.4.1"),
            DeployedApplication("ledger", sha=SHA),
        ),
    )
    assert [u.to_dict() for u in found] == [
        {
            "code": rules.GATE_NOT_OPEN,
            "application": None,
            "message": "deployed while package k was in review and its gate pending: the "
            "release was not allowed yet",
        },
        {
            "code": rules.VERSION_NOT_APPROVED,
            "application": "payments-api",
            "message": "payments-api 7.4.1 was deployed, but package k holds payments-api 7.4.0",
        },
        {
            "code": rules.VERSION_NOT_APPROVED,
            "application": "ledger",
            "message": f"ledger sha {SHA} was deployed, but package k does not contain ledger",
        },
    ]
