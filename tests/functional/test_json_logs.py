"""GATEKEEPER_LOG_FORMAT=json: one JSON object a line, with the request id (kept from a sane
X-Request-ID, made otherwise, echoed on the response), method and route, and no token."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gatekeeper.domain.clock import FixedClock
from tests.conftest import START, dispose, make_app
from tests.support.flows import prepare


@pytest.fixture
def logged(database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, io.StringIO]]:
    """An app in JSON log mode writing to a buffer; the `gatekeeper` logger restored after."""
    logger = logging.getLogger("gatekeeper")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    buffer = io.StringIO()
    logger.handlers = [logging.StreamHandler(buffer)]
    logger.setLevel(logging.INFO)
    app = make_app(
        database_url, tmp_path / "instance", FixedClock(START), GATEKEEPER_LOG_FORMAT="json"
    )
    try:
        with app.app_context():
            yield app, buffer
    finally:
        dispose(app)
        logger.handlers, logger.level, logger.propagate = saved


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_request_lines_carry_the_request_id_route_and_no_token(
    logged: tuple[Flask, io.StringIO],
) -> None:
    app, buffer = logged
    token = next(iter(prepare(app, app.extensions["gatekeeper"].clock).values()))
    client = app.test_client()
    response = client.get(f"/s/{token}", headers={"X-Request-ID": "lb-7f3a.01"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "lb-7f3a.01"

    [line] = [entry for entry in lines(buffer) if entry["logger"] == "gatekeeper.request"]
    assert line["request_id"] == "lb-7f3a.01"
    assert line["method"] == "GET"
    assert line["route"] == "/s/<token>"
    assert line["path"] == "/s/[token]"
    assert line["status"] == 200
    assert line["level"] == "INFO"
    assert line["message"] == "GET /s/[token] 200"
    assert {"timestamp", "duration_ms"} <= set(line)
    assert token not in buffer.getvalue()


@pytest.mark.parametrize(
    "offered", ["", "two words", "x" * 129, "evil;Set-Cookie=a", "-leading-dash"]
)
def test_an_insane_request_id_is_replaced(logged: tuple[Flask, io.StringIO], offered: str) -> None:
    app, buffer = logged
    response = app.test_client().get("/healthz", headers={"X-Request-ID": offered})
    made = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    [line] = lines(buffer)
    assert line["request_id"] == made
    assert line["route"] == "/healthz"


def test_every_line_written_during_a_request_carries_its_id(
    logged: tuple[Flask, io.StringIO],
) -> None:
    app, buffer = logged
    with app.test_request_context("/healthz", headers={"X-Request-ID": "req-1"}):
        app.preprocess_request()
        token = "a" * 20 + ".abcd." + "e" * 20
        logging.getLogger("gatekeeper.test").warning("visited /login/%s", token)
    [warning] = [e for e in lines(buffer) if e["logger"] == "gatekeeper.test"]
    assert warning["request_id"] == "req-1"
    assert warning["route"] == "/healthz"
    assert warning["level"] == "WARNING"
    assert warning["message"] == "visited /login/[token]"
