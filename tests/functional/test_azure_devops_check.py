"""The Azure DevOps "Invoke REST API" check in callback mode, against a fake Azure DevOps on
loopback (pytest-httpserver, shapes in tests/contracts/azure_devops.py): the check is recorded
and answered at once, key users sign through emailed links (real SMTP), and the worker calls
Azure DevOps back exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from pytest_httpserver import HTTPServer
from werkzeug import Response

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.runtime import runtime
from gatekeeper.services import packages, signoffs
from tests.conftest import START, dispose, make_app
from tests.contracts import azure_devops as fake
from tests.support.flows import approve_payments, race
from tests.support.governance import sign_everything
from tests.support.mail import run_worker
from tests.support.platform_loop import (
    deployments,
    platform_calls,
    sign_every_emailed_link,
    submit_targeted,
)

SECRET = "azure-shared-secret-0123456789"
KEY = "2026.12-azure"
MANAGER = "release-manager@example.com"
ORG = "/acme/"
PLAN = "2f0d1c3b-9a8e-4f7d-b6c5-a4b3c2d1e0f9"
TASK = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: FixedClock) -> Iterator[Flask]:
    """The fake Azure DevOps listens on loopback, which GATEKEEPER_WEBHOOK_ALLOW_PRIVATE allows."""
    app = make_app(
        database_url,
        tmp_path / "instance",
        clock,
        GATEKEEPER_AZURE_DEVOPS_SECRET=SECRET,
        GATEKEEPER_WEBHOOK_ALLOW_PRIVATE="true",
    )
    with app.app_context():
        yield app
    dispose(app)


def submit_package(app: Flask, clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        approve_payments(session, clock)
        packages.create_package(
            session,
            packages.PackageSpec(
                KEY, "Azure", "production", None, (packages.ApplicationSpec("payments-api", "7"),)
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(
            session, KEY, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )


def send_check(
    app: Flask,
    server: HTTPServer,
    body: object,
    *,
    secret: str | None = SECRET,
    task: str = TASK,
    drop: str | None = None,
) -> tuple[int, dict[str, object], float]:
    """Azure DevOps calling the check: (status, JSON answer, seconds it took)."""
    headers = fake.check_headers(
        server.url_for(ORG), plan_id=PLAN, task_instance_id=task, secret=secret
    )
    if drop:
        headers.pop(drop)
    started = time.monotonic()
    answer = app.test_client().post("/integrations/azure-devops/check", json=body, headers=headers)
    took = time.monotonic() - started
    db.session.remove()
    return answer.status_code, answer.get_json(silent=True) or {}, took


def callbacks(server: HTTPServer) -> list[dict[str, object]]:
    return [req.get_json() for req, _ in server.log if "/_apis/distributedtask/" in req.path]


def test_full_loop_check_waits_key_users_sign_by_email_and_azure_gets_one_callback(
    app: Flask, clock: FixedClock, smtp: MailCatcher, httpserver: HTTPServer
) -> None:
    fake.expect_task_completed(httpserver, ORG, PLAN, TASK, "succeeded")
    submit_package(app, clock)
    status, answer, took = send_check(app, httpserver, {"package": KEY})
    assert (status, answer.get("state")) == (200, "waiting"), answer
    assert took < 3, "Azure DevOps waits 3 seconds for the check's answer"
    run_worker(app)
    assert callbacks(httpserver) == []
    assert [d.state for d in deployments()] == ["waiting"]

    assert sign_every_emailed_link(app, smtp) >= 2
    with unit_of_work(db.session) as session:
        assert packages.evaluate_gate(session, KEY, clock=clock, overdue_policy="block").status == (
            "open"
        )
    run_worker(app)
    run_worker(app, worker_id="another")
    assert callbacks(httpserver) == [fake.task_completed(TASK, "succeeded")]
    httpserver.check_assertions()
    assert [(d.state, d.package_id is not None) for d in deployments()] == [("approved", True)]
    assert [c.state for c in platform_calls()] == ["sent"]
    logged = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.like("deployment.%"))
    ).all()
    assert logged == ["deployment.approved"]


def test_a_redelivered_check_is_the_same_wait(
    app: Flask, clock: FixedClock, httpserver: HTTPServer
) -> None:
    submit_package(app, clock)
    first = send_check(app, httpserver, {"package": KEY})
    again = send_check(app, httpserver, {"package": KEY})
    assert first[0] == again[0] == 200
    assert first[1]["deployment"] == again[1]["deployment"]
    assert len(deployments()) == 1


@pytest.mark.parametrize(
    ("secret", "expected"),
    [(None, 401), ("wrong-secret", 401), (SECRET[:-1], 401), (SECRET + "x", 401)],
)
def test_a_wrong_or_missing_secret_is_refused_and_nothing_recorded(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, secret: str | None, expected: int
) -> None:
    submit_package(app, clock)
    status, _, _ = send_check(app, httpserver, {"package": KEY}, secret=secret)
    assert status == expected
    assert deployments() == []


def test_a_check_without_its_headers_or_package_is_refused(
    app: Flask, clock: FixedClock, httpserver: HTTPServer
) -> None:
    submit_package(app, clock)
    status, answer, _ = send_check(app, httpserver, {"package": KEY}, drop="AuthToken")
    assert (status, answer["error"]) == (400, "missing headers: AuthToken")
    status, _, _ = send_check(app, httpserver, {"environment": "production"})
    assert status == 400
    assert deployments() == []


def test_the_check_is_off_without_its_secret(
    database_url: str, tmp_path: Path, clock: FixedClock, httpserver: HTTPServer
) -> None:
    app = make_app(database_url, tmp_path / "off", clock)
    try:
        with app.app_context():
            status, _, _ = send_check(app, httpserver, {"package": KEY})
            assert status == 404
    finally:
        dispose(app)


def test_an_unknown_package_fails_the_check_once(
    app: Flask, clock: FixedClock, httpserver: HTTPServer
) -> None:
    fake.expect_task_completed(httpserver, ORG, PLAN, TASK, "failed")
    status, answer, _ = send_check(app, httpserver, {"package": "no-such-package"})
    assert (status, answer["state"]) == (200, "rejected")
    run_worker(app)
    run_worker(app)
    assert callbacks(httpserver) == [fake.task_completed(TASK, "failed")]


def test_a_callback_answering_5xx_is_retried_until_azure_takes_it(
    app: Flask, clock: FixedClock, httpserver: HTTPServer
) -> None:
    path = fake.events_path(ORG, PLAN)
    httpserver.expect_ordered_request(path, method="POST").respond_with_response(
        Response("busy", status=503)
    )
    httpserver.expect_ordered_request(path, method="POST").respond_with_response(
        Response(status=200)
    )
    send_check(app, httpserver, {"package": "no-such-package"})
    run_worker(app)
    assert [c.state for c in platform_calls()] == ["queued"]
    assert "HTTP 503" in platform_calls()[0].last_error
    run_worker(app)
    assert len(callbacks(httpserver)) == 1, "nothing is posted again before the backoff"
    clock.advance(timedelta(hours=2))
    run_worker(app)
    assert len(callbacks(httpserver)) == 2
    assert [(c.state, c.attempts) for c in platform_calls()] == [("sent", 2)]


def test_a_plan_url_inside_the_network_is_refused_unless_allowed(
    database_url: str, tmp_path: Path, clock: FixedClock, httpserver: HTTPServer
) -> None:
    """The job token goes only where the SSRF guard lets webhooks go: not to loopback here."""
    app = make_app(database_url, tmp_path / "strict", clock, GATEKEEPER_AZURE_DEVOPS_SECRET=SECRET)
    try:
        with app.app_context():
            send_check(app, httpserver, {"package": "no-such-package"})
            run_worker(app)
            assert callbacks(httpserver) == []
            [call] = platform_calls()
            assert call.state != "sent"
            assert call.last_error.startswith("refused: ")
    finally:
        dispose(app)


def test_two_workers_at_once_call_azure_back_once(
    app: Flask, clock: FixedClock, smtp: MailCatcher, httpserver: HTTPServer
) -> None:
    fake.expect_task_completed(httpserver, ORG, PLAN, TASK, "succeeded")
    submit_package(app, clock)
    send_check(app, httpserver, {"package": KEY})
    run_worker(app)
    sign_every_emailed_link(app, smtp)
    outcomes = race(app, [partial(run_worker, app, worker_id=f"w{i}") for i in (1, 2)])
    assert outcomes == [None, None]
    assert callbacks(httpserver) == [fake.task_completed(TASK, "succeeded")]
    assert [d.state for d in deployments()] == ["approved"]
    assert [c.state for c in platform_calls()] == ["sent"]


AZURE_PROJECT = "Fabrikam Payments"
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"
AZURE_TARGET = f"azure_devops: {{project: {AZURE_PROJECT}, environment: production}}"


def test_a_check_naming_a_deploy_target_waits_on_the_package_shipping_that_commit(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, tmp_path: Path
) -> None:
    fake.expect_task_completed(httpserver, ORG, PLAN, TASK, "succeeded")
    submit_targeted(app, clock, tmp_path, AZURE_TARGET, (KEY, SHA[:9]))
    target = {"project": AZURE_PROJECT, "environment": "production", "sha": SHA}
    status, answer, _ = send_check(app, httpserver, target)
    assert (status, answer["state"], answer["package"]) == (200, "waiting", KEY), answer
    run_worker(app)
    assert callbacks(httpserver) == []
    sign_everything(clock, KEY)
    run_worker(app)
    assert callbacks(httpserver) == [fake.task_completed(TASK, "succeeded")]
    assert [(d.state, d.project, d.sha) for d in deployments()] == [
        ("approved", AZURE_PROJECT, SHA)
    ]


@pytest.mark.parametrize(
    "target",
    [
        {"project": AZURE_PROJECT, "environment": "production", "sha": "0" * 40},
        {"project": "Another Project", "environment": "production", "sha": SHA},
        {"project": AZURE_PROJECT, "environment": "staging", "sha": SHA},
    ],
    ids=["other-commit", "other-project", "other-environment"],
)
def test_a_deploy_target_no_package_ships_fails_the_check_saying_so(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, tmp_path: Path, target: dict[str, str]
) -> None:
    fake.expect_task_completed(httpserver, ORG, PLAN, TASK, "failed")
    submit_targeted(app, clock, tmp_path, AZURE_TARGET, (KEY, SHA[:9]))
    status, answer, _ = send_check(app, httpserver, target)
    assert (status, answer["state"], answer["package"]) == (200, "rejected", None), answer
    [deployment] = deployments()
    assert "no package" in deployment.comment.lower(), deployment.comment
    run_worker(app)
    assert callbacks(httpserver) == [fake.task_completed(TASK, "failed")]


def test_a_deploy_target_needs_its_project_environment_and_commit(
    app: Flask, clock: FixedClock, httpserver: HTTPServer
) -> None:
    for body in (
        {"project": AZURE_PROJECT, "environment": "production"},
        {"project": AZURE_PROJECT, "sha": SHA},
        {"environment": "production", "ref": "v1"},
    ):
        status, answer, _ = send_check(app, httpserver, body)
        assert status == 400, body
        assert "deploy target" in answer["error"]
    assert deployments() == []
