"""Outbound webhooks against real receivers on loopback (pytest-httpserver): subscriptions from
the CLI and the admin page, each event queued once per change, Standard Webhooks signatures
checked with the library's own `Webhook.verify`, retries, dead letters and the SSRF guard."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from gatekeeper import metrics
from gatekeeper.cli import cli
from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent, OutboxMessage, WebhookDelivery, WebhookSubscription
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock, SystemClock
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.domain.finding import Report
from gatekeeper.notify import webhooks as delivery
from gatekeeper.notify.worker import DeliveryReport
from gatekeeper.runtime import runtime
from gatekeeper.services import findings, packages, reviews, signoffs, webhooks
from tests.conftest import REPO, dispose, make_app
from tests.functional.web_helpers import ADMIN, add_staff, fresh_csrf, sign_in
from tests.support.flows import KEY, MANAGER, decisions_for, prepare, submit

SECOND = timedelta(seconds=1)


@pytest.fixture
def now_clock() -> FixedClock:
    """Near the real time: `Webhook.verify` refuses timestamps more than 5 minutes away."""
    return FixedClock(SystemClock().now().replace(microsecond=0))


def hooks_app(database_url: str, tmp_path: Path, clock: FixedClock, **environ: str) -> Flask:
    return make_app(database_url, tmp_path / "instance", clock, **environ)


@pytest.fixture
def app(database_url: str, tmp_path: Path, now_clock: FixedClock) -> Iterator[Flask]:
    """Loopback receivers are allowed here, as GATEKEEPER_WEBHOOK_ALLOW_PRIVATE allows them."""
    app = hooks_app(database_url, tmp_path, now_clock, GATEKEEPER_WEBHOOK_ALLOW_PRIVATE="true")
    with app.app_context():
        yield app
    dispose(app)


def loopback(server: HTTPServer, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def subscribe(app: Flask, url: str, *events: str) -> tuple[int, str]:
    rt = runtime(app)
    with unit_of_work(db.session) as session:
        sub, secret = webhooks.add_subscription(
            session,
            url=url,
            events=events or webhooks.EVENTS,
            actor=ADMIN,
            clock=rt.clock,
            settings=rt.webhook_settings(),
        )
        return sub.id, secret


def deliver(app: Flask, **settings: Any) -> DeliveryReport:
    rt = runtime(app)
    hooks = rt.webhook_settings()
    if settings:
        hooks = delivery.WebhookSettings(**{**hooks.__dict__, **settings})
    report = delivery.deliver(db.session, worker="test", clock=rt.clock, settings=hooks)
    db.session.remove()
    return report


def hook_rows() -> list[OutboxMessage]:
    db.session.remove()
    rows = list(
        db.session.scalars(
            sa.select(OutboxMessage)
            .where(OutboxMessage.kind == "webhook")
            .order_by(OutboxMessage.id)
        )
    )
    db.session.expunge_all()
    return rows


def events_queued() -> list[tuple[str, dict[str, Any]]]:
    return [(r.template, json.loads(r.body_text)["data"]) for r in hook_rows()]


def sign_everything(app: Flask, tokens: dict[str, str], clock: FixedClock) -> str | None:
    """Every signer signs; the gate's digest just after it opened."""
    opened = None
    for token in tokens.values():
        submit(app, token, decisions_for(app, token, clock), clock)
        with unit_of_work(db.session) as session:
            gate = packages.evaluate_gate(session, KEY, clock=clock, overdue_policy="block")
        if gate.status == "open" and opened is None:
            opened = gate.digest
    return opened


def release(app: Flask, clock: FixedClock) -> str:
    """Release the package; the digest of the open gate it was released on."""
    with unit_of_work(db.session) as session:
        gate = packages.evaluate_gate(session, KEY, clock=clock, overdue_policy="block")
        assert gate.status == "open", gate.to_dict()
        packages.release_package(
            session, KEY, digest=gate.digest, actor=MANAGER, clock=clock, overdue_policy="block"
        )
        return gate.digest


def received(server: HTTPServer) -> list[tuple[Request, Response]]:
    return [(req, res) for req, res in server.log]


# --- events -----------------------------------------------------------------------------------


