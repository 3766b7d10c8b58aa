"""Faults in the middle of work: a locked database, a crash halfway through a sign-off."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.app import create_app
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, OutboxMessage, Signoff, SignoffLink
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import audit
from tests.conftest import clean_environ, dispose
from tests.support.flows import prepare

pytestmark = pytest.mark.reliability
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def counts() -> tuple[int, ...]:
    return tuple(
        db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
        for model in (Signoff, AuditEvent, OutboxMessage)
    )


def filled_form(client: object, path: str) -> dict[str, str]:
    page = client.get(path)  # type: ignore[attr-defined]
    assert page.status_code == 200
    found = CSRF.search(page.text)
    assert found
    form = {"csrf_token": found.group(1)}
    for prefix in sorted(set(re.findall(r'name="(r\d+)-decision"', page.text))):
        form[f"{prefix}-decision"] = "pass"
        form[f"{prefix}-evidence"] = "https://ci.example.com/1"
    return form


def test_an_exception_in_the_middle_of_a_sign_off_leaves_nothing_behind(
    app: Flask, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = prepare(app, clock)
    client = app.test_client()
    path = f"/s/{tokens['raj@example.com']}"
    form = filled_form(client, path)
    before = counts()
    real_record = audit.record
    calls = {"n": 0}

    def failing_record(session: object, **kwargs: object) -> object:
        if kwargs.get("action") == "signoff.recorded":
            calls["n"] += 1
            if calls["n"] == 2:  # the second of raj's three decisions
                raise RuntimeError("power cut")
        return real_record(session, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(audit, "record", failing_record)
    response = client.post(path, data=form)
    assert response.status_code == 500
    assert "Nothing was changed" in response.text
    db.session.rollback()
    assert counts() == before, "no sign-off, no audit event, no email may remain"
    assert (
        db.session.scalar(
            sa.select(SignoffLink.state).where(SignoffLink.signer == "raj@example.com")
        )
        == "active"
    ), "the link still works"
    monkeypatch.setattr(audit, "record", real_record)
    assert client.post(path, data=filled_form(client, path)).status_code == 200


def test_a_sqlite_lock_held_too_long_gives_503_and_nothing_partial(
    tmp_path: Path,
    migrated_databases: dict[str, str],
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import shutil

    database = tmp_path / "locked.sqlite"
    shutil.copy(migrated_databases["sqlite"], database)
    app = create_app(
        clock=clock,
        environ=clean_environ(
            GATEKEEPER_DATABASE_URL=f"sqlite:///{database}", GATEKEEPER_SQLITE_BUSY_TIMEOUT="0.2"
        ),
        instance_path=str(tmp_path),
    )
    app.config["TESTING"] = True
    try:
        with app.app_context():
            tokens = prepare(app, clock)
            client = app.test_client()
            path = f"/s/{tokens['raj@example.com']}"
            form = filled_form(client, path)
            before = counts()
            db.session.rollback()
            holder = sqlite3.connect(database, isolation_level=None)
            caplog.clear()
            try:
                holder.execute("BEGIN IMMEDIATE")
                response = client.post(path, data=form)
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "2"
            assert "Nothing was changed" in response.text
            # One line that says what happened, without the token (a credential) or a traceback.
            [record] = caplog.records
            assert record.getMessage() == (
                "database unavailable on POST /s/[token]: OperationalError: database is locked"
            )
            assert record.exc_info is None
            assert tokens["raj@example.com"] not in caplog.text
            assert counts() == before
            assert client.post(path, data=filled_form(client, path)).status_code == 200
    finally:
        dispose(app)
