"""`gatekeeper demo` as a newcomer meets it: links on the port it serves, clear port clashes,
commands that work as printed, the README's sequence on the demo database, and numbers that
agree with the dashboard."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.app import create_app
from gatekeeper.cli import cli
from gatekeeper.cli.demo import PORT_TAKEN
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, OutboxMessage
from gatekeeper.runtime import runtime
from gatekeeper.services.demo import DEMO_PACKAGE, DEMO_RELEASE_MANAGER
from gatekeeper.settings import load_settings
from tests.conftest import REPO, SAMPLES, clean_environ, dispose
from tests.functional.web_helpers import sign_in
from tests.support.mail import free_port

LINK = re.compile(r"https?://[^\s<>\"']+")


def demo(runner: FlaskCliRunner, *args: str) -> str:
    result = runner.invoke(cli, ["demo", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def emailed_links() -> list[str]:
    db.session.remove()
    return [
        link
        for body in db.session.scalars(sa.select(OutboxMessage.body_text))
        for link in LINK.findall(body)
    ]


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README runs its commands from the checkout: `checklists/` is the samples."""
    monkeypatch.chdir(REPO)


def test_emailed_links_point_at_the_port_the_demo_serves_on(
    app: Flask, runner: FlaskCliRunner
) -> None:
    out = demo(runner, "--no-serve", "--port", "5077")
    assert "emailed links point at http://127.0.0.1:5077/" in out
    links = emailed_links()
    for kind in ("/s/", "/review/", "/report/", "/review/findings/"):
        assert any(urlsplit(link).path.startswith(kind) for link in links), kind
    assert all(link.startswith("http://127.0.0.1:5077/") for link in links), links
    result = runner.invoke(cli, ["gate", "badge-url", DEMO_PACKAGE])
    assert result.stdout.startswith("http://127.0.0.1:5077/badges/")
    later = load_settings(clean_environ(), Path(app.instance_path))
    assert later.base_url == "http://127.0.0.1:5077", "other commands run here link there too"


def test_an_explicit_base_url_wins_over_the_demo_port(database_url: str, tmp_path: Path) -> None:
    app = create_app(
        environ=clean_environ(
            GATEKEEPER_DATABASE_URL=database_url, GATEKEEPER_BASE_URL="https://gate.example.com"
        ),
        instance_path=str(tmp_path / "instance"),
    )
    try:
        with app.app_context():
            out = demo(app.test_cli_runner(), "--no-serve", "--port", "5077")
            assert "emailed links point at https://gate.example.com/" in out
            links = emailed_links()
            assert links
            assert all(link.startswith("https://gate.example.com/") for link in links)
    finally:
        dispose(app)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def assert_nothing_written(app: Flask) -> None:
    db.session.remove()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 0
    assert not (Path(app.instance_path) / "demo-checklists").exists()


@pytest.mark.parametrize("option", ["--port", "--smtp-port"])
def test_a_taken_port_stops_the_demo_before_it_writes_or_prints_anything(
    app: Flask, runner: FlaskCliRunner, taken_port: int, option: str
) -> None:
    ports = {"--port": str(free_port()), "--smtp-port": str(free_port()), option: str(taken_port)}
    result = runner.invoke(cli, ["demo", *(x for pair in ports.items() for x in pair)])
    assert result.exit_code == PORT_TAKEN, result.output
    assert result.stdout == ""
    (message,) = result.stderr.strip().splitlines()
    assert f"port {taken_port}" in message
    assert "in use" in message
    suggested = re.search(r"demo --port (\d+) --smtp-port (\d+)$", message)
    assert suggested, message
    web, smtp = (int(p) for p in suggested.groups())
    assert taken_port not in (web, smtp)
    assert_nothing_written(app)