def test_every_event_is_posted_once_per_change_and_its_signature_verifies(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    _, secret = subscribe(app, loopback(httpserver))
    tokens = prepare(app, now_clock)
    assert [e for e, _ in events_queued()] == ["package.submitted"], (
        "a submitted package is waited on: its gate was and stays pending"
    )
    digest = sign_everything(app, tokens, now_clock)
    release(app, now_clock)
    with unit_of_work(db.session) as session:
        released = packages.get_package(session, KEY)
        findings.record_report(
            session,
            package=released,
            application="payments-api",
            reporter="settlement-lead@example.com",
            report=Report("Totals were off", "One day of reports", "A totals scenario"),
            settings=runtime(app).governance_settings(),
            clock=now_clock,
        )
    queued = events_queued()
    assert [e for e, _ in queued] == [
        "package.submitted",
        "gate.changed",
        "package.released",
        "finding.reported",
    ]
    changed = queued[1][1]
    assert changed == {
        "package": KEY,
        "revision": 1,
        "old_status": "pending",
        "new_status": "open",
        "digest": digest,
    }
    assert queued[3][1]["application"] == "payments-api"

    report = deliver(app)
    assert (report.sent, report.retried, report.dead) == (4, 0, 0)
    posts = received(httpserver)
    assert len(posts) == 4
    seen = []
    for request, _ in posts:
        body = request.get_data(as_text=True)
        headers = dict(request.headers)
        payload = Webhook(secret).verify(body, headers)
        seen.append(payload["type"])
        assert payload["timestamp"].endswith("Z")
        assert request.headers["Content-Type"] == "application/json"
        with pytest.raises(WebhookVerificationError):
            Webhook(delivery.new_secret()).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body.replace("}", " }", 1), headers)
    assert seen == [e for e, _ in queued]
    assert len({r.headers["webhook-id"] for r, _ in posts}) == 4
    assert {r.state for r in hook_rows()} == {"sent"}
    # Nothing left: a second pass posts nothing again.
    assert deliver(app).handled == 0
    assert len(received(httpserver)) == 4


def test_cancel_and_review_due_are_events_and_nobody_listening_queues_nothing(
    app: Flask, now_clock: FixedClock
) -> None:
    prepare(app, now_clock)
    assert hook_rows() == [], "no subscription, no rows"
    subscribe(app, "http://127.0.0.1:9/never", "package.cancelled", "gate.changed", "review.due")
    with unit_of_work(db.session) as session:
        signoffs.cancel_and_revoke(
            session, KEY, actor=MANAGER, clock=now_clock, overdue_policy="block"
        )
    queued = events_queued()
    assert [e for e, _ in queued] == ["package.cancelled", "gate.changed"]
    assert queued[0][1]["by"] == MANAGER
    assert queued[0][1]["state"] == "cancelled"
    assert queued[1][1]["old_status"] == "pending"
    assert queued[1][1]["new_status"] != "pending"
    # The sample checklist is reviewed every 90 days; the reminder (and its event) goes once.
    now_clock.advance(timedelta(days=89))
    for _ in range(2):
        with unit_of_work(db.session) as session:
            reviews.send_review_reminders(
                session, settings=runtime(app).governance_settings(), clock=now_clock
            )
    due = [d for e, d in events_queued() if e == "review.due"]
    assert [(d["application"], d["overdue"]) for d in due] == [("payments-api", False)]


# --- retries ------------------------------------------------------------------------------------


def test_a_receiver_answering_5xx_then_2xx_gets_the_same_webhook_id(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    httpserver.expect_ordered_request("/hook").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok", status=200)
    sub_id, secret = subscribe(app, loopback(httpserver), "package.submitted")
    prepare(app, now_clock)
    failures_before = webhook_failures_counted()
    first = deliver(app)
    assert (first.sent, first.retried) == (0, 1)
    assert webhook_failures_counted() == failures_before + 1, "operators see it in /metrics"
    (row,) = hook_rows()
    assert row.state == "queued"
    assert "HTTP 503: busy" in row.last_error
    assert now_clock.now() < row.next_attempt_at <= now_clock.now() + delivery.BACKOFF_BASE
    assert deliver(app).handled == 0, "not before its backoff"
    now_clock.advance(delivery.BACKOFF_BASE + SECOND)
    assert deliver(app).sent == 1
    ids = [r.headers["webhook-id"] for r, _ in received(httpserver)]
    assert len(ids) == 2
    assert ids[0] == ids[1] == row.webhook_id
    for request, _ in received(httpserver):
        Webhook(secret).verify(request.get_data(as_text=True), dict(request.headers))
    log = db.session.scalars(
        sa.select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub_id)
    ).all()
    assert [(d.status_code, d.webhook_id) for d in log] == [(503, ids[0]), (200, ids[0])]
    assert all(d.duration_ms >= 0 for d in log)


