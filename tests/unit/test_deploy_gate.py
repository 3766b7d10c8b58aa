"""Deploy targets in checklists, and the rules every CI platform adapter shares: which package a
deployment belongs to, the verdict, and what the platform is told."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from gatekeeper.checklist_format.schema import checklist_json_schema
from gatekeeper.checklist_format.validator import ChecklistInvalid, parse_checklist
from gatekeeper.domain import deploy_gate
from gatekeeper.domain.checklist import Checklist, DeployTarget
from gatekeeper.domain.gate import BLOCKED, OPEN, PENDING, Blocker, GateResult

SAMPLE = (Path(__file__).resolve().parents[2] / "checklists" / "payments-api.yaml").read_bytes()
TARGETS = b"""deploy_targets:
  - github: {repository: acme/payments, environment: production}
  - gitlab: {project: group/sub/payments, environment: production}
  - azure_devops: {project: Fabrikam Payments, environment: production}
"""
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"


def gate(status: str, *blockers: Blocker) -> GateResult:
    return GateResult("rel-1", 2, status, 1, 3, tuple(blockers), (), (), digest="sha256:abc")


def test_deploy_targets_are_read_kept_and_valid_against_the_schema() -> None:
    checklist = parse_checklist(SAMPLE + TARGETS, "p.yaml")
    assert checklist.deploy_targets == (
        DeployTarget("github", "acme/payments", "production"),
        DeployTarget("gitlab", "group/sub/payments", "production"),
        DeployTarget("azure_devops", "Fabrikam Payments", "production"),
    )
    assert Checklist.from_canonical(checklist.to_canonical()) == checklist
    validator = jsonschema.Draft202012Validator(checklist_json_schema())
    assert list(validator.iter_errors(yaml.safe_load(SAMPLE + TARGETS))) == []


def test_a_checklist_without_targets_keeps_its_content() -> None:
    assert "deploy_targets" not in parse_checklist(SAMPLE, "p.yaml").to_canonical()


# The line of the first target, appended after the sample's last line.
AT = SAMPLE.count(b"\n") + 2


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            b"deploy_targets:\n  - github: {repository: acme, environment: production}\n",
            f"p.yaml:{AT}:26: deploy_targets[0].github.repository: 'acme' is not a path",
        ),
        (
            b"deploy_targets:\n  - github: {repository: a/b, environment: '/prod'}\n",
            f"p.yaml:{AT}:44: deploy_targets[0].github.environment: '/prod' is not valid",
        ),
        (
            b"deploy_targets:\n  - bitbucket: {repository: a/b, environment: p}\n",
            f"p.yaml:{AT}:5: deploy_targets[0]: name exactly one platform: github, gitlab or "
            "azure_devops",
        ),
        (
            b"deploy_targets:\n  - azure_devops: {project: 'a;b', environment: p}\n",
            f"p.yaml:{AT}:29: deploy_targets[0].azure_devops.project: 'a;b' is not an Azure "
            "DevOps project name",
        ),
        (
            b"deploy_targets:\n  - azure_devops: {project: _hidden, environment: p}\n",
            f"p.yaml:{AT}:29: deploy_targets[0].azure_devops.project: '_hidden' is not",
        ),
        (
            b"deploy_targets:\n  - github: {repository: a/b}\n",
            f"p.yaml:{AT}:13: deploy_targets[0].github: missing required field 'environment'",
        ),
        (
            b"deploy_targets:\n  - just-a-string\n",
            f"p.yaml:{AT}:5: deploy_targets[0]: expected",
        ),
        (
            b"deploy_targets:\n  - github: [a/b]\n",
            f"p.yaml:{AT}:13: deploy_targets[0].github:",
        ),
    ],
)
def test_a_bad_deploy_target_is_reported_at_its_line_and_column(
    extra: bytes, expected: str
) -> None:
    with pytest.raises(ChecklistInvalid) as raised:
        parse_checklist(SAMPLE + extra, "p.yaml")
    assert any(str(p).startswith(expected) for p in raised.value.problems), raised.value.problems


def test_a_deployment_matches_by_ref_or_by_a_sha_prefix_of_seven_hex_digits() -> None:
    candidates = [
        deploy_gate.Candidate("by-ref", "v1.4.2"),
        deploy_gate.Candidate("by-sha", SHA[:7].upper()),
        deploy_gate.Candidate("too-short", SHA[:6]),
        deploy_gate.Candidate("not-hex", "9fceb02z"),
        deploy_gate.Candidate("by-ref", "v1.4.2"),
    ]
    assert deploy_gate.matching_packages(candidates, ref="v1.4.2", sha=SHA) == ["by-ref", "by-sha"]
    assert deploy_gate.matching_packages(candidates, ref="main", sha="0" * 40) == []


def test_open_approves_blocked_rejects_pending_waits() -> None:
    assert deploy_gate.verdict(gate(OPEN)) == deploy_gate.APPROVED
    assert deploy_gate.verdict(gate(BLOCKED)) == deploy_gate.REJECTED
    assert deploy_gate.verdict(gate(PENDING)) == deploy_gate.WAITING


def test_what_the_platform_is_told() -> None:
    board = "https://gk.example/packages/rel-1"
    waiting = Blocker("ITEM_PENDING", "waiting", waiting_on=("bo@example.com", "ana@example.com"))
    assert deploy_gate.comment(gate(PENDING, waiting), board) == (
        "Gatekeeper package rel-1 rev 2: waiting on ana@example.com, bo@example.com (1/3 signed)."
        f" Board: {board}"
    )
    assert "waiting on the sign-offs still due" in deploy_gate.comment(gate(PENDING), board)
    assert "gate open (digest sha256:abc)" in deploy_gate.comment(gate(OPEN), board)
    failed = Blocker("ITEM_FAILED", "tests failed")
    assert "gate blocked. ITEM_FAILED: tests failed." in deploy_gate.comment(
        gate(BLOCKED, failed), board
    )
    assert deploy_gate.blockers_text(gate(BLOCKED)) == "none"
    long = deploy_gate.comment(gate(BLOCKED, Blocker("ITEM_FAILED", "x" * 2000)), board)
    assert len(long) == deploy_gate.COMMENT_LIMIT
    assert long.endswith("…")


def test_no_package_and_two_packages_say_so() -> None:
    assert "no package in review ships main or 9fceb02d0ae5" in deploy_gate.no_package(
        "acme/payments", "production", "main", SHA
    )
    assert "(rel-a, rel-b)" in deploy_gate.ambiguous(["rel-a", "rel-b"], SHA)
