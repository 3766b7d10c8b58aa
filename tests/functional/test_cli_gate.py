"""`gatekeeper gate check` and `gatekeeper tokens`: exit codes, output, local and remote."""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskCliRunner
from werkzeug.serving import make_server

from gatekeeper import gate_client
from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.signoff import Decision
from gatekeeper.services import demo, demo_governance, packages
from gatekeeper.services.checklists import checklist_of

KEY = demo.DEMO_PACKAGE
RELEASED = demo_governance.RELEASED_PACKAGE


@pytest.fixture
def demo_data(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(cli, ["demo", "--no-serve"])
    assert result.exit_code == 0, result.output


def sign(clock: FixedClock, *, fail_one: bool = False) -> None:
    failed = False
    with unit_of_work(db.session) as session:
        for request in packages.pending_requests(session, KEY):
            checklist = checklist_of(request.package_application.checklist_version)  # type: ignore[arg-type]
            if request.kind == "item":
                decision = Decision("item", "pass", evidence="https://ci.example.com/1")
                if fail_one and not failed:
                    decision = Decision("item", "fail", comment="canary shows login errors")
                    failed = True
            else:
                scenarios = tuple(range(len(checklist.user_validation.scenarios)))
                decision = Decision("key_user", "confirmed", scenarios_confirmed=scenarios)
            packages.record_signoff(session, request.id, decision, clock=clock)


def test_pending_gate_exits_3_and_names_who_is_waited_on(
    demo_data: None, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(cli, ["gate", "check", KEY])
    assert result.exit_code == 3
    assert f"{KEY} revision 1: PENDING" in result.stdout
    assert "USER_VALIDATION_PENDING payments-api" in result.stdout
    assert "settlement-lead@example.com" in result.stdout


def test_open_gate_exits_0_and_json_is_the_api_shape(
    demo_data: None, runner: FlaskCliRunner, clock: FixedClock
) -> None:
    sign(clock)
    result = runner.invoke(cli, ["gate", "check", KEY, "--json"])
    assert result.exit_code == 0, result.output
    gate = json.loads(result.stdout)
    assert gate["status"] == "open"
    assert gate["progress"]["signed"] == gate["progress"]["required"]
    assert gate["digest"].startswith("sha256:")


def test_blocked_gate_exits_1(demo_data: None, runner: FlaskCliRunner, clock: FixedClock) -> None:
    sign(clock, fail_one=True)
    result = runner.invoke(cli, ["gate", "check", KEY])
    assert result.exit_code == 1
    assert "ITEM_FAILED" in result.stdout
    assert "canary shows login errors" in result.stdout


def badge_text(app: Flask, runner: FlaskCliRunner, key: str) -> str:
    url = runner.invoke(cli, ["gate", "badge-url", key]).stdout.strip()
    svg = app.test_client().get(url.removeprefix("http://127.0.0.1:5000")).text
    found = re.search(r"<title>gate: (\w+)</title>", svg)
    assert found, svg
    return found.group(1)


def test_a_released_package_says_released_and_a_re_run_may_deploy_it(
    demo_data: None, app: Flask, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(cli, ["gate", "check", RELEASED])
    assert result.exit_code == 0, result.output
    package = packages.get_package(db.session, RELEASED)
    assert package.released_at is not None
    headline = result.stdout.splitlines()[0]
    assert headline.startswith(f"{RELEASED} revision 1: RELEASED — ")
    assert (
        f"released {package.released_at.isoformat()} by {package.released_by} at digest "
        f"{package.release_digest}" in result.stdout
    )
    gate = json.loads(runner.invoke(cli, ["gate", "check", RELEASED, "--json"]).stdout)
    assert (gate["state"], gate["status"]) == ("released", "open")
    assert gate["release"] == {
        "released_at": package.released_at.isoformat(),
        "released_by": package.released_by,
        "digest": package.release_digest,
    }
    assert badge_text(app, runner, RELEASED) == "released"


def test_every_state_is_in_the_gate_and_the_cli_and_the_badge_agree(
    demo_data: None, app: Flask, runner: FlaskCliRunner, clock: FixedClock
) -> None:
    with unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec("2026.12-draft", "Draft", "production", None, ()),
            assembler=demo.DEMO_RELEASE_MANAGER,
            clock=clock,
        )
        packages.create_package(
            session,
            packages.PackageSpec("2026.12-gone", "Gone", "production", None, ()),
            assembler=demo.DEMO_RELEASE_MANAGER,
            clock=clock,
        )
        packages.cancel_package(
            session, "2026.12-gone", actor=demo.DEMO_RELEASE_MANAGER, clock=clock
        )
    expected = {
        KEY: ("in_review", "pending", 3),
        RELEASED: ("released", "released", 0),
        "2026.12-draft": ("draft", "blocked", 1),  # empty: PACKAGE_EMPTY
        "2026.12-gone": ("cancelled", "blocked", 1),
    }
    for key, (state, shown, code) in expected.items():
        result = runner.invoke(cli, ["gate", "check", key])
        assert result.exit_code == code, (key, result.output)
        assert result.stdout.startswith(f"{key} revision ")
        assert f": {shown.upper()} — " in result.stdout.splitlines()[0], key
        gate = json.loads(runner.invoke(cli, ["gate", "check", key, "--json"]).stdout)
        assert gate["state"] == state
        assert (gate["release"] is None) == (state != "released")
        assert badge_text(app, runner, key) == shown


def test_unknown_package_exits_4(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(cli, ["gate", "check", "nope"])
    assert result.exit_code == 4
    assert "no package 'nope'" in result.stderr


def test_unreadable_database_fails_closed_with_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # its development key goes to instance/ here, not the checkout
    env = {"GATEKEEPER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = CliRunner().invoke(cli, ["gate", "check", KEY], env=env)
    assert result.exit_code == 4
    assert "error:" in result.stderr
    assert "open" not in result.stdout.lower()


def test_bad_configuration_fails_closed_with_4() -> None:
    result = CliRunner().invoke(cli, ["gate", "check", KEY], env={"GATEKEEPER_DATABSE_URL": "x"})
    assert result.exit_code == 4


def test_wait_gives_up_at_the_timeout_and_says_what_it_still_waits_for(
    demo_data: None, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(
        cli, ["gate", "check", KEY, "--wait", "--timeout", "0.3", "--interval", "0.1"]
    )
    assert result.exit_code == 3
    progress, timed_out = result.stderr.splitlines()  # polls that change nothing print nothing
    assert "required sign-offs, waiting on" in progress
    assert timed_out.startswith(f"timed out after 0.3 s: {KEY} is still PENDING, waiting on ")
    assert "settlement-lead@example.com" in timed_out
    assert "USER_VALIDATION_PENDING payments-api" in timed_out


def no_jitter(_low: float, high: float) -> float:
    return high


def pending(signed: int, *waiting: str, revision: int = 1) -> dict[str, object]:
    return {
        "package": "p",
        "revision": revision,
        "status": "pending",
        "progress": {"signed": signed, "required": 3},
        "waiting_on": list(waiting),
        "blockers": [
            {"code": "ITEM_PENDING", "application": "app", "item": "scan", "waiting_on": [w]}
            for w in waiting
        ],
    }


def test_wait_reports_only_what_changed_and_at_the_timeout_what_it_still_waits_for() -> None:
    answers = iter(
        [
            pending(0, "a@x", "b@x", "c@x"),
            pending(1, "b@x", "c@x"),
            pending(1, "b@x", "c@x"),
            pending(1, "b@x", "c@x", revision=2),  # an edit: same counts, new revision
            pending(1, "b@x", "c@x", revision=2),
        ]
    )
    clock = [0.0]
    seen: list[str] = []
    final = gate_client.wait_for_decision(
        lambda _key: next(answers),
        "p",
        first=pending(0, "a@x", "b@x", "c@x"),
        timeout=50,
        interval=10,
        on_change=lambda g: seen.append(gate_client.wait_line(g)),
        sleep=lambda seconds: clock.__setitem__(0, clock[0] + seconds),
        monotonic=lambda: clock[0],
        uniform=no_jitter,
    )
    assert seen == [
        "p revision 1: PENDING — 0 of 3 required sign-offs, waiting on 3 people: a@x, b@x, c@x",
        "p revision 1: PENDING — 1 of 3 required sign-offs, waiting on 2 people: b@x, c@x",
        "p revision 2: PENDING — 1 of 3 required sign-offs, waiting on 2 people: b@x, c@x",
    ]
    assert final == pending(1, "b@x", "c@x", revision=2)
    assert gate_client.timeout_line(final, 50) == (
        "timed out after 50 s: p is still PENDING, waiting on b@x, c@x "
        "(ITEM_PENDING app/scan, ITEM_PENDING app/scan)"
    )


def test_a_long_wait_list_is_cut_short_on_progress_lines_only() -> None:
    people = [f"p{n}@x" for n in range(8)]
    assert gate_client.wait_line(pending(0, *people)).endswith(
        "waiting on 8 people: p0@x, p1@x, p2@x, p3@x, p4@x and 3 more"
    )
    assert ", ".join(people) in gate_client.timeout_line(pending(0, *people), 1)


def test_wait_returns_as_soon_as_the_gate_decides() -> None:
    answers = iter(
        [
            {
                "status": "pending",
                "package": "p",
                "revision": 1,
                "progress": {"signed": 1, "required": 2},
            },
            {
                "status": "open",
                "package": "p",
                "revision": 1,
                "progress": {"signed": 2, "required": 2},
            },
        ]
    )
    sleeps: list[float] = []
    seen: list[str] = []
    final = gate_client.wait_for_decision(
        lambda _key: next(answers),
        "p",
        first={
            "status": "pending",
            "package": "p",
            "revision": 1,
            "progress": {"signed": 0, "required": 2},
        },
        timeout=60,
        interval=5,
        on_change=lambda g: seen.append(gate_client.progress_line(g)),
        sleep=sleeps.append,
        monotonic=lambda: 0.0,
        uniform=no_jitter,
    )
    assert final["status"] == "open"
    assert sleeps == [5, 5]
    assert seen == [
        "p revision 1: PENDING — 0 of 2 required sign-offs",
        "p revision 1: PENDING — 1 of 2 required sign-offs",
    ]


def test_wait_backs_off_from_2_to_15_seconds_with_jitter_or_keeps_to_the_interval() -> None:
    def first(count: int, interval: float | None, uniform: object = no_jitter) -> list[float]:
        waits = gate_client.pauses(interval, uniform=uniform)  # type: ignore[arg-type]
        return [round(next(waits), 3) for _ in range(count)]

    assert first(8, None) == [2.0, 3.0, 4.5, 6.75, 10.125, 15.0, 15.0, 15.0]
    assert first(3, 30) == [30.0, 30.0, 30.0]
    assert first(3, 1, lambda low, _high: low) == [0.8, 0.8, 0.8], "at most 20 % shorter"
    drawn = first(200, None, random.uniform)
    assert all(15 * 0.8 <= pause <= 15 for pause in drawn[5:])
    assert len(set(drawn)) > 150, "pipelines started together do not poll in step"


def test_a_change_starts_the_pauses_again_from_the_shortest() -> None:
    answers = itertools.chain(
        [pending(0, "a@x"), pending(1, "b@x")], itertools.repeat(pending(1, "b@x"))
    )
    sleeps: list[float] = []
    gate_client.wait_for_decision(
        lambda _key: next(answers),
        "p",
        first=pending(0, "a@x"),
        timeout=35,
        interval=None,
        on_change=lambda _gate: None,
        sleep=sleeps.append,
        monotonic=lambda: sum(sleeps),
        uniform=no_jitter,
    )
    # 2 s, unchanged, 3 s, a change: from 2 s again, and the timeout cuts the last pause short.
    assert sleeps == [2.0, 3.0, 2.0, 3.0, 4.5, 6.75, 10.125, 35 - 31.375]


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(5)


def create_token(runner: FlaskCliRunner, *scopes: str) -> str:
    args = ["tokens", "create", "--name", f"ci-{len(scopes)}-{'-'.join(scopes)}"]
    for scope in scopes:
        args += ["--scope", scope]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("gk_")
    assert "not shown again" in result.stderr
    return secret


def test_remote_gate_check_against_a_real_server(
    demo_data: None, runner: FlaskCliRunner, server: str
) -> None:
    token = create_token(runner, "gate:read")
    remote = CliRunner().invoke(cli, ["gate", "check", KEY, "--url", server, "--token", token])
    assert remote.exit_code == 3, remote.output
    assert f"{KEY} revision 1: PENDING" in remote.stdout
    by_env = CliRunner().invoke(
        cli,
        ["gate", "check", KEY, "--json"],
        env={"GATEKEEPER_URL": server, "GATEKEEPER_TOKEN": token},
    )
    assert by_env.exit_code == 3
    assert json.loads(by_env.stdout)["status"] == "pending"


@pytest.mark.parametrize(
    ("token", "message"),
    [("gk_not-a-real-token", "HTTP 401: invalid or revoked API token"), ("", "needs --token")],
)
def test_remote_errors_exit_4(demo_data: None, server: str, token: str, message: str) -> None:
    result = CliRunner().invoke(cli, ["gate", "check", KEY, "--url", server, "--token", token])
    assert result.exit_code == 4
    assert message in result.stderr


def test_unreachable_server_exits_4() -> None:
    result = CliRunner().invoke(
        cli, ["gate", "check", KEY, "--url", "http://127.0.0.1:9", "--token", "gk_x"]
    )
    assert result.exit_code == 4
    assert "cannot reach" in result.stderr


def test_tokens_list_and_revoke(demo_data: None, runner: FlaskCliRunner, server: str) -> None:
    token = create_token(runner, "gate:read")
    listing = runner.invoke(cli, ["tokens", "list", "--json"])
    rows = json.loads(listing.stdout)
    assert rows[0]["scopes"] == ["gate:read"]
    assert token not in listing.stdout
    assert rows[0]["prefix"] == token[:10]
    revoked = runner.invoke(cli, ["tokens", "revoke", rows[0]["name"]])
    assert revoked.exit_code == 0
    result = CliRunner().invoke(cli, ["gate", "check", KEY, "--url", server, "--token", token])
    assert result.exit_code == 4
    assert "401" in result.stderr
    missing = runner.invoke(cli, ["tokens", "revoke", "nope"])
    assert missing.exit_code == 1
    assert "no token named 'nope'" in missing.stderr


@pytest.fixture
def gate_statuses(app: Flask) -> Iterator[tuple[str, list[int]]]:
    """A real server around the app, and the status of every gate answer it sent."""
    statuses: list[int] = []

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            if environ["PATH_INFO"].endswith("/gate"):
                statuses.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)

        return app(environ, start)

    http = make_server("127.0.0.1", 0, recording, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}", statuses
    finally:
        http.shutdown()
        thread.join(5)


def test_remote_wait_polls_with_if_none_match_and_sees_the_gate_open(
    demo_data: None,
    runner: FlaskCliRunner,
    clock: FixedClock,
    gate_statuses: tuple[str, list[int]],
) -> None:
    url, statuses = gate_statuses
    read = gate_client.remote_reader(url, create_token(runner, "gate:read"))
    sleeps: list[float] = []
    seen: list[str] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            sign(clock)  # the key users sign while the pipeline waits

    final = gate_client.wait_for_decision(
        read,
        KEY,
        first=read(KEY),
        timeout=600,
        interval=None,
        on_change=lambda g: seen.append(gate_client.wait_line(g)),
        sleep=sleep,
        monotonic=lambda: sum(sleeps),
        uniform=no_jitter,
    )
    assert final["status"] == "open"
    assert statuses == [200, 304, 304, 200], "unchanged polls cost a 304 and no body"
    assert sleeps == [2.0, 3.0, 4.5]
    assert len(seen) == 1
    assert seen[0].startswith(f"{KEY} revision 1: PENDING")


def test_remote_wait_on_the_command_line_prints_once_and_says_what_it_waits_for(
    demo_data: None, runner: FlaskCliRunner, gate_statuses: tuple[str, list[int]]
) -> None:
    url, statuses = gate_statuses
    token = create_token(runner, "gate:read")
    args = ["gate", "check", KEY, "--url", url, "--token", token, "--wait"]
    result = CliRunner().invoke(cli, [*args, "--timeout", "0.5", "--interval", "0.05"])
    assert result.exit_code == 3, result.output
    progress, timed_out = result.stderr.splitlines()
    assert progress.startswith(f"{KEY} revision 1: PENDING")
    assert timed_out.startswith(f"timed out after 0.5 s: {KEY} is still PENDING, waiting on ")
    assert statuses[0] == 200
    assert len(statuses) > 3
    assert set(statuses[1:]) == {304}
    assert (
        json.loads(CliRunner().invoke(cli, [*args, "--timeout", "0", "--json"]).stdout)["status"]
        == "pending"
    ), "the last answer is printed whole, even after 304s"