def run_printed(command: str, app: Flask, database_url: str, cwd: Path) -> int:
    """Run a command exactly as the demo printed it, with a PATH that has no virtualenv on it,
    on the test app's host: its audit witness, not one in the checkout's instance folder."""
    env = {
        **clean_environ(
            GATEKEEPER_DATABASE_URL=database_url,
            GATEKEEPER_AUDIT_WITNESS_FILE=runtime(app).settings.audit_witness_file,
        ),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    return subprocess.run(
        shlex.split(command), cwd=cwd, env=env, capture_output=True, check=False
    ).returncode


def test_the_commands_the_demo_prints_work_as_printed(
    app: Flask, runner: FlaskCliRunner, database_url: str, in_repo: None
) -> None:
    out = demo(runner, "--no-serve")
    (command,) = re.findall(r"^try: (.+)$", out, flags=re.MULTILINE)
    assert command.endswith(f"gate check {DEMO_PACKAGE}")
    assert run_printed(command, app, database_url, REPO) == 3, "pending, as the demo's package is"


def counts_in(out: str) -> dict[str, int]:
    found = re.search(r"submitted: (\d+) requests to (\d+) people", out)
    gate = re.search(
        r"(\d+) sign-offs recorded as demo data; the gate counts (\d+) of (\d+) required "
        r"sign-offs, waiting on (\d+) people",
        out,
    )
    emailed = re.search(r"(\d+) people emailed their sign-off link", out)
    assert found, out
    assert gate, out
    assert emailed, out
    requests, people = found.groups()
    _, signed, required, waiting = gate.groups()
    return {
        "requests": int(requests),
        "people": int(people),
        "signed": int(signed),
        "required": int(required),
        "waiting": int(waiting),
        "emailed": int(emailed.group(1)),
    }


def test_the_demo_counts_what_the_dashboard_and_the_gate_show(
    app: Flask, runner: FlaskCliRunner
) -> None:
    counts = counts_in(demo(runner, "--no-serve"))
    assert counts["emailed"] == counts["waiting"], "everyone still asked is emailed"
    browser = sign_in(app, DEMO_RELEASE_MANAGER)
    dashboard = browser.get("/").text
    row = dashboard[dashboard.index(f'data-key="{DEMO_PACKAGE}"') :].split("</tr>")[0]
    assert f'data-signed="{counts["signed"]}" data-required="{counts["required"]}"' in row
    assert f"{counts['signed']} of {counts['required']} required sign-offs" in row
    shown = row.count("<li>") - 1 + int(re.search(r"and (\d+) more", row).group(1))  # type: ignore[union-attr]
    assert shown == counts["waiting"]
    board = browser.get(f"/packages/{DEMO_PACKAGE}").text
    assert f"{counts['signed']} of {counts['required']} required sign-offs" in board
    in_words = (
        f"{counts['signed']} of {counts['required']} required sign-offs, waiting on "
        f"{counts['waiting']} people"
    )
    assert in_words in runner.invoke(cli, ["gate", "check", DEMO_PACKAGE]).stdout
    assert f"package {DEMO_PACKAGE}: in review (as stored): the gate counts {in_words}" in demo(
        runner, "--no-serve"
    ), "a second run says where the package stands"


def test_the_readme_sequence_works_on_the_demo_database(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, in_repo: None
) -> None:
    demo(runner, "--no-serve")
    synced = runner.invoke(cli, ["checklists", "sync"])
    assert synced.exit_code == 0, synced.output
    assert "created" not in synced.stdout, "the samples are what the demo stored"
    again = demo(runner, "--no-serve")
    assert "created" not in again
    assert "finding" not in again, "the governance story is there already"
    # The README's change workflow, on a copy: bump a sample's version and sync it.
    copy = tmp_path / "checklists"
    shutil.copytree(SAMPLES, copy)
    sample = copy / "payments-api.yaml"
    sample.write_text(
        sample.read_text(encoding="utf-8").replace("version: 7", "version: 8", 1),
        encoding="utf-8",
    )
    bumped = runner.invoke(cli, ["checklists", "sync", str(copy), "--author", "you@example.com"])
    assert bumped.exit_code == 0, bumped.output
    assert "payments-api: created version 8 (pending review)" in bumped.stdout
    # checklists/ still says 7: the demo starts with what the database holds.
    rerun = demo(runner, "--no-serve")
    assert (
        "checklist payments-api: keeping the stored v8 (checklists/payments-api.yaml says v7)"
        in (rerun)
    )


def test_a_sample_edited_without_a_new_version_does_not_stop_the_demo(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo(runner, "--no-serve")
    shutil.copytree(SAMPLES, tmp_path / "checklists")
    edited = tmp_path / "checklists" / "storefront-web.yaml"
    edited.write_text(
        edited.read_text(encoding="utf-8").replace("title: ", "title: Edited ", 1),
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    out = demo(runner, "--no-serve")
    assert "checklist storefront-web: keeping the stored v12" in out
    assert "checklist payments-api v7: unchanged" in out


def test_commands_keep_their_state_in_instance_of_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app(
        environ={k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    )
    try:
        assert app.instance_path == str(tmp_path / "instance")
        assert app.config["SQLALCHEMY_DATABASE_URI"] == (
            f"sqlite:///{tmp_path / 'instance' / 'gatekeeper.sqlite'}"
        )
    finally:
        dispose(app)


def test_the_demo_shows_an_emergency_two_mailbox_clicks_away_from_open(
    app: Flask, runner: FlaskCliRunner
) -> None:
    from gatekeeper.services.demo_emergency import HOTFIX_PACKAGE
    from tests.functional.web_helpers import client, csrf, path_of

    printed = demo(runner, "--no-serve")
    assert f"package {HOTFIX_PACKAGE}: emergency release, gate pending" in printed
    board = sign_in(app, DEMO_RELEASE_MANAGER).get(f"/packages/{HOTFIX_PACKAGE}").text
    assert 'data-testid="emergency-panel"' in board
    db.session.remove()
    approvals = [
        link
        for body in db.session.scalars(
            sa.select(OutboxMessage.body_text).where(OutboxMessage.template == "emergency_approval")
        )
        for link in LINK.findall(body)
        if "/emergency/" in link
    ]
    db.session.remove()
    assert len(approvals) == 3
    for link in approvals[:2]:
        browser = client(app)
        page = browser.get(path_of(link))
        browser.post(path_of(link), data={"csrf_token": csrf(page.text)})
    checked = runner.invoke(cli, ["gate", "check", HOTFIX_PACKAGE, "--json"])
    assert checked.exit_code == 0, checked.output
    assert '"mode": "emergency"' in checked.stdout
    assert "demo" in demo(runner, "--no-serve")  # a second run leaves the story as it is
