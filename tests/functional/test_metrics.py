"""/metrics: who may scrape, and that the figures move with real requests, sign-offs, gate polls
and deliveries (in one process here; tests/production scrapes two gunicorn workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from tests.conftest import START, dispose, make_app
from tests.functional.api_helpers import API_PREFIX, create_token
from tests.support.flows import KEY, prepare
from tests.support.link_forms import sign_link
from tests.support.mail import dead_letter, point_mail_at, replying_server, run_worker

METRICS_TOKEN = "m" * 40
SCRAPER = "192.0.2.7"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def metered(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = make_app(
        database_url,
        tmp_path / "instance",
        FixedClock(START),
        GATEKEEPER_METRICS_TOKEN=METRICS_TOKEN,
        GATEKEEPER_METRICS_ALLOW="192.0.2.0/28",
    )
    with app.app_context():
        yield app
    dispose(app)


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_scrapes_need_the_token_or_an_allowed_address(metered: Flask, app: Flask) -> None:
    client = metered.test_client()
    bare = client.get("/metrics")
    assert bare.status_code == 401
    assert bare.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert "GATEKEEPER_METRICS_TOKEN" in bare.text
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})
    assert wrong.status_code == 401
    basic = client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
    assert basic.status_code == 401
    assert scrape(client)
    allowed = client.get("/metrics", environ_base={"REMOTE_ADDR": SCRAPER})
    assert allowed.status_code == 200
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.77"})
    assert outside.status_code == 401

    # Neither setting: metrics are off, and the answer says how to turn them on.
    off = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert off.status_code == 403
    assert "GATEKEEPER_METRICS_ALLOW" in off.text


def test_counters_move_with_real_requests(metered: Flask) -> None:
    clock = metered.extensions["gatekeeper"].clock
    links = prepare(metered, clock)
    token = create_token(clock, "ci", ["gate:read"])
    client = metered.test_client()
    before = scrape(client)

    gate_path = f"{API_PREFIX}/packages/{KEY}/gate"
    for _ in range(3):
        answer = client.get(gate_path, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
    signer, link = next(iter(links.items()))
    assert sign_link(metered.test_client(), f"/s/{link}").status_code in (200, 303)
    assert client.get("/no/such/page").status_code == 404
    clock.advance(timedelta(minutes=5))
    after = scrape(client)

    gate_route = frozenset({("route", "/api/v1/packages/<key>/gate"), ("method", "GET")})
    assert (
        value(after, "gatekeeper_http_requests_total", **dict(gate_route), status="200")
        - value(before, "gatekeeper_http_requests_total", **dict(gate_route), status="200")
        == 3
    )
    assert value(after, "gatekeeper_http_request_duration_seconds_count", **dict(gate_route)) == (
        value(before, "gatekeeper_http_request_duration_seconds_count", **dict(gate_route)) + 3
    )
    link_route = {"route": "/s/<token>", "method": "GET", "status": "200"}
    assert value(after, "gatekeeper_http_requests_total", **link_route) >= 1
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert value(after, "gatekeeper_http_requests_total", **unmatched) == (
        value(before, "gatekeeper_http_requests_total", **unmatched) + 1
    )
    every_label = " ".join(str(labels) for _, labels in after)
    assert link not in every_label
    assert "/no/such/page" not in every_label

    # Three polls of one unchanged gate: one evaluation, two answers from the cache.
    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("gatekeeper_gate_cache_misses_total") == 1
    assert moved("gatekeeper_gate_cache_hits_total") == 2
    assert moved("gatekeeper_gate_evaluations_total", status="pending") == 3
    # The sign-off decided the signer's requests, made at START and decided at START.
    assert moved("gatekeeper_signoff_lead_time_seconds_count") >= 1
    assert value(after, "gatekeeper_outbox_depth", kind="signoff_request") >= len(links)
    assert value(after, "gatekeeper_outbox_oldest_age_seconds", kind="signoff_request") == 300
    assert value(after, "gatekeeper_audit_chain_length") > value(
        before, "gatekeeper_audit_chain_length"
    )
    assert signer


def test_delivery_failures_and_dead_letters(metered: Flask) -> None:
    clock = metered.extensions["gatekeeper"].clock
    client = metered.test_client()
    prepare(metered, clock)
    with unit_of_work(db.session) as session:
        dead_letter(session, clock)
    before = scrape(client)
    assert value(before, "gatekeeper_outbox_dead_letters", kind="signoff_request") == 1
    waiting = value(before, "gatekeeper_outbox_depth", kind="signoff_request")
    with replying_server("451 try again later") as (port, handler):
        point_mail_at(metered, port)
        report = run_worker(metered)
    assert report.delivery.retried == handler.attempts > 0
    after = scrape(client)
    failures = value(after, "gatekeeper_outbound_failures_total", kind="email") - value(
        before, "gatekeeper_outbound_failures_total", kind="email"
    )
    assert failures == report.delivery.retried
    # Retried rows still wait; nothing was delivered.
    assert value(after, "gatekeeper_outbox_depth", kind="signoff_request") == waiting


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    """Two processes count into one PROMETHEUS_MULTIPROC_DIR; a scrape from a third adds up."""
    environ = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = "from gatekeeper import metrics; metrics.count_outbound_failure('webhook')"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=environ, check=True, timeout=60)
    show = (
        "import sys; from gatekeeper import metrics; "
        "sys.stdout.write(metrics.exposition(metrics.Snapshot()).decode())"
    )
    text = subprocess.run(
        [sys.executable, "-c", show], env=environ, check=True, timeout=60, capture_output=True
    ).stdout.decode()
    assert 'gatekeeper_outbound_failures_total{kind="webhook"} 2.0' in text
