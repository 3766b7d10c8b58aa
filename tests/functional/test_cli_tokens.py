"""`gatekeeper tokens create`: who may own a token, refused at creation with the reason."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from tests.functional.api_helpers import API_PREFIX, Api
from tests.functional.web_helpers import add_user

MANAGER = "release-manager@example.com"
GONE = "gone@example.com"


def create(runner: FlaskCliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, ["tokens", "create", "--name", "ci", *args])
    return result.exit_code, result.stdout, result.stderr


def stored_tokens(runner: FlaskCliRunner) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(
        runner.invoke(cli, ["tokens", "list", "--json"]).stdout
    )
    return listed


def test_a_package_writing_token_without_an_owner_is_refused_at_creation(
    app: Flask, runner: FlaskCliRunner
) -> None:
    code, out, err = create(runner, "--scope", "gate:read", "--scope", "packages:write")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1, "one line"
    assert "packages:write token needs an owner" in err
    assert "--owner" in err
    assert stored_tokens(runner) == []


@pytest.fixture
def staff(runner: FlaskCliRunner, clock: FixedClock) -> None:
    add_user(clock, MANAGER, users.RELEASE_MANAGER)
    add_user(clock, "admin@example.com", users.ADMIN)
    add_user(clock, "release-board@example.com", users.GOVERNANCE_REVIEWER)
    add_user(clock, GONE, users.RELEASE_MANAGER)
    add_user(clock, "other-admin@example.com", users.ADMIN)
    assert runner.invoke(cli, ["users", "deactivate", GONE]).exit_code == 0


@pytest.mark.parametrize(
    ("owner", "reason"),
    [
        ("bob", "'bob' is not the address of an active staff account"),
        ("nobody@example.com", "'nobody@example.com' is not the address of an active staff"),
        (GONE, f"'{GONE}' is not the address of an active staff account"),
        (
            "release-board@example.com",
            "release-board@example.com is a governance_reviewer: only a release_manager or an "
            "admin may own a packages:write token",
        ),
    ],
)
def test_a_package_writing_token_needs_an_active_owner_who_may_assemble_packages(
    staff: None, runner: FlaskCliRunner, owner: str, reason: str
) -> None:
    code, out, err = create(runner, "--scope", "packages:write", "--owner", owner)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1, "one line"
    assert reason in err
    assert stored_tokens(runner) == []


@pytest.mark.parametrize("owner", ["bob", "nobody@example.com", GONE])
def test_any_owner_must_be_an_active_account(
    staff: None, runner: FlaskCliRunner, owner: str
) -> None:
    code, _, err = create(runner, "--scope", "gate:read", "--owner", owner)
    assert code == 1
    assert "is not the address of an active staff account" in err
    assert stored_tokens(runner) == []


@pytest.mark.parametrize("owner", [MANAGER, " Admin@Example.com "])
def test_a_release_manager_or_an_admin_may_own_a_package_writing_token(
    staff: None, app: Flask, runner: FlaskCliRunner, owner: str
) -> None:
    code, out, err = create(runner, "--scope", "packages:write", "--owner", owner)
    assert code == 0, err
    (stored,) = stored_tokens(runner)
    assert stored["owner"] == owner.strip().lower()
    created = Api(app, out.strip()).post(
        f"{API_PREFIX}/packages",
        json={
            "key": "2026.12-r1",
            "title": "December",
            "environment": "production",
            "applications": [],
        },
    )
    assert created.status_code == 201, created.json
    assert created.json is not None
    assert created.json["assembled_by"] == owner.strip().lower()


def test_a_read_token_may_be_owned_by_any_active_account(
    staff: None, runner: FlaskCliRunner
) -> None:
    code, _, err = create(runner, "--scope", "gate:read", "--owner", "release-board@example.com")
    assert code == 0, err
    assert stored_tokens(runner)[0]["owner"] == "release-board@example.com"
