"""Who counts as the author of a checklist change, from real git repositories: every author and
committer since the last approved version; an unknown author means two reviewers must approve."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import ChecklistVersion
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.services import checklists, reviews
from tests.conftest import SAMPLES, clean_environ, dispose
from tests.functional.api_helpers import create_package, create_token
from tests.functional.web_helpers import client, csrf
from tests.support.git import commit, git, new_repo, person
from tests.support.governance import BOARD, UX_LEAD, gate, tokens, write_version
from tests.support.mail import catcher, link_to, messages_to, point_mail_at, run_worker

APP = "storefront-web"  # reviewed by BOARD and UX_LEAD
ANA = "ana@example.com"  # an engineer, not a reviewer
CONSULTED = "the support leads, in the Monday call"


def sync(runner: FlaskCliRunner, directory: Path, *options: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["checklists", "sync", str(directory), *options])
    return result.exit_code, result.output


def review(runner: FlaskCliRunner, reviewer: str, version: int = 12) -> tuple[int, str]:
    result = runner.invoke(
        cli,
        [
            "checklists",
            "review",
            APP,
            "--version",
            str(version),
            "--approve",
            "--reviewer",
            reviewer,
            "--consulted",
            CONSULTED,
        ],
    )
    return result.exit_code, result.output


def stored(version: int = 12) -> ChecklistVersion:
    db.session.rollback()
    return checklists.get_version(db.session, APP, version)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return new_repo(tmp_path, APP)


def test_a_forged_git_author_does_not_hide_who_committed(
    app: Flask, runner: FlaskCliRunner, repo: Path
) -> None:
    commit(repo, "storefront v12", by=UX_LEAD, author=ANA)
    assert sync(runner, repo / "checklists")[0] == 0
    assert stored().authors == [ANA, UX_LEAD]
    code, output = review(runner, UX_LEAD)
    assert code == 1
    assert "authored version 12 of storefront-web" in output
    assert review(runner, BOARD)[0] == 0


def test_a_comment_only_commit_on_top_does_not_make_the_author_a_reviewer(
    app: Flask, runner: FlaskCliRunner, repo: Path
) -> None:
    commit(repo, "storefront v12", by=UX_LEAD)
    path = repo / "checklists" / f"{APP}.yaml"
    path.write_text(path.read_text() + "# wording checked with support\n")
    commit(repo, "comment only", by=ANA)
    assert sync(runner, repo / "checklists")[0] == 0
    assert stored().authors == [ANA, UX_LEAD]
    assert review(runner, UX_LEAD)[0] == 1
    assert review(runner, BOARD)[0] == 0


def test_without_an_approved_version_every_commit_of_the_file_counts(
    app: Flask, runner: FlaskCliRunner, repo: Path, clock: FixedClock
) -> None:
    commit(repo, "storefront v12", by=UX_LEAD)
    path = repo / "checklists" / f"{APP}.yaml"
    path.write_text(path.read_text() + "# a comment after the version was synced\n")
    commit(repo, "comment only", by=BOARD)
    assert sync(runner, repo / "checklists")[0] == 0
    assert review(runner, BOARD)[0] == 1, "BOARD's comment is part of what v12 approves"
    assert review(runner, UX_LEAD)[0] == 1
    # Its two reviewers both wrote v12: it stays pending, and v13 comes from an engineer.
    write_version(repo / "checklists", APP, 13)
    commit(repo, "storefront v13", by=ANA)
    assert sync(runner, repo / "checklists")[0] == 0
    assert stored(13).authors == [ANA, BOARD, UX_LEAD], "v12 was never approved"
    assert stored(13).authorship_unknown is None
    assert review(runner, BOARD, 13)[0] == 1


def test_the_approved_version_is_where_counting_authors_stops(
    app: Flask, runner: FlaskCliRunner, repo: Path, clock: FixedClock
) -> None:
    commit(repo, "storefront v12", by=ANA)
    assert sync(runner, repo / "checklists")[0] == 0
    assert review(runner, BOARD)[0] == 0
    # Formatting and comments after approval keep its content: the walk stops there too.
    path = repo / "checklists" / f"{APP}.yaml"
    path.write_text(path.read_text() + "# still accurate after the approval\n")
    commit(repo, "comment only", by=BOARD)
    write_version(repo / "checklists", APP, 13)
    commit(repo, "storefront v13", by=UX_LEAD)
    assert sync(runner, repo / "checklists")[0] == 0
    assert stored(13).authors == [UX_LEAD], "v12's authors and the comment are not v13's"
    assert review(runner, UX_LEAD, 13)[0] == 1
    assert review(runner, BOARD, 13)[0] == 0


def test_a_sync_from_outside_git_without_author_needs_two_reviewers(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, clock: FixedClock
) -> None:
    directory = tmp_path / "checklists"
    directory.mkdir()
    shutil.copy(SAMPLES / f"{APP}.yaml", directory)
    code, output = sync(runner, directory)
    assert code == 0, output
    assert "author unknown: two reviewers must approve it" in output
    assert stored().authors == []
    assert "not in a git repository" in (stored().authorship_unknown or "")
    code, output = review(runner, BOARD)
    assert (code, "partially approved by release-board" in output) == (0, True), output
    assert stored().state == "pending_review"
    clock.advance(timedelta(minutes=5))
    create_package(clock, "2026.11-authors", {APP: "12.0.1"})
    blockers = [b.code for b in gate(app, clock, "2026.11-authors").blockers]
    assert blockers == [gate_rules.NO_APPROVED_CHECKLIST], "one approval is not enough"
    code, output = review(runner, BOARD)
    assert code == 1
    assert "already approved this version" in output
    link = client(app).get(f"/review/{tokens('review')[BOARD]}")
    assert (link.status_code, 'data-reason="decided"' in link.text) == (410, True)
    assert "the first of the two approvals it needs" in link.text
    assert review(runner, UX_LEAD)[0] == 0
    assert stored().state == "approved"
    assert [r.outcome for r in stored().reviews] == ["partially_approved", "approved"]


def test_a_single_reviewer_checklist_of_unknown_authorship_is_refused(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    directory = tmp_path / "checklists"
    directory.mkdir()
    shutil.copy(SAMPLES / "payments-api.yaml", directory)
    code, output = sync(runner, directory)
    assert code == 1
    assert "names only one reviewer" in output
    assert "--author" in output
    assert sync(runner, directory, "--author", ANA)[0] == 0


def test_uncommitted_changes_have_an_unknown_author_unless_one_is_given(
    app: Flask, runner: FlaskCliRunner, repo: Path
) -> None:
    commit(repo, "storefront v12", by=ANA)
    path = repo / "checklists" / f"{APP}.yaml"
    path.write_text(path.read_text().replace("title: Storefront web shop", "title: Web shop"))
    assert sync(runner, repo / "checklists")[0] == 0
    assert "uncommitted changes" in (stored().authorship_unknown or "")
    assert stored().authors == [ANA]


def test_declared_author_covers_uncommitted_changes(
    app: Flask, runner: FlaskCliRunner, repo: Path
) -> None:
    commit(repo, "storefront v12", by=ANA)
    path = repo / "checklists" / f"{APP}.yaml"
    path.write_text(path.read_text().replace("title: Storefront web shop", "title: Web shop"))
    assert sync(runner, repo / "checklists", "--author", UX_LEAD)[0] == 0
    assert stored().authorship_unknown is None
    assert stored().authors == [ANA, UX_LEAD]


def test_a_shallow_clone_hides_earlier_authors(
    app: Flask, runner: FlaskCliRunner, repo: Path, tmp_path: Path
) -> None:
    commit(repo, "storefront v12", by=UX_LEAD)
    path = repo / "checklists" / f"{APP}.yaml"
    path.write_text(path.read_text() + "# reformatted\n")
    commit(repo, "comment only", by=ANA)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--depth", "1", f"file://{repo}", str(clone))
    assert sync(runner, clone / "checklists", "--author", ANA)[0] == 0
    assert "shallow" in (stored().authorship_unknown or "")
    assert stored().authors == [ANA]
    assert review(runner, UX_LEAD)[0] == 0
    assert stored().state == "pending_review", "UX_LEAD's commit was hidden: a second approval"


@pytest.fixture
def strict_app(database_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[Flask]:
    """An app that requires a named author on every sync, as production does by default."""
    from gatekeeper.app import create_app

    strict = create_app(
        clock=clock,
        environ=clean_environ(
            GATEKEEPER_DATABASE_URL=database_url, GATEKEEPER_SYNC_REQUIRE_AUTHOR="true"
        ),
        instance_path=str(tmp_path / "strict-instance"),
    )
    with strict.app_context():
        yield strict
    dispose(strict)


def test_a_sync_can_be_required_to_name_its_author(
    strict_app: Flask, repo: Path, clock: FixedClock
) -> None:
    runner = strict_app.test_cli_runner()
    commit(repo, "storefront v12", by=ANA)
    code, output = sync(runner, repo / "checklists")
    assert code == 1
    assert "GATEKEEPER_SYNC_REQUIRE_AUTHOR" in output
    assert "--author" in output
    secret = create_token(clock, "checklist-ci", owner=UX_LEAD)
    code, output = sync(runner, repo / "checklists", "--token", secret)
    assert code == 0, output
    assert stored().authors == [ANA, UX_LEAD], "the CI token's owner is accountable"
    assert review(runner, UX_LEAD)[0] == 1


def test_a_revoked_or_ownerless_token_names_nobody(
    strict_app: Flask, repo: Path, clock: FixedClock
) -> None:
    runner = strict_app.test_cli_runner()
    commit(repo, "storefront v12", by=ANA)
    ownerless = create_token(clock, "ownerless", scopes=["gate:read"], owner=None)
    code, output = sync(runner, repo / "checklists", "--token", ownerless)
    assert (code, "has no owner" in output) == (1, True), output
    code, output = sync(runner, repo / "checklists", "--token", "gk_made_up")
    assert (code, "invalid or revoked" in output) == (1, True), output


def test_two_reviewers_approve_an_unknown_authors_version_through_their_links(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path, clock: FixedClock
) -> None:
    directory = tmp_path / "checklists"
    directory.mkdir()
    shutil.copy(SAMPLES / f"{APP}.yaml", directory)
    with catcher() as smtp:
        point_mail_at(app, smtp.port)
        assert sync(runner, directory)[0] == 0
        run_worker(app)
        (mail,) = [m for m in messages_to(smtp, BOARD) if "Review needed" in m.subject]
        assert "so two reviewers must approve it" in mail.text
        board, ux = (link_to(smtp, who, "review") for who in (BOARD, UX_LEAD))
        browser = client(app)
        page = browser.get(board)
        assert 'data-testid="two-approvals"' in page.text
        assert "Yours would be the first approval" in page.text
        done = browser.post(
            board, data={"csrf_token": csrf(page.text), "action": "approve", "consulted": CONSULTED}
        )
        assert (done.status_code, 'data-outcome="partially_approved"' in done.text) == (200, True)
        assert 'data-testid="second-approval"' in done.text
        assert stored().state == "pending_review"
        clock.advance(timedelta(minutes=10))
        with unit_of_work(db.session) as session:
            _, emailed = reviews.resend_review_links(
                session, APP, settings=runtime(app).governance_settings(), clock=clock
            )
        assert emailed == [UX_LEAD], "the first approver is not asked again"
        run_worker(app)
        second = link_to(smtp, UX_LEAD, "review")
        assert second != ux, "the resend replaced UX_LEAD's link"
        page = browser.get(second)
        assert "release-board@example.com gave the first approval" in page.text
        done = browser.post(
            second,
            data={"csrf_token": csrf(page.text), "action": "approve", "consulted": CONSULTED},
        )
        assert (done.status_code, 'data-outcome="approved"' in done.text) == (200, True)
        assert stored().state == "approved"


def test_a_commit_without_an_email_address_leaves_its_author_unknown(
    app: Flask, runner: FlaskCliRunner, repo: Path
) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", "v12", author="Nobody <>", committer=person(ANA))
    assert sync(runner, repo / "checklists", "--author", UX_LEAD)[0] == 0
    assert "names no email address" in (stored().authorship_unknown or "")
    assert stored().authors == [ANA, UX_LEAD]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs to hand the repository to another user")
def test_a_repository_git_refuses_to_read_hides_its_authors(
    app: Flask, runner: FlaskCliRunner, repo: Path
) -> None:
    commit(repo, "storefront v12", by=ANA)
    for path in (repo, *repo.rglob("*")):
        os.chown(path, 65534, 65534, follow_symlinks=False)
    assert sync(runner, repo / "checklists", "--author", UX_LEAD)[0] == 0
    assert "dubious ownership" in (stored().authorship_unknown or "")
