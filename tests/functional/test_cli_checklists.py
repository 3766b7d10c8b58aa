"""The checklist commands as a user runs them: exit codes, output, what lands in the database."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import ChecklistVersion
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES


def run(runner: FlaskCliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_lint_accepts_the_samples_without_any_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No app, no configuration: lint must not touch a database.
    monkeypatch.setenv("GATEKEEPER_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(cli, ["checklists", "lint", str(SAMPLES)])
    assert result.exit_code == 0, result.output
    # The three sample checklists and the freeze calendar.
    assert "4 of 4 checklist file(s) valid, 0 problem(s)" in result.stderr


def test_lint_reports_each_problem_with_file_line_col_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (SAMPLES / "payments-api.yaml").read_text().replace("version: 7", "version: 1.10")
    )
    result = CliRunner().invoke(
        cli, ["checklists", "lint", str(bad), str(SAMPLES / "storefront-web.yaml")]
    )
    assert result.exit_code == 1
    assert f"{bad}:5:10: version: must be a whole number" in result.stdout
    assert "1 of 2 checklist file(s) valid, 1 problem(s)" in result.stderr


def test_lint_json_format_for_machines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    result = CliRunner().invoke(
        cli, ["checklists", "lint", "--format", "json", str(bad), str(SAMPLES)]
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    by_path = {f["path"]: f for f in report["files"]}
    assert by_path[str(bad)]["problems"][0]["line"] == 1
    assert by_path[str(SAMPLES / "payments-api.yaml")] == {
        "path": str(SAMPLES / "payments-api.yaml"),
        "ok": True,
        "application": "payments-api",
        "version": 7,
        "problems": [],
    }


def test_lint_of_a_directory_without_checklists_fails(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["checklists", "lint", str(tmp_path)])
    assert result.exit_code == 1
    assert "no checklist files" in result.stderr


def test_lint_of_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["checklists", "lint", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2


def test_schema_prints_a_json_schema_that_accepts_the_samples() -> None:
    import yaml

    result = CliRunner().invoke(cli, ["checklists", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for sample in SAMPLES.glob("*.yaml"):
        if sample.name == "freezes.yaml":  # the freeze calendar, not a checklist
            continue
        jsonschema.validate(yaml.safe_load(sample.read_text()), schema)


def test_sync_then_review_through_the_cli(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    directory = tmp_path / "checklists"
    shutil.copytree(SAMPLES, directory)
    code, out, err = run(
        runner, "checklists", "sync", str(directory), "--author", "ana@example.com"
    )
    assert code == 0, err
    assert "payments-api: created version 7 (pending review)" in out
    code, out, _ = run(runner, "checklists", "sync", str(directory), "--json")
    assert code == 0
    assert {o["status"] for o in json.loads(out)} == {"unchanged"}

    code, out, err = run(
        runner,
        "checklists",
        "review",
        "payments-api",
        "--version",
        "7",
        "--approve",
        "--reviewer",
        "release-board@example.com",
        "--consulted",
        "Dana by phone",
    )
    assert code == 0, err
    assert "payments-api version 7: approved by release-board@example.com" in out
    assert (
        db.session.scalar(sa.select(ChecklistVersion.state).where(ChecklistVersion.version == 7))
        == "approved"
    )


def test_sync_error_is_one_clear_line_and_exit_1(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    directory = tmp_path / "checklists"
    shutil.copytree(SAMPLES, directory)
    run(runner, "checklists", "sync", str(directory), "--author", "ana@example.com")
    path = directory / "payments-api.yaml"
    path.write_text(path.read_text().replace("Dana Ortiz", "Dana Ortiz-Reyes"))
    code, _, err = run(runner, "checklists", "sync", str(directory), "--author", CHECKLIST_AUTHOR)
    assert code == 1
    assert "bump `version` to 8" in err
    assert "Traceback" not in err


def test_review_by_a_stranger_is_refused(app: Flask, runner: FlaskCliRunner) -> None:
    run(runner, "checklists", "sync", str(SAMPLES), "--author", CHECKLIST_AUTHOR)
    code, _, err = run(
        runner,
        "checklists",
        "review",
        "payments-api",
        "--version",
        "7",
        "--approve",
        "--reviewer",
        "mallory@example.com",
        "--consulted",
        "nobody",
    )
    assert code == 1
    assert "mallory@example.com is not a governance reviewer of payments-api" in err


def test_review_needs_an_outcome(app: Flask, runner: FlaskCliRunner) -> None:
    code, _, err = run(
        runner,
        "checklists",
        "review",
        "payments-api",
        "--version",
        "7",
        "--reviewer",
        "x@example.com",
    )
    assert code == 2
    assert "choose --approve or --request-changes" in err


def test_approve_and_request_changes_together_are_refused_as_contradictory(
    app: Flask, runner: FlaskCliRunner
) -> None:
    run(runner, "checklists", "sync", str(SAMPLES), "--author", "ana@example.com")
    for order in (["--approve", "--request-changes"], ["--request-changes", "--approve"]):
        code, out, err = run(
            runner,
            "checklists",
            "review",
            "payments-api",
            "--version",
            "7",
            *order,
            "--reviewer",
            "release-board@example.com",
            "--consulted",
            "Dana by phone",
            "--notes",
            "looks fine",
        )
        assert code == 2, out
        assert "--approve and --request-changes cannot be used together" in err
    assert (
        db.session.scalar(sa.select(ChecklistVersion.state).where(ChecklistVersion.version == 7))
        == "pending_review"
    )


def test_worker_once_and_interval_are_refused_as_contradictory(runner: FlaskCliRunner) -> None:
    code, _, err = run(runner, "worker", "--once", "--interval", "1")
    assert code == 2
    assert "--once and --interval cannot be used together" in err


def test_demo_prepares_data_and_is_repeatable(app: Flask, runner: FlaskCliRunner) -> None:
    code, out, err = run(runner, "demo", "--no-serve")
    assert code == 0, err
    assert "checklist payments-api v7: created" in out
    assert "checklist payments-api v7: approved by release-board@example.com" in out
    # Governance: a released package with an open finding, and a pending version addressing it.
    assert "finding F-1 on refund-queue: reported after 2026.10-demo, open" in out
    assert "checklist refund-queue v2: pending review (addresses F-1)" in out
    code, out, err = run(runner, "demo", "--no-serve")
    assert code == 0, err
    assert "checklist payments-api v7: unchanged" in out
    assert "checklist storefront-web v12: unchanged" in out
    assert "approved by" not in out, "the pending version stays pending"
    assert "finding" not in out


def test_a_misspelt_setting_stops_the_cli_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEKEEPER_DATABSE_URL", "sqlite:///x")
    result = CliRunner().invoke(cli, ["checklists", "sync"])
    assert result.exit_code == 1
    assert "did you mean GATEKEEPER_DATABASE_URL?" in result.output
