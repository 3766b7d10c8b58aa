"""The fast path for gate polls (api/gate_polls.py): a poll whose copy is still the gate is
answered before Flask, with exactly what Flask would have sent; everything else reaches Flask.

Flask's own answer is taken from the application the middleware wraps, on the same database,
so that each comparison is between the two paths at the same moment.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import Client, TestResponse

from gatekeeper.api.gate_polls import ROUTE, GatePolls
from gatekeeper.db.base import db
from gatekeeper.db.models import ApiToken
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import tokens
from tests.functional.api_helpers import Api, create_token, revoke_token
from tests.functional.test_json_logs import lines, logged  # noqa: F401 (a fixture)
from tests.functional.test_metrics import metered, scrape, value  # noqa: F401 (a fixture)
from tests.integration.test_gate_cache import KEY, prepared
from tests.integration.test_gate_etag import GATE, etag_of, poll
from tests.support.governance import sign_everything


def polls_of(app: Flask) -> GatePolls:
    found = app.wsgi_app
    assert isinstance(found, GatePolls), "the fast path wraps the whole application"
    return found


@pytest.fixture
def reached_flask(app: Flask) -> Iterator[list[str]]:
    """The paths of the requests that the fast path handed on to Flask."""
    polls = polls_of(app)
    inner = polls.flask_app
    seen: list[str] = []

    def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    polls.flask_app = counting  # type: ignore[assignment]
    yield seen
    polls.flask_app = inner


def flask_answer(app: Flask, path: str, headers: dict[str, str]) -> TestResponse:
    db.session.remove()
    try:
        return Client(polls_of(app).flask_app).get(path, headers=headers)  # type: ignore[arg-type]
    finally:
        db.session.remove()


def ready(app: Flask, clock: FixedClock, tmp_path: Path) -> tuple[Api, str]:
    prepared(app, clock, tmp_path)
    api = Api(app, create_token(clock, "ci"))
    etag = etag_of(poll(api))
    # The token's first use is recorded (by Flask), which drops its cached copy: from the
    # next poll on, the pipeline is one that has been waiting for a while.
    assert poll(api, etag).status_code == 304
    return api, etag


def without_request_id(response: TestResponse) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k != "X-Request-ID")


def test_a_held_gate_is_answered_before_flask_exactly_as_flask_would(
    app: Flask, clock: FixedClock, tmp_path: Path, reached_flask: list[str]
) -> None:
    api, etag = ready(app, clock, tmp_path)
    before = len(reached_flask)
    fast = poll(api, etag)
    assert len(reached_flask) == before, "answered without Flask"
    assert fast.status_code == 304
    assert fast.get_data() == b""
    headers = {"Authorization": f"Bearer {api.token}", "If-None-Match": etag}
    slow = flask_answer(app, GATE, headers)
    assert slow.status_code == 304
    assert without_request_id(fast) == without_request_id(slow)
    assert dict(without_request_id(fast))["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" in fast.headers


def test_a_poll_holding_no_copy_gets_the_stored_document_before_flask_as_flask_would(
    app: Flask, clock: FixedClock, tmp_path: Path, reached_flask: list[str]
) -> None:
    api, etag = ready(app, clock, tmp_path)
    before = len(reached_flask)
    fast = poll(api)
    assert len(reached_flask) == before, "answered without Flask"
    assert fast.status_code == 200
    assert fast.headers["ETag"] == etag
    slow = flask_answer(app, GATE, {"Authorization": f"Bearer {api.token}"})
    assert slow.status_code == 200
    assert fast.get_data() == slow.get_data()
    assert without_request_id(fast) == without_request_id(slow)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda h, e: {**h, "If-None-Match": ""}, 200),
        (lambda h, e: {**h, "If-None-Match": '"someone-else"'}, 200),
        (lambda h, e: {**h, "If-None-Match": f"W/{e}"}, 304),
        (lambda h, e: {**h, "If-None-Match": f'"x", {e}'}, 304),
        (lambda h, e: {**h, "Authorization": "Basic abc"}, 401),
        (lambda h, e: {**h, "Authorization": "Bearer gk_not-a-token"}, 401),
        (lambda h, e: {k: v for k, v in h.items() if k != "Authorization"}, 401),
    ],
    ids=[
        "empty-tag",
        "other-tag",
        "weak-tag",
        "tag-list",
        "basic-auth",
        "unknown-token",
        "no-token",
    ],
)
def test_any_other_poll_goes_to_flask(
    app: Flask,
    clock: FixedClock,
    tmp_path: Path,
    reached_flask: list[str],
    change: Callable[[dict[str, str], str], dict[str, str]],
    status: int,
) -> None:
    api, etag = ready(app, clock, tmp_path)
    headers = change({"Authorization": f"Bearer {api.token}", "If-None-Match": etag}, etag)
    before = len(reached_flask)
    answer = app.test_client().get(GATE, headers=headers)
    assert len(reached_flask) == before + 1, "Flask answered"
    assert answer.status_code == status, answer.get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", f"{GATE}?verbose=1", 304),
        ("HEAD", GATE, 304),
        ("POST", GATE, 405),
        ("GET", "/api/v1/packages/no-such-package/gate", 404),
        ("GET", "/api/v1/packages/%2E%2E/gate", 404),
    ],
)
def test_other_requests_to_gate_like_paths_go_to_flask(
    app: Flask,
    clock: FixedClock,
    tmp_path: Path,
    reached_flask: list[str],
    method: str,
    path: str,
    status: int,
) -> None:
    api, etag = ready(app, clock, tmp_path)
    before = len(reached_flask)
    answer = app.test_client().open(
        path,
        method=method,
        headers={"Authorization": f"Bearer {api.token}", "If-None-Match": etag},
    )
    assert len(reached_flask) == before + 1
    assert answer.status_code == status, answer.get_data(as_text=True)


def test_a_token_without_gate_read_is_refused_by_flask(
    app: Flask, clock: FixedClock, tmp_path: Path, reached_flask: list[str]
) -> None:
    _, etag = ready(app, clock, tmp_path)
    writer = create_token(clock, "writer", scopes=(tokens.SCOPE_PACKAGES_WRITE,))
    headers = {"Authorization": f"Bearer {writer}", "If-None-Match": etag}
    client = app.test_client()
    assert client.get(GATE, headers=headers).status_code == 403
    before = len(reached_flask)
    # Now cached for this head in this process: still Flask's to refuse, every time.
    assert client.get(GATE, headers=headers).status_code == 403
    assert len(reached_flask) == before + 1


def test_a_revoked_token_and_a_changed_gate_end_the_fast_path_at_once(
    app: Flask, clock: FixedClock, tmp_path: Path, reached_flask: list[str]
) -> None:
    api, etag = ready(app, clock, tmp_path)
    assert poll(api, etag).status_code == 304
    sign_everything(clock, KEY)
    before = len(reached_flask)
    opened = poll(api, etag)
    assert len(reached_flask) == before + 1
    assert opened.json["status"] == "open"  # type: ignore[index]
    fresh = etag_of(opened)
    assert poll(api, fresh).status_code == 304
    revoke_token(clock, "ci")
    assert poll(api, fresh).status_code == 401, "refused from the next request on"


def test_a_token_due_for_its_last_use_record_goes_through_flask_which_records_it(
    app: Flask, clock: FixedClock, tmp_path: Path, reached_flask: list[str]
) -> None:
    api, etag = ready(app, clock, tmp_path)
    clock.advance(timedelta(seconds=tokens.LAST_USED_RESOLUTION_SECONDS))
    before = len(reached_flask)
    assert poll(api, etag).status_code == 304
    assert len(reached_flask) == before + 1, "the touch is Flask's to write"
    used = db.session.scalar(sa.select(ApiToken.last_used_at).where(ApiToken.name == "ci"))
    db.session.rollback()
    assert used == clock.now()
    # The touch dropped the cached copy (its last use was old): Flask looks the token up once
    # more, and from then on the polls are fast again.
    assert poll(api, etag).status_code == 304
    assert len(reached_flask) == before + 2
    assert poll(api, etag).status_code == 304
    assert len(reached_flask) == before + 2


def test_a_database_the_fast_path_cannot_read_leaves_the_poll_to_flask(
    app: Flask, clock: FixedClock, tmp_path: Path, reached_flask: list[str]
) -> None:
    api, etag = ready(app, clock, tmp_path)
    polls = polls_of(app)
    kept = polls._engine
    polls._engine = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/none.sqlite")
    try:
        before = len(reached_flask)
        assert poll(api, etag).status_code == 304
        assert len(reached_flask) == before + 1
    finally:
        polls._engine.dispose()
        polls._engine = kept


def test_the_request_id_is_kept_when_sane_and_replaced_otherwise(
    app: Flask, clock: FixedClock, tmp_path: Path, reached_flask: list[str]
) -> None:
    api, etag = ready(app, clock, tmp_path)
    before = len(reached_flask)
    kept = poll_with(app, api, etag, {"X-Request-ID": "lb-7f3a.01"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a.01"
    replaced = poll_with(app, api, etag, {"X-Request-ID": "evil;Set-Cookie=a"})
    assert replaced.headers["X-Request-ID"] != "evil;Set-Cookie=a"
    assert len(replaced.headers["X-Request-ID"]) == 32
    assert len(reached_flask) == before


def poll_with(app: Flask, api: Api, etag: str, extra: dict[str, str]) -> TestResponse:
    headers = {"Authorization": f"Bearer {api.token}", "If-None-Match": etag, **extra}
    answer = app.test_client().get(GATE, headers=headers)
    assert answer.status_code == 304
    return answer


def test_fast_polls_are_counted_in_the_metrics(
    metered: Flask,  # noqa: F811
    tmp_path: Path,
) -> None:
    clock = metered.extensions["gatekeeper"].clock
    api, etag = ready(metered, clock, tmp_path)
    client = metered.test_client()
    labels = {"route": ROUTE, "method": "GET", "status": "304"}
    counted = value(scrape(client), "gatekeeper_http_requests_total", **labels)
    hits = value(scrape(client), "gatekeeper_gate_cache_hits_total")
    for _ in range(3):
        assert poll(api, etag).status_code == 304
    samples = scrape(client)
    assert value(samples, "gatekeeper_http_requests_total", **labels) == counted + 3
    assert value(samples, "gatekeeper_gate_cache_hits_total") == hits + 3


def test_fast_polls_are_written_to_the_json_access_log(
    logged: tuple[Flask, io.StringIO],  # noqa: F811
    tmp_path: Path,
) -> None:
    app, buffer = logged
    clock = app.extensions["gatekeeper"].clock
    api, etag = ready(app, clock, tmp_path)
    poll_with(app, api, etag, {"X-Request-ID": "ci-42"})
    [line] = [
        entry
        for entry in lines(buffer)
        if entry["logger"] == "gatekeeper.request" and entry.get("request_id") == "ci-42"
    ]
    assert line["route"] == ROUTE
    assert line["method"] == "GET"
    assert line["status"] == 304
    assert line["path"] == GATE
    assert "duration_ms" in line
    assert api.token not in buffer.getvalue()
