"""Syncing checklist files into the database: immutable, content-addressed, all or nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import Application, ChecklistVersion, GovernanceReview
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.checklist import ChecklistInvalid, content_digest
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from gatekeeper.services import checklists
from tests.conftest import CHECKLIST_AUTHOR, SAMPLES


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    target = tmp_path / "checklists"
    shutil.copytree(SAMPLES, target)
    return target


def sync(
    directory: Path, clock: FixedClock, author: str = CHECKLIST_AUTHOR
) -> list[checklists.SyncOutcome]:
    with unit_of_work(db.session) as session:
        return checklists.sync_checklists(
            session, directory, clock=clock, declared_authors=[author]
        )


def count_versions() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(ChecklistVersion)) or 0


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_first_sync_creates_every_version_pending_review(
    app: Flask, workdir: Path, clock: FixedClock
) -> None:
    outcomes = sync(workdir, clock, author="ana@example.com")
    assert [(o.application, o.version, o.status) for o in outcomes] == [
        ("identity-platform", 4, "created"),
        ("payments-api", 7, "created"),
        ("storefront-web", 12, "created"),
        ("freeze calendar", 1, "created"),  # checklists/freezes.yaml, synced beside them
    ]
    stored = db.session.scalars(sa.select(ChecklistVersion).order_by(ChecklistVersion.id)).all()
    assert {v.state for v in stored} == {"pending_review"}
    assert {v.author for v in stored} == {"ana@example.com"}
    for version in stored:
        assert version.sha256 == content_digest(json.loads(version.content))
        assert version.synced_at == clock.now()
        assert version.source_yaml.startswith("#")


def test_sync_twice_changes_nothing(app: Flask, workdir: Path, clock: FixedClock) -> None:
    sync(workdir, clock)
    before = db.session.execute(sa.select(ChecklistVersion.id, ChecklistVersion.sha256)).all()
    outcomes = sync(workdir, clock)
    assert {o.status for o in outcomes} == {"unchanged"}
    assert (
        db.session.execute(sa.select(ChecklistVersion.id, ChecklistVersion.sha256)).all() == before
    )


def test_comments_and_formatting_are_not_a_change(
    app: Flask, workdir: Path, clock: FixedClock
) -> None:
    sync(workdir, clock)
    edit(workdir / "payments-api.yaml", "# Back-office", "# Reformatted comment.\n# Back-office")
    assert {o.status for o in sync(workdir, clock)} == {"unchanged"}


def test_changed_content_without_a_bump_is_an_error_and_writes_nothing(
    app: Flask, workdir: Path, clock: FixedClock
) -> None:
    sync(workdir, clock)
    edit(workdir / "payments-api.yaml", "Dana Ortiz", "Dana Ortiz-Reyes")
    edit(workdir / "storefront-web.yaml", "version: 12", "version: 13")
    with pytest.raises(
        Conflict, match=r"payments-api.yaml: payments-api version 7 .* bump `version` to 8"
    ):
        sync(workdir, clock)
    assert count_versions() == 3, "the valid storefront bump must not be half-written"


def test_lower_version_is_an_error(app: Flask, workdir: Path, clock: FixedClock) -> None:
    sync(workdir, clock)
    edit(workdir / "payments-api.yaml", "version: 7", "version: 6")
    with pytest.raises(
        Conflict, match="version 6 of payments-api is lower than the stored version 7"
    ):
        sync(workdir, clock)


def test_a_bump_creates_a_new_version_and_supersedes_an_unreviewed_one(
    app: Flask, workdir: Path, clock: FixedClock
) -> None:
    sync(workdir, clock)
    edit(workdir / "payments-api.yaml", "version: 7", "version: 8")
    outcomes = {o.application: o.status for o in sync(workdir, clock)}
    assert outcomes == {
        "identity-platform": "unchanged",
        "payments-api": "created",
        "storefront-web": "unchanged",
        "freeze calendar": "unchanged",
    }
    states = dict(
        db.session.execute(
            sa.select(ChecklistVersion.version, ChecklistVersion.state)
            .join(Application)
            .where(Application.slug == "payments-api")
        ).all()
    )
    assert states == {7: "superseded", 8: "pending_review"}


def test_an_invalid_file_stops_the_whole_sync(app: Flask, workdir: Path, clock: FixedClock) -> None:
    edit(workdir / "storefront-web.yaml", "version: 12", "version: 1.10")
    with pytest.raises(ChecklistInvalid) as raised:
        sync(workdir, clock)
    assert raised.value.problems[0].line == 5
    assert count_versions() == 0


def test_two_files_for_one_application_is_an_error(
    app: Flask, workdir: Path, clock: FixedClock
) -> None:
    shutil.copy(workdir / "payments-api.yaml", workdir / "payments-copy.yaml")
    with pytest.raises(Conflict, match="keep one file per application"):
        sync(workdir, clock)
    assert count_versions() == 0


def test_an_empty_directory_is_an_error(app: Flask, tmp_path: Path, clock: FixedClock) -> None:
    with pytest.raises(ValidationFailed, match="no checklist files"):
        sync(tmp_path, clock)


def review(clock: FixedClock, **kwargs: object) -> GovernanceReview:
    with unit_of_work(db.session) as session:
        return checklists.review_version(session, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_review_approves_then_reaffirms(app: Flask, workdir: Path, clock: FixedClock) -> None:
    sync(workdir, clock, author="ana@example.com")
    first = review(
        clock,
        application="payments-api",
        version=7,
        action="approve",
        reviewer="release-board@example.com",
        consulted="Dana and Malik, by video call",
    )
    assert first.outcome == "approved"
    again = review(
        clock,
        application="payments-api",
        version=7,
        action="approve",
        reviewer="release-board@example.com",
        consulted="Dana",
    )
    assert again.outcome == "reaffirmed"
    version = checklists.get_version(db.session, "payments-api", 7)
    assert version.state == "approved"
    assert [r.outcome for r in version.reviews] == ["approved", "reaffirmed"]
    entry = next(
        e for e in checklists.catalogue(db.session) if e.application.slug == "payments-api"
    )
    assert entry.approved is not None
    assert entry.approved.version == 7


def test_author_cannot_approve_and_nothing_is_recorded(
    app: Flask, workdir: Path, clock: FixedClock
) -> None:
    sync(workdir, clock, author="release-board@example.com")
    with pytest.raises(PermissionDenied):
        review(
            clock,
            application="payments-api",
            version=7,
            action="approve",
            reviewer="release-board@example.com",
            consulted="x",
        )
    assert db.session.scalar(sa.select(sa.func.count()).select_from(GovernanceReview)) == 0


def test_request_changes_needs_notes_and_is_final(
    app: Flask, workdir: Path, clock: FixedClock
) -> None:
    sync(workdir, clock)
    args = {"application": "payments-api", "version": 7, "reviewer": "release-board@example.com"}
    with pytest.raises(ValidationFailed, match="notes"):
        review(clock, action="request_changes", **args)
    review(clock, action="request_changes", notes="Add the refunds desk scenario", **args)
    with pytest.raises(Conflict, match="changes requested cannot be approved"):
        review(clock, action="approve", consulted="x", **args)


def test_unknown_version_is_not_found(app: Flask, clock: FixedClock) -> None:
    with pytest.raises(NotFound, match="no checklist version 3 of 'nope'"):
        checklists.get_version(db.session, "nope", 3)