def webhook_failures_counted() -> float:
    counted = metrics._COUNTED.get_sample_value(
        "gatekeeper_outbound_failures_total", {"kind": "webhook"}
    )
    return counted or 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_receiver_that_is_down_then_up_gets_it_with_the_same_webhook_id(
    app: Flask, now_clock: FixedClock
) -> None:
    port = free_port()
    subscribe(app, f"http://127.0.0.1:{port}/hook", "package.submitted")
    prepare(app, now_clock)
    for _ in range(3):  # down for a while: connection refused, every time
        report = deliver(app)
        assert report.retried == 1, report.errors
        assert "ConnectionRefusedError" in report.errors[0]
        now_clock.advance(delivery.BACKOFF_MAX)
    server = HTTPServer(host="127.0.0.1", port=port)
    server.expect_request("/hook").respond_with_data("", status=202)
    server.start()
    try:
        assert deliver(app).sent == 1
        ((request, _),) = server.log
    finally:
        server.stop()
    (row,) = hook_rows()
    assert row.state == "sent"
    assert row.attempts == 4
    assert request.headers["webhook-id"] == row.webhook_id


def test_a_receiver_down_for_a_day_is_a_dead_letter_in_the_outbox(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("down", status=500)
    subscribe(app, loopback(httpserver), "package.submitted")
    prepare(app, now_clock)
    start = now_clock.now()
    tries = 0
    while True:
        report = deliver(app)
        tries += report.handled
        (row,) = hook_rows()
        if row.state == "dead":
            break
        assert row.state == "queued"
        assert row.next_attempt_at <= start + delivery.RETRY_BUDGET
        now_clock.set(row.next_attempt_at)
    assert now_clock.now() == start + delivery.RETRY_BUDGET, "the last try is at the deadline"
    assert tries == row.attempts == len(httpserver.log)
    assert 12 <= tries <= 40, tries
    assert "HTTP 500" in row.last_error
    # Visible where dead letters are: `gatekeeper outbox status` and /outbox/.
    out = app.test_cli_runner().invoke(cli, ["outbox", "status", "--json"])
    assert out.exit_code == 0, out.output
    dead = json.loads(out.output)["dead"]
    assert [(d["id"], d["kind"]) for d in dead] == [(row.id, "webhook")]
    add_staff(now_clock)
    page = sign_in(app, ADMIN).get("/outbox/")
    assert page.status_code == 200
    assert f'data-testid="dead-letter" data-id="{row.id}"' in page.text
    assert "package.submitted" in page.text
    # Queued again from the outbox, it gets another day.
    again = app.test_cli_runner().invoke(cli, ["outbox", "retry", str(row.id)])
    assert again.exit_code == 0, again.output
    assert deliver(app).retried == 1


# --- the SSRF guard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://10.1.2.3/hook", "10.1.2.3"),
        ("http://192.168.0.10/hook", "192.168.0.10"),
        ("http://172.16.5.5:8443/hook", "172.16.5.5"),
        ("http://127.0.0.1:8080/hook", "127.0.0.1"),
        ("http://localhost:8080/hook", "resolves to"),
        ("http://[::1]:8080/hook", "::1"),
        ("http://169.254.10.1/hook", "169.254.10.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254"),
        ("http://0.0.0.0/hook", "0.0.0.0"),  # noqa: S104  # a URL to refuse, not a bind
        ("ftp://hooks.example/hook", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://127.0.0.1:25/", "only http and https"),
        ("http://admin:pw@93.184.215.14/hook", "credentials"),
    ],
)
def test_private_loopback_link_local_and_metadata_receivers_are_refused(
    database_url: str, tmp_path: Path, url: str, why: str
) -> None:
    strict = hooks_app(database_url, tmp_path, FixedClock(datetime(2026, 12, 1, tzinfo=UTC)))
    with strict.app_context():
        with pytest.raises(ValidationFailed, match=why.replace("[", r"\[")):
            subscribe(strict, url)
        assert db.session.scalar(sa.select(sa.func.count(WebhookSubscription.id))) == 0
    dispose(strict)


