"""Sign-off by emailed link, end to end: real SMTP on loopback, the link followed in the client."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage, Signoff, SignoffLink
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.runtime import runtime
from gatekeeper.services import packages, signoffs
from gatekeeper.signing import TokenService
from tests.conftest import TEST_KEY
from tests.support.flows import approve_payments
from tests.support.mail import link_in, messages_to, run_worker

KEY = "2026.11-r3"
MANAGER = "release-manager@example.com"
ENGINEER = "raj@example.com"  # in two groups of payments-api: several items, one email
KEY_USER = "settlement-lead@example.com"
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def submitted(app: Flask, smtp: MailCatcher, clock: FixedClock) -> None:
    with unit_of_work(db.session) as session:
        approve_payments(session, clock)
        packages.create_package(
            session,
            packages.PackageSpec(
                key=KEY,
                title="Refunds queue <b>now</b>",
                environment="production",
                planned_for=None,
                applications=(
                    packages.ApplicationSpec("payments-api", "7.4.0", "Refunds go through a queue"),
                ),
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(
            session, KEY, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )
    report = run_worker(app)
    assert report.delivery.sent > 0


def path_of(url: str) -> str:
    assert url.startswith("http://127.0.0.1:5000/s/")
    return urlsplit(url).path


def engineer_link(smtp: MailCatcher, who: str = ENGINEER) -> str:
    """The link in the newest sign-off email to `who`."""
    mails = [m for m in messages_to(smtp, who) if "Sign-off needed" in m.subject]
    return path_of(link_in(mails[0]))


def csrf(page: str) -> str:
    found = CSRF.search(page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def request_ids(page: str) -> list[str]:
    return sorted(set(re.findall(r'name="(r\d+)-decision"', page)))


def pass_everything(
    client: FlaskClient, path: str, *, evidence: str = "https://ci.example.com/1"
) -> int:
    page = client.get(path)
    assert page.status_code == 200, page.text
    form = {"csrf_token": csrf(page.text)}
    for prefix in request_ids(page.text):
        form[f"{prefix}-decision"] = "pass"
        form[f"{prefix}-evidence"] = evidence
    return client.post(path, data=form).status_code


def count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def gate_status(clock: FixedClock) -> str:
    return packages.evaluate_gate(db.session, KEY, clock=clock, overdue_policy="block").status


def test_one_email_per_person_listing_every_item(submitted: None, smtp: MailCatcher) -> None:
    mails = messages_to(smtp, ENGINEER)
    assert len(mails) == 1
    text = mails[0].text
    assert "Database migrations were applied to a copy of production data" in text
    assert "The rollback plan was rehearsed in staging" in text
    assert "Refunds go through a queue" in text
    assert mails[0].html.count("<b>now</b>") == 0, "HTML email must escape user text"
    assert "&lt;b&gt;now&lt;/b&gt;" in mails[0].html
    assert MANAGER not in {r for m in smtp.messages() for r in m.recipients}


def test_get_and_head_change_nothing_and_show_what_is_signed(
    app: Flask, submitted: None, smtp: MailCatcher
) -> None:
    client = app.test_client()
    path = engineer_link(smtp)
    for _ in range(3):
        page = client.get(path)
        assert page.status_code == 200
        assert client.head(path).status_code == 200
    assert "You are signing as <strong>raj@example.com</strong>" in page.text
    assert "Release 2026.11-r3 <small>revision 1</small>" in page.text
    assert "Refunds go through a queue" in page.text
    assert "7.4.0" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "same-origin"
    assert "noindex" in page.headers["X-Robots-Tag"]
    assert count(Signoff) == 0
    assert (
        db.session.scalar(sa.select(SignoffLink.state).where(SignoffLink.signer == ENGINEER))
        == "active"
    )


def test_post_records_each_decision_confirms_and_the_link_is_single_use(
    app: Flask, submitted: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    client = app.test_client()
    path = engineer_link(smtp)
    assert pass_everything(client, path) == 200
    recorded = db.session.scalars(sa.select(Signoff).where(Signoff.signer == ENGINEER)).all()
    assert len(recorded) == 3
    assert {s.decision for s in recorded} == {"pass"}
    replay = client.get(path)
    assert replay.status_code == 410
    assert "Already answered" in replay.text
    assert pass_everything_again(client, path) == 410
    assert count(Signoff) == 3
    run_worker(app)
    confirmations = [m for m in messages_to(smtp, ENGINEER) if "You signed off" in m.subject]
    assert len(confirmations) == 1
    assert "If this was not you" in confirmations[0].text


def pass_everything_again(client: FlaskClient, path: str) -> int:
    fresh = client.get("/s/resend")
    return client.post(path, data={"csrf_token": csrf(fresh.text)}).status_code


def test_missing_csrf_token_is_refused_and_nothing_recorded(
    app: Flask, submitted: None, smtp: MailCatcher
) -> None:
    client = app.test_client()
    path = engineer_link(smtp)
    page = client.get(path)
    form = {f"{p}-decision": "pass" for p in request_ids(page.text)}
    response = client.post(path, data=form)
    assert response.status_code == 400
    assert count(Signoff) == 0


def test_an_incomplete_form_is_shown_again_with_errors(
    app: Flask, submitted: None, smtp: MailCatcher
) -> None:
    client = app.test_client()
    path = engineer_link(smtp)
    page = client.get(path)
    prefixes = request_ids(page.text)
    form = {"csrf_token": csrf(page.text), f"{prefixes[0]}-decision": "not_applicable"}
    response = client.post(path, data=form)
    assert response.status_code == 422
    assert "say why this item does not apply" in response.text
    assert "Choose a decision." in response.text
    assert count(Signoff) == 0
    assert client.get(path).status_code == 200, "a rejected form does not use up the link"


@pytest.mark.parametrize(
    "tamper",
    [
        # Not the last character: its low bits are base64 padding and may decode the same.
        lambda t: t[:-5] + ("A" if t[-5] != "A" else "B") + t[-4:],
        lambda t: ("e" if t[0] != "e" else "f") + t[1:],
        lambda t: t[: len(t) // 2],
    ],
    ids=["signature", "payload", "truncated"],
)
def test_tampered_links_get_the_invalid_page(
    app: Flask, submitted: None, smtp: MailCatcher, tamper: object
) -> None:
    token = engineer_link(smtp).removeprefix("/s/")
    response = app.test_client().get(f"/s/{tamper(token)}")  # type: ignore[operator]
    assert response.status_code == 404
    assert "This link is not valid" in response.text


def test_a_token_signed_for_another_purpose_is_invalid(
    app: Flask, submitted: None, clock: FixedClock
) -> None:
    link_id = db.session.scalar(sa.select(SignoffLink.id).where(SignoffLink.signer == ENGINEER))
    forged = TokenService([TEST_KEY], "review", 3600, clock).dumps({"l": link_id, "n": "x"})
    assert app.test_client().get(f"/s/{forged}").status_code == 404


def test_expiry_boundary(app: Flask, submitted: None, smtp: MailCatcher, clock: FixedClock) -> None:
    client = app.test_client()
    path = engineer_link(smtp)
    ttl = runtime(app).link_settings().ttl
    clock.advance(ttl - timedelta(seconds=1))
    assert client.get(path).status_code == 200
    clock.advance(timedelta(seconds=1))
    expired = client.get(path)
    assert expired.status_code == 410
    assert "This link has expired" in expired.text
    assert "Send me a fresh link" in expired.text


def test_revision_change_between_email_and_click(
    app: Flask, submitted: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    client = app.test_client()
    old = engineer_link(smtp)
    page = client.get(old)
    with unit_of_work(db.session) as session:
        signoffs.edit_and_reissue(
            session,
            KEY,
            packages.PackageChanges(
                applications=(packages.ApplicationSpec("payments-api", "7.4.1", "Hotfix"),)
            ),
            actor=MANAGER,
            clock=clock,
            links=runtime(app).link_settings(),
        )
    run_worker(app)
    form = {"csrf_token": csrf(page.text)}
    for prefix in request_ids(page.text):
        form.update({f"{prefix}-decision": "pass", f"{prefix}-evidence": "https://x.example/1"})
    stale_post = client.post(old, data=form)
    assert stale_post.status_code == 410
    assert "changed since this link was sent" in stale_post.text
    assert count(Signoff) == 0
    mails = [m for m in messages_to(smtp, ENGINEER) if "Sign-off needed" in m.subject]
    assert len(mails) == 2
    assert "rev 2" in mails[0].subject, "newest first"
    new = path_of(link_in(mails[0]))
    assert new != old
    assert pass_everything(client, new) == 200
    assert {s.revision for s in db.session.scalars(sa.select(Signoff))} == {2}


def test_removed_application_revokes_its_links(
    app: Flask, submitted: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    path = engineer_link(smtp)
    with unit_of_work(db.session) as session:
        signoffs.cancel_and_revoke(session, KEY, actor=MANAGER, clock=clock, overdue_policy="block")
    response = app.test_client().get(path)
    assert response.status_code == 410
    assert "no longer needs this sign-off" in response.text


def test_key_user_problem_blocks_the_gate_with_their_words_and_tells_the_manager(
    app: Flask, submitted: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    client = app.test_client()
    path = path_of(link_in(messages_to(smtp, KEY_USER)[0]))
    page = client.get(path)
    assert "Run the end-of-day settlement report" in page.text
    assert "Refund a card payment from the back-office screen" in page.text
    (prefix,) = request_ids(page.text)
    words = "Yesterday's totals are off by exactly one refund"
    response = client.post(
        path,
        data={
            "csrf_token": csrf(page.text),
            f"{prefix}-decision": "problem",
            f"{prefix}-comment": words,
            f"{prefix}-scenario-0": "on",
        },
    )
    assert response.status_code == 200
    result = packages.evaluate_gate(db.session, KEY, clock=clock, overdue_policy="block")
    assert result.status == "blocked"
    assert any(words in b.message for b in result.blockers)
    run_worker(app)
    to_manager = messages_to(smtp, MANAGER)
    assert len(to_manager) == 1
    assert "a problem was reported" in to_manager[0].subject
    assert words in to_manager[0].text


def test_key_user_must_confirm_every_scenario(
    app: Flask, submitted: None, smtp: MailCatcher
) -> None:
    client = app.test_client()
    path = path_of(link_in(messages_to(smtp, KEY_USER)[0]))
    page = client.get(path)
    (prefix,) = request_ids(page.text)
    response = client.post(
        path,
        data={
            "csrf_token": csrf(page.text),
            f"{prefix}-decision": "confirmed",
            f"{prefix}-scenario-0": "on",
        },
    )
    assert response.status_code == 422
    assert "confirm every scenario" in response.text


def test_gate_opening_is_announced_to_the_manager_once(
    app: Flask, submitted: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    client = app.test_client()
    signers = sorted({r for m in smtp.messages() for r in m.recipients})
    for signer in signers:
        path = path_of(link_in(messages_to(smtp, signer)[0]))
        page = client.get(path)
        form = {"csrf_token": csrf(page.text)}
        for prefix in request_ids(page.text):
            form[f"{prefix}-decision"] = "pass"
            form[f"{prefix}-evidence"] = "https://ci.example.com/evidence"
            form[f"{prefix}-comment"] = "checked"
        if "Key-user validation" in page.text:
            form = {"csrf_token": csrf(page.text)}
            for prefix in request_ids(page.text):
                form[f"{prefix}-decision"] = "confirmed"
                for index in range(3):
                    form[f"{prefix}-scenario-{index}"] = "on"
        assert client.post(path, data=form).status_code == 200, signer
    assert gate_status(clock) == "open"
    run_worker(app)
    opened = [m for m in messages_to(smtp, MANAGER) if "the gate is open" in m.subject]
    assert len(opened) == 1


def test_resend_answers_the_same_for_unknown_addresses_and_sends_a_fresh_link(
    app: Flask, submitted: None, smtp: MailCatcher, clock: FixedClock
) -> None:
    client = app.test_client()
    old = engineer_link(smtp)
    clock.advance(signoffs.RESEND_LIMIT.keep_newer_than)  # a younger link is kept, none sent
    form_page = client.get("/s/resend")
    known = client.post(
        "/s/resend", data={"csrf_token": csrf(form_page.text), "email": ENGINEER, "package": KEY}
    )
    unknown = client.post(
        "/s/resend",
        data={"csrf_token": csrf(form_page.text), "email": "nobody@example.com", "package": KEY},
    )
    missing_package = client.post(
        "/s/resend",
        data={"csrf_token": csrf(form_page.text), "email": ENGINEER, "package": "nope"},
    )
    assert known.status_code == unknown.status_code == missing_package.status_code == 200
    assert known.text == unknown.text == missing_package.text
    run_worker(app)
    assert len(messages_to(smtp, "nobody@example.com")) == 0
    assert client.get(old).status_code == 410
    assert pass_everything(client, engineer_link(smtp)) == 200


def test_resend_is_rate_limited(app: Flask, submitted: None) -> None:
    client = app.test_client()
    token = csrf(client.get("/s/resend").text)
    codes = [
        client.post(
            "/s/resend", data={"csrf_token": token, "email": "x@example.com", "package": KEY}
        ).status_code
        for _ in range(7)
    ]
    assert codes[:5] == [200] * 5
    assert codes[5:] == [429, 429]


def test_the_demo_request_log_never_contains_a_token() -> None:
    from gatekeeper.web.serving import redact

    line = '"GET /s/eyJsIjoxLCJuIjoiYWJjIn0.Zx9.abc-def HTTP/1.1" 200 -'
    assert redact(line) == '"GET /s/[token] HTTP/1.1" 200 -'
    assert redact('"POST /s/resend HTTP/1.1" 200 -') == '"POST /s/resend HTTP/1.1" 200 -'


def test_emails_are_written_in_the_same_transaction_as_the_change(
    app: Flask, smtp: MailCatcher, clock: FixedClock
) -> None:
    with unit_of_work(db.session) as session:
        approve_payments(session, clock)
    with pytest.raises(RuntimeError), unit_of_work(db.session) as session:
        packages.create_package(
            session,
            packages.PackageSpec(
                KEY, "t", "prod", None, (packages.ApplicationSpec("payments-api", "1"),)
            ),
            assembler=MANAGER,
            clock=clock,
        )
        signoffs.submit_for_signoff(
            session, KEY, actor=MANAGER, clock=clock, links=runtime(app).link_settings()
        )
        assert count(OutboxMessage) > 0
        raise RuntimeError("the request failed after queueing mail")
    assert count(OutboxMessage) == 0
    assert count(SignoffLink) == 0
