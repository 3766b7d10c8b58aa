"""GitLab deployment approvals against a fake GitLab on loopback (pytest-httpserver, shapes in
tests/contracts/gitlab.py): the worker finds the blocked deployment by polling, key users sign
through emailed links (real SMTP), and GitLab receives exactly one approval."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from pytest_httpserver import HTTPServer

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import MailCatcher
from tests.conftest import START, dispose, make_app
from tests.contracts import gitlab as fake
from tests.support.flows import race
from tests.support.mail import run_worker
from tests.support.platform_loop import deployments, sign_every_emailed_link, submit_targeted

SECRET = "gitlab-webhook-secret-0123456789"
KEY = "2026.12-gitlab"
MANAGER = "release-manager@example.com"
SHA = "1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def app(
    database_url: str, tmp_path: Path, clock: FixedClock, httpserver: HTTPServer
) -> Iterator[Flask]:
    app = make_app(
        database_url,
        tmp_path / "instance",
        clock,
        GATEKEEPER_GITLAB_URL=httpserver.url_for("").rstrip("/"),
        GATEKEEPER_GITLAB_TOKEN=fake.TOKEN,
        GATEKEEPER_GITLAB_WEBHOOK_SECRET=SECRET,
        GATEKEEPER_GITLAB_POLL_SECONDS="60",
    )
    with app.app_context():
        yield app
    dispose(app)


@pytest.fixture
def gitlab(httpserver: HTTPServer) -> fake.FakeGitLab:
    return fake.FakeGitLab(httpserver)


def submit_package(app: Flask, clock: FixedClock, tmp_path: Path, version: str = "v2.0.1") -> None:
    target = f"gitlab: {{project: {fake.PROJECT}, environment: {fake.ENVIRONMENT}}}"
    submit_targeted(app, clock, tmp_path, target, (KEY, version))


def event(app: Flask, secret: str, kind: str = "Job Hook") -> int:
    answer = app.test_client().post(
        "/integrations/gitlab/webhook",
        json={"object_kind": "build"},
        headers=fake.event_headers(secret, kind),
    )
    db.session.remove()
    return answer.status_code


def test_full_loop_a_blocked_deployment_is_found_signed_by_email_and_approved_once(
    app: Flask, clock: FixedClock, smtp: MailCatcher, gitlab: fake.FakeGitLab
) -> None:
    gitlab.expect_approval(41)
    submit_package(app, clock, Path(app.instance_path).parent)
    gitlab.blocked.append(fake.deployment(41, sha=SHA, ref="v2.0.1"))
    run_worker(app)
    assert gitlab.lists == 1
    assert [d.state for d in deployments()] == ["waiting"]
    assert gitlab.approvals == []

    assert sign_every_emailed_link(app, smtp) >= 2
    run_worker(app)
    run_worker(app, worker_id="another")
    [approval] = gitlab.approvals
    assert (approval["deployment"], approval["status"]) == (41, "approved")
    assert "gate open" in approval["comment"]
    assert [d.state for d in deployments()] == ["approved"]
    logged = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.like("deployment.%"))
    ).all()
    assert logged == ["deployment.approved"]


def test_polls_wait_their_interval_unless_a_job_event_arrives(
    app: Flask, clock: FixedClock, gitlab: fake.FakeGitLab
) -> None:
    submit_package(app, clock, Path(app.instance_path).parent)
    run_worker(app)
    run_worker(app)
    assert gitlab.lists == 1
    assert event(app, SECRET) == 202
    run_worker(app)
    assert gitlab.lists == 2
    assert event(app, SECRET, "Push Hook") == 202
    run_worker(app)
    assert gitlab.lists == 2
    clock.advance(timedelta(seconds=60))
    run_worker(app)
    assert gitlab.lists == 3


@pytest.mark.parametrize("secret", ["wrong", SECRET[:-1], ""])
def test_a_wrong_secret_token_is_refused(
    app: Flask, clock: FixedClock, gitlab: fake.FakeGitLab, secret: str
) -> None:
    submit_package(app, clock, Path(app.instance_path).parent)
    run_worker(app)
    assert event(app, secret) == 401
    run_worker(app)
    assert gitlab.lists == 1


def test_an_unmatched_deployment_is_rejected_saying_so(
    app: Flask, clock: FixedClock, gitlab: fake.FakeGitLab
) -> None:
    gitlab.expect_approval(42)
    submit_package(app, clock, Path(app.instance_path).parent)
    gitlab.blocked.append(fake.deployment(42, sha="0" * 40, ref="main"))
    run_worker(app)
    run_worker(app)
    [rejection] = gitlab.approvals
    assert rejection["status"] == "rejected"
    assert "no package in review" in rejection["comment"]


def test_an_approval_answering_5xx_is_retried(
    app: Flask, clock: FixedClock, smtp: MailCatcher, gitlab: fake.FakeGitLab
) -> None:
    gitlab.expect_approval(41)
    gitlab.answers = [500]
    submit_package(app, clock, Path(app.instance_path).parent)
    gitlab.blocked.append(fake.deployment(41, sha=SHA, ref="v2.0.1"))
    run_worker(app)
    sign_every_emailed_link(app, smtp)
    assert run_worker(app).platform_calls.retried == 1
    clock.advance(timedelta(minutes=5))
    assert run_worker(app).platform_calls.sent == 1
    assert [a["status"] for a in gitlab.approvals] == ["approved"]


def test_two_workers_at_once_approve_once(
    app: Flask, clock: FixedClock, smtp: MailCatcher, gitlab: fake.FakeGitLab
) -> None:
    gitlab.expect_approval(41)
    submit_package(app, clock, Path(app.instance_path).parent)
    gitlab.blocked.append(fake.deployment(41, sha=SHA, ref="v2.0.1"))
    run_worker(app)
    sign_every_emailed_link(app, smtp)
    assert race(
        app, [lambda: run_worker(app, worker_id="one"), lambda: run_worker(app, worker_id="two")]
    ) == [None, None]
    run_worker(app)
    assert [a["status"] for a in gitlab.approvals] == ["approved"]
