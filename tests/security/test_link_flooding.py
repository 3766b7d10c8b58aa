"""Opening a link over and over cannot grow the audit trail, flush the gate caches or tie up the
server: opens are recorded at most once per link per hour, link pages are rate limited per token
and per client, and the limit answers 429 with a page a person can read."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_limiter.util import get_qualified_name

from gatekeeper.db.base import db
from gatekeeper.db.models import AuditEvent
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.web.limits import is_limited, limiter
from tests.functional.web_helpers import client, fresh_csrf
from tests.support.flows import KEY, prepare

pytestmark = pytest.mark.security

ENGINEER = "raj@example.com"
KEY_USER = "settlement-lead@example.com"
PER_TOKEN_PER_MINUTE = 20
PER_CLIENT_PER_MINUTE = 60


def opened_events() -> list[tuple[str, str]]:
    db.session.rollback()
    rows = db.session.execute(
        sa.select(AuditEvent.subject, AuditEvent.actor)
        .where(AuditEvent.action == "link.opened")
        .order_by(AuditEvent.seq)
    )
    return [(row.subject, row.actor) for row in rows]


@pytest.fixture
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate limits off, to see what the pages themselves write when opened without end."""
    monkeypatch.setattr(limiter, "enabled", False)


def test_300_opens_of_one_link_record_at_most_one_event_per_hour(
    app: Flask, clock: FixedClock, unlimited: None
) -> None:
    path = f"/s/{prepare(app, clock)[ENGINEER]}"
    browser = client(app)
    for _ in range(300):
        assert browser.get(path).status_code == 200
    assert [actor for _, actor in opened_events()] == [ENGINEER]
    clock.advance(timedelta(minutes=59))
    assert browser.head(path).status_code == 200
    assert len(opened_events()) == 1
    # 300 more opens, one a minute for five hours: one event per hour of clock.
    for _ in range(300):
        clock.advance(timedelta(minutes=1))
        assert browser.get(path).status_code == 200
    assert len(opened_events()) == 1 + 5


def test_opens_do_not_flush_the_gate_cache(app: Flask, clock: FixedClock, unlimited: None) -> None:
    tokens = prepare(app, clock)
    rt = runtime(app)
    browser = client(app)

    def gate_evaluations() -> int:
        rt.gate_now(db.session, KEY)
        db.session.rollback()
        return rt.gate_cache.misses

    before = gate_evaluations()
    for signer in (ENGINEER, KEY_USER):
        for _ in range(150):
            assert browser.get(f"/s/{tokens[signer]}").status_code == 200
            gate_evaluations()
    # Each link's first open is recorded (and moves the head once); the other 298 opens do not.
    assert gate_evaluations() - before == 2


def test_a_link_page_is_rate_limited_per_token_with_a_readable_page(
    app: Flask, clock: FixedClock
) -> None:
    tokens = prepare(app, clock)
    browser = client(app)
    path = f"/s/{tokens[ENGINEER]}"
    codes = [browser.get(path).status_code for _ in range(PER_TOKEN_PER_MINUTE + 2)]
    assert codes == [200] * PER_TOKEN_PER_MINUTE + [429, 429]
    limited = browser.get(path)
    assert limited.status_code == 429
    assert 'data-status="429"' in limited.text
    assert "Too many requests" in limited.text
    assert "per 1 minute" not in limited.text, "the limiter's own wording is not for people"
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.headers["Cache-Control"] == "no-store", "still a token page"
    # Another person's link, from the same client, is still open.
    assert browser.get(f"/s/{tokens[KEY_USER]}").status_code == 200
    assert len(opened_events()) == 2


@pytest.mark.parametrize("prefix", ["s", "review", "report", "login"])
def test_every_kind_of_link_page_is_rate_limited_per_token(app: Flask, prefix: str) -> None:
    browser = client(app)
    path = f"/{prefix}/not-a-real-token"
    codes = {browser.get(path).status_code for _ in range(PER_TOKEN_PER_MINUTE)}
    assert codes == {404}
    assert browser.get(path).status_code == 429
    refused = browser.post(path, data={"csrf_token": fresh_csrf(browser)})
    assert refused.status_code == 429, "the POST shares the token's budget"
    assert browser.get(f"/{prefix}/another-token").status_code == 404


def test_link_pages_are_rate_limited_per_client(app: Flask) -> None:
    crawler = client(app)
    prefixes = ["s", "review", "report", "login"]
    codes = [
        crawler.get(f"/{prefixes[i % 4]}/guess-{i}").status_code
        for i in range(PER_CLIENT_PER_MINUTE + 1)
    ]
    assert codes == [404] * PER_CLIENT_PER_MINUTE + [429]
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert elsewhere.get("/s/guess-0").status_code == 404, "other clients are not affected"


def test_every_view_flask_limiter_limits_is_one_the_request_filter_lets_through(
    app: Flask,
) -> None:
    """Requests to views without limits skip Flask-Limiter (web/limits.py); a limit applied
    without the module's recording decorators would silently never count."""
    marked = limiter._marked_for_limiting
    assert marked, "the link pages are limited"
    for endpoint, view in app.view_functions.items():
        if get_qualified_name(view) in marked:
            assert is_limited(view), f"{endpoint} is limited without `limited(...)`"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("health.healthz", False),
        ("api.get_gate", False),
        ("signoffs.show", True),
        ("auth.login", True),
        ("signoffs.resend", True),
    ],
)
def test_only_limited_views_pay_for_the_limiter(app: Flask, endpoint: str, expected: bool) -> None:
    assert is_limited(app.view_functions[endpoint]) is expected