def test_allowing_private_receivers_still_refuses_link_local_and_metadata() -> None:
    for address, allowed in [
        ("127.0.0.1", True),
        ("10.0.0.8", True),
        ("::1", True),
        ("8.8.8.8", True),
        ("169.254.169.254", False),
        ("169.254.1.1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),  # noqa: S104  # an address to refuse, not a bind
    ]:
        ip = ipaddress.ip_address(address)
        assert delivery.address_allowed(ip, allow_private=True) is allowed, address
        assert delivery.address_allowed(ip, allow_private=False) is (address == "8.8.8.8")


def test_the_address_is_checked_again_when_posting(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("", status=204)
    subscribe(app, loopback(httpserver), "package.submitted")
    prepare(app, now_clock)
    report = deliver(app, allow_private=False)
    assert (report.sent, report.dead) == (0, 1)
    assert httpserver.log == []
    (row,) = hook_rows()
    assert row.state == "dead"
    assert "refused" in row.last_error


def test_redirects_are_not_followed(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_response(
        Response("", status=307, headers={"Location": loopback(httpserver, "/elsewhere")})
    )
    httpserver.expect_request("/elsewhere").respond_with_data("", status=200)
    subscribe(app, loopback(httpserver), "package.submitted")
    prepare(app, now_clock)
    report = deliver(app)
    assert (report.sent, report.retried) == (0, 1)
    assert [r.path for r, _ in httpserver.log] == ["/hook"]
    (row,) = hook_rows()
    assert "HTTP 307: redirects are not followed" in row.last_error


# --- managing subscriptions ---------------------------------------------------------------------


def test_cli_adds_lists_rotates_and_removes_and_shows_each_secret_once(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    runner = app.test_cli_runner()
    url = loopback(httpserver)
    added = runner.invoke(
        cli, ["webhooks", "add", "--url", url, "--event", "gate.changed", "--event", "review.due"]
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    assert "not shown again" in added.stderr
    (stored,) = db.session.scalars(sa.select(WebhookSubscription)).all()
    assert secret not in stored.secret_sealed, "the secret is sealed at rest"
    assert delivery.unseal(stored.secret_sealed, runtime(app).settings.secret_keys) == secret
    listed = runner.invoke(cli, ["webhooks", "list", "--json"])
    assert listed.exit_code == 0
    (row,) = json.loads(listed.output)
    assert (row["url"], row["events"]) == (url, ["gate.changed", "review.due"])
    assert secret not in listed.output
    rotated = runner.invoke(cli, ["webhooks", "rotate-secret", str(row["id"])])
    assert rotated.exit_code == 0, rotated.output
    new_secret = rotated.stdout.strip()
    assert new_secret.startswith("whsec_")
    assert new_secret != secret
    assert secret not in runner.invoke(cli, ["webhooks", "list"]).output
    bad = runner.invoke(cli, ["webhooks", "add", "--url", url, "--event", "gate.opened"])
    assert bad.exit_code != 0
    refused = runner.invoke(
        cli, ["webhooks", "add", "--url", "http://169.254.169.254/", "--event", "gate.changed"]
    )
    assert refused.exit_code != 0
    assert "169.254.169.254" in refused.output
    removed = runner.invoke(cli, ["webhooks", "remove", str(row["id"])])
    assert removed.exit_code == 0, removed.output
    assert runner.invoke(cli, ["webhooks", "list"]).output.strip() == "no webhook subscriptions"
    missing = runner.invoke(cli, ["webhooks", "remove", str(row["id"])])
    assert missing.exit_code != 0
    actions = db.session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.action.like("webhook.%"))
    ).all()
    assert actions == ["webhook.added", "webhook.secret_rotated", "webhook.removed"]


def test_a_removed_subscription_gets_nothing_more(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    sub_id, _ = subscribe(app, loopback(httpserver), "package.submitted")
    prepare(app, now_clock)
    with unit_of_work(db.session) as session:
        webhooks.remove_subscription(session, sub_id, actor=ADMIN, clock=now_clock)
    assert hook_rows() == []
    assert deliver(app).handled == 0
    assert httpserver.log == []


def test_the_admin_page_adds_rotates_shows_deliveries_and_removes(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("", status=204)
    add_staff(now_clock)
    browser = sign_in(app, ADMIN)
    assert browser.get("/webhooks/").status_code == 200
    no_csrf = browser.post(
        "/webhooks/", data={"url": loopback(httpserver), "events": "gate.changed"}
    )
    assert no_csrf.status_code == 400
    assert db.session.scalar(sa.select(sa.func.count(WebhookSubscription.id))) == 0
    made = browser.post(
        "/webhooks/",
        data={
            "csrf_token": fresh_csrf(browser),
            "url": loopback(httpserver),
            "events": ["package.submitted", "gate.changed"],
        },
    )
    assert made.status_code == 201, made.text
    assert made.headers["Cache-Control"] == "no-store"
    secret = made.text.split('data-testid="webhook-secret">', 1)[1].split("<", 1)[0]
    assert secret.startswith("whsec_")
    (sub,) = db.session.scalars(sa.select(WebhookSubscription)).all()
    db.session.remove()
    listing = browser.get("/webhooks/")
    assert secret not in listing.text
    assert f'data-id="{sub.id}"' in listing.text
    refused = browser.post(
        "/webhooks/",
        data={
            "csrf_token": fresh_csrf(browser),
            "url": "http://169.254.169.254/",
            "events": "review.due",
        },
    )
    assert refused.status_code == 422
    assert "169.254.169.254" in refused.text
    assert db.session.scalar(sa.select(sa.func.count(WebhookSubscription.id))) == 1
    db.session.remove()

    prepare(app, now_clock)
    deliver(app)
    (request, _), *_ = httpserver.log
    Webhook(secret).verify(request.get_data(as_text=True), dict(request.headers))
    log = browser.get(f"/webhooks/{sub.id}/")
    assert log.status_code == 200
    assert request.headers["webhook-id"] in log.text
    assert "HTTP 204" in log.text

    rotated = browser.post(f"/webhooks/{sub.id}/rotate", data={"csrf_token": fresh_csrf(browser)})
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    new_secret = rotated.text.split('data-testid="webhook-secret">', 1)[1].split("<", 1)[0]
    assert new_secret != secret
    gone = browser.post(f"/webhooks/{sub.id}/remove", data={"csrf_token": fresh_csrf(browser)})
    assert gone.status_code == 302
    assert browser.get(f"/webhooks/{sub.id}/").status_code == 404


def test_a_review_that_lifts_an_overdue_block_is_a_gate_change(
    app: Flask, now_clock: FixedClock
) -> None:
    subscribe(app, "http://127.0.0.1:9/never", "gate.changed")
    prepare(app, now_clock)
    assert events_queued() == [], "submitted, the gate was pending and stays pending"
    now_clock.advance(timedelta(days=91))  # payments-api's review (every 90 days) is overdue
    with unit_of_work(db.session) as session:
        gate = packages.evaluate_gate(session, KEY, clock=now_clock, overdue_policy="block")
        assert gate.status == "blocked"
        reviews.record_review(
            session,
            application="payments-api",
            version=7,
            action="approve",
            reviewer="release-board@example.com",
            consulted="the key users",
            clock=now_clock,
            overdue_policy="block",
        )
    ((event, data),) = events_queued()
    assert (event, data["package"], data["old_status"], data["new_status"]) == (
        "gate.changed",
        KEY,
        "blocked",
        "pending",
    )


def test_the_documented_receiver_verifies_a_real_post_and_drops_a_duplicate(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("", status=204)
    _, secret = subscribe(app, loopback(httpserver), "package.submitted")
    prepare(app, now_clock)
    deliver(app)
    ((request, _),) = httpserver.log
    doc = (REPO / "docs" / "webhooks.md").read_text()
    example = doc.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"__name__": "docs_receiver"}
    exec(example.replace('"whsec_…"', repr(secret)), namespace)  # noqa: S102  # our own docs
    receiver = namespace["app"].test_client()
    body, headers = request.get_data(), dict(request.headers)
    headers.pop("Content-Length", None)
    assert receiver.post("/gatekeeper", data=body, headers=headers).status_code == 204
    assert namespace["seen"] == {request.headers["webhook-id"]}
    assert receiver.post("/gatekeeper", data=body, headers=headers).status_code == 204
    assert len(namespace["seen"]) == 1
    forged = receiver.post("/gatekeeper", data=body + b" ", headers=headers)
    assert forged.status_code == 400


def test_gatekeeper_worker_posts_the_webhooks_that_are_due(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data("", status=204)
    subscribe(app, loopback(httpserver), "package.submitted")
    prepare(app, now_clock)
    db.session.remove()
    result = app.test_cli_runner().invoke(cli, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "webhooks delivered 1, retrying 0, dead 0" in result.stdout
    assert len(httpserver.log) == 1
    assert [r.state for r in hook_rows()] == ["sent"]


def test_the_post_goes_to_the_checked_address_whatever_the_name_resolves_to_next(
    app: Flask, now_clock: FixedClock, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that answers loopback when checked and something else after."""
    httpserver.expect_request("/hook").respond_with_data("", status=204)
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1", "10.255.255.1"])

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.test":
            return real(next(answers, "10.255.255.1"), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    url = f"http://rebind.test:{httpserver.port}/hook"
    with unit_of_work(db.session) as session:
        sub = WebhookSubscription(
            url=url,
            events=["package.submitted"],
            secret_sealed=delivery.seal(delivery.new_secret(), runtime(app).settings.secret_keys),
            created_by=ADMIN,
            created_at=now_clock.now(),
        )
        session.add(sub)
    prepare(app, now_clock)
    assert deliver(app, timeout=2.0).sent == 1
    ((request, _),) = httpserver.log
    assert request.headers["Host"] == f"rebind.test:{httpserver.port}"
    assert next(answers, None) == "10.255.255.1", "the name was resolved once, when checked"


def test_a_receiver_trickling_its_answer_is_cut_off(app: Flask, now_clock: FixedClock) -> None:
    """Each byte comes within the timeout; the whole answer would not."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.25):
                    return
                conn.sendall(bytes([byte]))

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    subscribe(app, f"http://127.0.0.1:{listener.getsockname()[1]}/hook", "package.submitted")
    prepare(app, now_clock)
    started = time.monotonic()
    try:
        report = deliver(app, timeout=0.5)
    finally:
        stop.set()
        server.join(5)
        listener.close()
    assert time.monotonic() - started < 3, "cut off after 3 timeouts, not the 10 s of bytes"
    assert report.retried == 1
    assert "took longer than 1.5 s" in report.errors[0]


def test_an_edit_that_reopens_sign_off_is_one_gate_change_and_a_title_edit_none(
    app: Flask, now_clock: FixedClock
) -> None:
    tokens = prepare(app, now_clock)
    sign_everything(app, tokens, now_clock)
    subscribe(app, "http://127.0.0.1:9/never", "gate.changed")
    links = runtime(app).link_settings()
    with unit_of_work(db.session) as session:
        signoffs.edit_and_reissue(
            session,
            KEY,
            packages.PackageChanges(title="Renamed"),
            actor=MANAGER,
            clock=now_clock,
            links=links,
        )
    assert events_queued() == [], "the title is not signed: the gate stays open"
    with unit_of_work(db.session) as session:
        signoffs.edit_and_reissue(
            session,
            KEY,
            packages.PackageChanges(applications=(packages.ApplicationSpec("payments-api", "2"),)),
            actor=MANAGER,
            clock=now_clock,
            links=links,
        )
    ((event, data),) = events_queued()
    assert (event, data["old_status"], data["new_status"], data["revision"]) == (
        "gate.changed",
        "open",
        "pending",
        2,
    )
