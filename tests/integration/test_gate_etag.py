"""Conditional gate polls: an ETag per gate document, 304 only while the document is unchanged.

Over the real app (test client, the gate cache on): a 304 never outlives a change, nor the
moment stable_until names, and the token is checked on every poll, 304s included.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask
from werkzeug.test import TestResponse

from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from tests.conftest import dispose, make_app
from tests.functional.api_helpers import API_PREFIX, Api, create_token, revoke_token
from tests.integration.test_gate_cache import (
    KEY,
    PAYMENTS_REVIEW_EVERY,
    TICK,
    edit_version,
    prepared,
)
from tests.support.governance import approve, sign_everything

GATE = f"{API_PREFIX}/packages/{KEY}/gate"


def poll(api: Api, etag: str | None = None) -> TestResponse:
    return api.get(GATE, headers={"If-None-Match": etag} if etag else None)


def etag_of(response: TestResponse) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    etag = response.headers["ETag"]
    assert etag.startswith('"'), "a strong entity tag, not W/…"
    return etag


def test_an_unchanged_gate_is_304_without_a_body_and_keeps_no_store(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    api = Api(app, create_token(clock, "ci"))
    first = poll(api)
    etag = etag_of(first)
    assert etag == f'"{hashlib.sha256(first.get_data()).hexdigest()[:32]}"', "tag of the bytes"
    assert first.headers["Cache-Control"] == "no-store"
    again = poll(api, etag)
    assert again.status_code == 304
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "no-store", "no proxy may keep or share a gate"
    assert "Content-Type" not in again.headers
    # The forms RFC 9110 allows: a list, a weak tag of the same value, `*`.
    for sent in (f'"nope", {etag}', f"W/{etag}", "*"):
        assert poll(api, sent).status_code == 304, sent
    assert poll(api, '"nope"').status_code == 200


def test_every_change_ends_the_304_at_once(app: Flask, clock: FixedClock, tmp_path: Path) -> None:
    prepared(app, clock, tmp_path)
    api = Api(app, create_token(clock, "ci"))
    etag = etag_of(poll(api))
    assert poll(api, etag).status_code == 304
    edit_version(clock, "7.4.1")  # a new revision: the signers sign again
    edited = poll(api, etag)
    assert edited.json["revision"] == 2  # type: ignore[index]
    new = etag_of(edited)
    assert new != etag
    assert poll(api, new).status_code == 304
    sign_everything(clock, KEY)
    opened = poll(api, new)
    assert opened.json["status"] == "open"  # type: ignore[index]
    assert etag_of(opened) not in (etag, new)


def test_no_304_across_the_moment_a_review_falls_due(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    due = clock.now() + PAYMENTS_REVIEW_EVERY
    sign_everything(clock, KEY)
    api = Api(app, create_token(clock, "ci"))
    etag = etag_of(poll(api))
    clock.set(due - TICK)
    hits = runtime(app).gate_cache.hits
    assert poll(api, etag).status_code == 304, "still open one microsecond before"
    assert runtime(app).gate_cache.hits == hits + 1, "served from the gate cache"
    clock.set(due)
    overdue = poll(api, etag)
    assert overdue.status_code == 200
    assert overdue.json["status"] == "blocked"  # type: ignore[index]
    blocked = etag_of(overdue)
    assert poll(api, blocked).status_code == 304
    approve(clock, "payments-api", 7)
    assert poll(api, blocked).json["status"] == "open"  # type: ignore[index]


def test_a_304_still_checks_the_token_on_every_poll(
    app: Flask, clock: FixedClock, tmp_path: Path
) -> None:
    prepared(app, clock, tmp_path)
    api = Api(app, create_token(clock, "ci"))
    etag = etag_of(poll(api))
    assert poll(api, etag).status_code == 304
    assert api.get(GATE, anonymous=True, headers={"If-None-Match": etag}).status_code == 401
    revoke_token(clock, "ci")
    assert poll(api, etag).status_code == 401, "revoked: refused from the next request on"


def test_every_process_tags_the_same_gate_alike(
    app: Flask, clock: FixedClock, tmp_path: Path, database_url: str
) -> None:
    """gunicorn workers have their own caches: a poller that lands on another worker must
    still get its 304."""
    prepared(app, clock, tmp_path)
    token = create_token(clock, "ci")
    etag = etag_of(poll(Api(app, token)))
    other = make_app(database_url, tmp_path / "other", clock)
    try:
        with other.app_context():
            assert poll(Api(other, token), etag).status_code == 304
    finally:
        dispose(other)
