"""GitHub custom deployment protection rules against a fake GitHub on loopback
(pytest-httpserver, shapes in tests/contracts/github.py): the signed webhook is recorded, the
worker reports who is waited on, key users sign through emailed links (real SMTP), and GitHub
receives exactly one decision."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from pytest_httpserver import HTTPServer

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, PlatformDeployment
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock, SystemClock
from gatekeeper.notify import platforms
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.services import packages
from tests.conftest import dispose, make_app
from tests.contracts import github as fake
from tests.support.flows import race
from tests.support.link_forms import sign_link
from tests.support.mail import ANY_LINK, run_worker
from tests.support.platform_loop import (
    deployments,
    platform_calls,
    sign_every_emailed_link,
    submit_targeted,
)

SECRET = "github-webhook-secret-0123456789"
KEY = "2026.12-payments"
MANAGER = "release-manager@example.com"
SHA = "9fceb02d0ae598e95dc970b74767f19372d61af8"


@pytest.fixture
def clock() -> FixedClock:
    """Near the real time: the fake checks the App JWT against its own clock."""
    return FixedClock(SystemClock().now().replace(microsecond=0))


@pytest.fixture
def key() -> tuple[str, object]:
    return fake.private_key_pem()


@pytest.fixture
def app(
    database_url: str,
    tmp_path: Path,
    clock: FixedClock,
    httpserver: HTTPServer,
    key: tuple[str, object],
) -> Iterator[Flask]:
    pem = tmp_path / "app.pem"
    pem.write_text(key[0])
    app = make_app(
        database_url,
        tmp_path / "instance",
        clock,
        GATEKEEPER_GITHUB_APP_ID=fake.APP_ID,
        GATEKEEPER_GITHUB_PRIVATE_KEY_FILE=str(pem),
        GATEKEEPER_GITHUB_WEBHOOK_SECRET=SECRET,
        GATEKEEPER_GITHUB_API_URL=httpserver.url_for("").rstrip("/"),
    )
    platforms.TOKENS.forget(fake.INSTALLATION)
    with app.app_context():
        yield app
    dispose(app)
    platforms.TOKENS.forget(fake.INSTALLATION)


@pytest.fixture
def github(httpserver: HTTPServer, key: tuple[str, object], clock: FixedClock) -> fake.FakeGitHub:
    return fake.FakeGitHub(httpserver, key[1], clock.now)


def submit_package(
    app: Flask, clock: FixedClock, tmp_path: Path, *versions: tuple[str, str]
) -> None:
    """Packages in review shipping payments-api at each (key, version); its checklist declares
    the GitHub environment as its target."""
    target = f"github: {{repository: {fake.REPOSITORY}, environment: {fake.ENVIRONMENT}}}"
    submit_targeted(app, clock, tmp_path, target, *(versions or ((KEY, "v1.4.2"),)))


def send(
    app: Flask, payload: dict[str, object], *, secret: str = SECRET, body: bytes | None = None
) -> tuple[int, dict[str, object]]:
    raw = fake.body_of(payload)
    headers = fake.signed(raw, secret)
    answer = app.test_client().post(
        "/integrations/github/webhook", data=body or raw, headers=headers
    )
    db.session.remove()
    return answer.status_code, answer.get_json(silent=True) or {}


def test_full_loop_github_waits_key_users_sign_by_email_and_github_gets_one_approval(
    app: Flask,
    clock: FixedClock,
    smtp: MailCatcher,
    httpserver: HTTPServer,
    github: fake.FakeGitHub,
) -> None:
    github.expect_run(7)
    submit_package(app, clock, tmp_path=Path(app.instance_path).parent)
    status, answer = send(
        app, fake.requested(httpserver.url_for("").rstrip("/"), run=7, sha=SHA, ref="v1.4.2")
    )
    assert (status, answer["state"]) == (202, "waiting")
    run_worker(app)
    [pending] = github.reports()
    assert pending["environment_name"] == fake.ENVIRONMENT
    assert "waiting on" in pending["comment"]
    assert f"/packages/{KEY}" in pending["comment"]
    assert github.decisions() == []

    assert sign_every_emailed_link(app, smtp) >= 2
    run_worker(app)
    run_worker(app, worker_id="another")
    [approval] = github.decisions()
    assert approval["state"] == "approved"
    assert "gate open" in approval["comment"]
    assert github.tokens_issued == ["ghs_1"], "the installation token is kept while it lasts"
    assert [d.state for d in deployments()] == ["approved"]
    assert {c.state for c in platform_calls()} <= {"sent", "moot"}
    logged = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.like("deployment.%"))
    ).all()
    assert logged == ["deployment.approved"]
    # GitHub redelivering the same webhook is the same wait: nothing new is posted.
    send(app, fake.requested(httpserver.url_for("").rstrip("/"), run=7, sha=SHA, ref="v1.4.2"))
    run_worker(app)
    assert len(github.decisions()) == 1


@pytest.mark.parametrize("secret", ["wrong-secret", SECRET[:-1], ""])
def test_a_bad_signature_is_refused_and_nothing_recorded(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, secret: str
) -> None:
    submit_package(app, clock, tmp_path=Path(app.instance_path).parent)
    payload = fake.requested(httpserver.url_for("").rstrip("/"), run=7, sha=SHA, ref="v1.4.2")
    assert send(app, payload, secret=secret)[0] == 401
    tampered = fake.body_of({**payload, "environment": "staging"})
    assert send(app, payload, body=tampered)[0] == 401
    assert deployments() == []


def test_a_callback_off_the_configured_api_is_refused(
    app: Flask, clock: FixedClock, httpserver: HTTPServer
) -> None:
    payload = fake.requested("https://evil.example", run=7, sha=SHA)
    assert send(app, payload)[0] == 422
    assert deployments() == []


def test_an_unmapped_repository_is_rejected_saying_so(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, github: fake.FakeGitHub
) -> None:
    github.expect_run(8, "acme/other")
    submit_package(app, clock, tmp_path=Path(app.instance_path).parent)
    payload = fake.requested(
        httpserver.url_for("").rstrip("/"), run=8, sha=SHA, ref="v1.4.2", repository="acme/other"
    )
    assert send(app, payload)[1]["state"] == "rejected"
    run_worker(app)
    [rejection] = github.decisions()
    assert rejection["state"] == "rejected"
    assert "no package in review" in rejection["comment"]
    assert github.reports() == []


def test_a_sha_matching_two_packages_is_rejected_naming_both(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, github: fake.FakeGitHub
) -> None:
    github.expect_run(9)
    submit_package(
        app, clock, Path(app.instance_path).parent, ("rel-a", SHA[:7]), ("rel-b", SHA[:10])
    )
    assert (
        send(app, fake.requested(httpserver.url_for("").rstrip("/"), run=9, sha=SHA))[1]["state"]
        == "rejected"
    )
    run_worker(app)
    [rejection] = github.decisions()
    assert "rel-a" in rejection["comment"]
    assert "rel-b" in rejection["comment"]


def test_a_sha_prefix_of_seven_hex_digits_names_the_package(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, github: fake.FakeGitHub
) -> None:
    github.expect_run(10)
    submit_package(
        app, clock, Path(app.instance_path).parent, ("rel-a", SHA[:7]), ("rel-b", SHA[:6])
    )
    assert (
        send(app, fake.requested(httpserver.url_for("").rstrip("/"), run=10, sha=SHA))[1]["state"]
        == "waiting"
    )
    with unit_of_work(db.session) as session:
        assert (
            session.scalar(sa.select(PlatformDeployment.package_id))
            == packages.get_package(session, "rel-a").id
        )


def test_a_callback_answering_5xx_is_retried_until_it_answers_204(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, github: fake.FakeGitHub
) -> None:
    github.expect_run(7)
    github.answers = [502, 503]
    submit_package(app, clock, tmp_path=Path(app.instance_path).parent)
    send(app, fake.requested(httpserver.url_for("").rstrip("/"), run=7, sha=SHA, ref="v1.4.2"))
    assert run_worker(app).platform_calls.retried == 1
    assert github.reports() == []
    clock.advance(timedelta(minutes=5))
    assert run_worker(app).platform_calls.retried == 1
    clock.advance(timedelta(minutes=5))
    assert run_worker(app).platform_calls.sent == 1
    [report] = github.reports()
    assert "waiting on" in report["comment"]
    [row] = platform_calls()
    assert (row.state, row.attempts) == ("sent", 3)


def test_a_token_expiring_mid_wait_is_renewed_and_a_refused_one_replaced(
    app: Flask,
    clock: FixedClock,
    smtp: MailCatcher,
    httpserver: HTTPServer,
    github: fake.FakeGitHub,
) -> None:
    github.expect_run(7)
    github.token_lifetime_s = 600
    submit_package(app, clock, tmp_path=Path(app.instance_path).parent)
    send(app, fake.requested(httpserver.url_for("").rstrip("/"), run=7, sha=SHA, ref="v1.4.2"))
    run_worker(app)
    assert github.tokens_issued == ["ghs_1"]
    clock.advance(timedelta(minutes=10))
    github.refuse_tokens.add("ghs_2")  # revoked as soon as issued: a 401, then one more token
    sign_every_emailed_link(app, smtp)
    run_worker(app)
    assert github.tokens_issued == ["ghs_1", "ghs_2", "ghs_3"]
    [approval] = github.decisions()
    assert approval["state"] == "approved"


def test_never_more_than_ten_reports_and_only_when_something_changed(
    app: Flask, clock: FixedClock, httpserver: HTTPServer, github: fake.FakeGitHub
) -> None:
    github.expect_run(7)
    submit_package(app, clock, tmp_path=Path(app.instance_path).parent)
    send(app, fake.requested(httpserver.url_for("").rstrip("/"), run=7, sha=SHA, ref="v1.4.2"))
    run_worker(app)
    run_worker(app)
    assert len(github.reports()) == 1, "nothing changed: no second report"
    for _ in range(15):
        # What GitHub was last told is forgotten: each pass has something new to say.
        with unit_of_work(db.session) as session:
            session.execute(sa.update(PlatformDeployment).values(last_report="earlier"))
        run_worker(app)
    assert len(github.reports()) == 10
    assert deployments()[0].reports == 10


def test_two_workers_at_once_approve_once(
    app: Flask,
    clock: FixedClock,
    smtp: MailCatcher,
    httpserver: HTTPServer,
    github: fake.FakeGitHub,
) -> None:
    github.expect_run(7)
    submit_package(app, clock, tmp_path=Path(app.instance_path).parent)
    send(app, fake.requested(httpserver.url_for("").rstrip("/"), run=7, sha=SHA, ref="v1.4.2"))
    run_worker(app)
    sign_every_emailed_link(app, smtp)
    results = race(
        app, [lambda: run_worker(app, worker_id="one"), lambda: run_worker(app, worker_id="two")]
    )
    assert results == [None, None]
    run_worker(app)
    assert [d["state"] for d in github.decisions()] == ["approved"]
    assert [d.state for d in deployments()] == ["approved"]


def test_a_gate_that_moves_several_times_is_reported_each_time_and_approved_once(
    app: Flask,
    clock: FixedClock,
    smtp: MailCatcher,
    httpserver: HTTPServer,
    github: fake.FakeGitHub,
) -> None:
    github.expect_run(7)
    submit_package(app, clock, tmp_path=Path(app.instance_path).parent)
    send(app, fake.requested(httpserver.url_for("").rstrip("/"), run=7, sha=SHA, ref="v1.4.2"))
    run_worker(app)
    links = sorted(
        {
            m.group(0)
            for message in smtp.messages()
            for m in ANY_LINK.finditer(message.text)
            if m.group(1) == "s"
        }
    )
    assert len(links) >= 2
    browser = app.test_client()
    passes = 0
    for link in links:
        if github.decisions():
            break
        sign_link(browser, link.removeprefix("http://127.0.0.1:5000"))
        db.session.remove()
        run_worker(app)
        passes += 1
    assert passes >= 2
    reports = [r["comment"] for r in github.reports()]
    # The first report, then one per pass that changed who is waited on, none once it opened.
    assert 3 <= len(reports) <= passes
    assert len(set(reports)) == len(reports)
    assert [d["state"] for d in github.decisions()] == ["approved"]
