"""docs/production.md, run for real on loopback: PostgreSQL migrated with `gatekeeper db upgrade`,
two "hosts" (gunicorn with the shipped config module, two workers each, on two ports) sharing one
PostgreSQL and one Redis, two `gatekeeper worker` processes, and a release played through them:
sign-off links caught by an SMTP server and signed over HTTP.

Across the hosts: a change through host A is seen by host B's next gate poll (no stale gate
cache), each email goes out exactly once between the two workers, rate limits are counted once
for both hosts, and one scrape of /metrics adds up both gunicorn workers of its host.

Skipped unless GATEKEEPER_TEST_DATABASE_URL names PostgreSQL; PRODUCTION_TEST_REQUIRED=1 (CI)
turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.db.base import db
from gatekeeper.db.models import OutboxMessage
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock, SystemClock
from gatekeeper.notify.catcher import MailCatcher
from gatekeeper.services import packages, signoffs
from tests.conftest import POSTGRES_URL, REPO, TEST_KEY, dispose, make_app, postgres_url
from tests.functional.api_helpers import create_token
from tests.support.flows import KEY, MANAGER, approve_payments
from tests.support.keys import production_keys
from tests.support.link_forms import positive_form
from tests.support.mail import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REQUIRED = os.environ.get("PRODUCTION_TEST_REQUIRED") == "1"
BIN = Path(sys.executable).parent
START_TIMEOUT = 60.0
METRICS_TOKEN = "p" * 40
SIGNOFF_LINK = re.compile(r"http://127\.0\.0\.1:\d+(/s/[A-Za-z0-9_\-.]+)")


def _need(condition: bool, why: str) -> None:
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"PRODUCTION_TEST_REQUIRED=1 but {why}")
    pytest.skip(why)


@contextmanager
def production_database() -> Iterator[str]:
    """A database of its own next to the test one, dropped afterwards."""
    base = sa.engine.make_url(postgres_url())
    name = f"{base.database}_production"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def process(
    args: list[str], environ: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        started = subprocess.Popen(args, env=environ, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield started
        finally:
            started.terminate()
            try:
                started.wait(30)
            except subprocess.TimeoutExpired:
                started.kill()
                started.wait(10)


def wait_for(url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not come up:\n{log.read_text()}")


@dataclass(frozen=True)
class Host:
    url: str
    metrics_dir: Path

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)  # type: ignore[arg-type]

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        response = self.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert response.status_code == 200, response.text
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }


def test_a_release_through_two_hosts_and_two_workers(tmp_path: Path) -> None:
    _need(POSTGRES_URL.startswith("postgresql"), "GATEKEEPER_TEST_DATABASE_URL is not PostgreSQL")
    redis_server = shutil.which("redis-server")
    _need(redis_server is not None, "redis-server is not installed (apt-get install redis-server)")
    assert redis_server is not None
    began = time.monotonic()
    with ExitStack() as stack:
        database = stack.enter_context(production_database())
        box = MailCatcher(port=free_port())
        box.start()
        stack.callback(box.stop)
        redis_port = free_port()
        stack.enter_context(
            process(
                [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""],
                dict(os.environ),
                tmp_path / "redis.log",
            )
        )
        ports = [free_port(), free_port()]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
        environ.update(
            GATEKEEPER_ENV="production",
            GATEKEEPER_DATABASE_URL=database,
            GATEKEEPER_SECRET_KEYS=TEST_KEY,
            **production_keys(tmp_path),
            # Both "hosts" run on this machine, so they share one, as deploy/ puts it in
            # /var/lib/gatekeeper.
            GATEKEEPER_AUDIT_WITNESS_FILE=str(tmp_path / "audit-witness.json"),
            GATEKEEPER_BASE_URL=f"http://127.0.0.1:{ports[0]}",
            GATEKEEPER_MAIL_SERVER="127.0.0.1",
            GATEKEEPER_MAIL_PORT=str(box.port),
            GATEKEEPER_MAIL_SENDER="Gatekeeper <gatekeeper@example.com>",
            GATEKEEPER_RATE_LIMIT_STORAGE=f"redis://127.0.0.1:{redis_port}/0",
            GATEKEEPER_METRICS_TOKEN=METRICS_TOKEN,
            WEB_CONCURRENCY="2",
            PYTHONPATH=str(REPO),
            XDG_RUNTIME_DIR=str(tmp_path),
        )
        subprocess.run(
            [BIN / "gatekeeper", "db", "upgrade"],
            env=environ,
            cwd=tmp_path,
            check=True,
            timeout=120,
        )

        hosts: list[Host] = []
        for name, port in zip("ab", ports, strict=True):
            metrics_dir = tmp_path / f"metrics-{name}"
            metrics_dir.mkdir()
            host_env = {**environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
            if name == "b":  # host B logs for a log pipeline; host A in text
                host_env["GATEKEEPER_LOG_FORMAT"] = "json"
            stack.enter_context(
                process(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "-c",
                        "python:gatekeeper.gunicorn_config",
                        "--bind",
                        f"127.0.0.1:{port}",
                    ],
                    host_env,
                    tmp_path / f"gunicorn-{name}.log",
                )
            )
            hosts.append(Host(f"http://127.0.0.1:{port}", metrics_dir))
        a, b = hosts
        for number in range(2):
            stack.enter_context(
                process(
                    [BIN / "gatekeeper", "worker", "--interval", "0.3"],
                    {**environ, "PROMETHEUS_MULTIPROC_DIR": str(a.metrics_dir)},
                    tmp_path / f"worker-{number}.log",
                )
            )
        for host, name in zip(hosts, "ab", strict=True):
            wait_for(host.url + "/readyz", tmp_path / f"gunicorn-{name}.log")

        # The release: checklists, a package submitted (as a release manager would), a CI token.
        setup = make_app(
            database, tmp_path / "setup", FixedClock(SystemClock().now()), GATEKEEPER_BASE_URL=a.url
        )
        stack.callback(dispose, setup)
        with setup.app_context():
            clock = FixedClock(SystemClock().now())
            links = setup.extensions["gatekeeper"].link_settings()
            with unit_of_work(db.session) as session:
                approve_payments(session, clock)
                packages.create_package(
                    session,
                    packages.PackageSpec(
                        KEY, "Race", "prod", None, (packages.ApplicationSpec("payments-api", "1"),)
                    ),
                    assembler=MANAGER,
                    clock=clock,
                )
                signoffs.submit_for_signoff(
                    session,
                    KEY,
                    actor=MANAGER,
                    clock=clock,
                    links=links,
                )
            token = create_token(clock, "ci", ["gate:read"])
            queued = db.session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage))
            db.session.rollback()
        ci = {"Authorization": f"Bearer {token}"}

        # Both workers deliver; every email arrives once.
        deadline = time.monotonic() + 30
        while len(box.messages()) < queued and time.monotonic() < deadline:
            time.sleep(0.2)
        caught = box.messages()
        assert len(caught) == queued, [m.subject for m in caught]
        with setup.app_context():
            rows = db.session.execute(
                sa.select(OutboxMessage.state, OutboxMessage.attempts, OutboxMessage.claimed_by)
            ).all()
            db.session.rollback()
        assert {(state, attempts) for state, attempts, _ in rows} == {("sent", 1)}
        sign_links = {
            m.recipients[0]: SIGNOFF_LINK.search(m.text).group(1)  # type: ignore[union-attr]
            for m in caught
            if SIGNOFF_LINK.search(m.text)
        }
        assert len(sign_links) == len({m.recipients[0] for m in caught}) >= 2

        # Host B polls the gate (now cached there); each sign-off goes through host A, and host
        # B's next poll already counts it.
        gate = f"/api/v1/packages/{KEY}/gate"
        seen = b.get(gate, headers=ci).json()
        for path in sign_links.values():
            browser = requests.Session()
            page = browser.get(a.url + path, timeout=30)
            assert page.status_code == 200, page.text
            done = browser.post(a.url + path, data=positive_form(page.text), timeout=30)
            assert done.status_code < 400, done.text
            fresh = b.get(gate, headers=ci).json()
            assert fresh["digest"] != seen["digest"], "host B served a stale gate"
            assert fresh == a.get(gate, headers=ci).json()
            seen = fresh
        final = b.get(gate, headers=ci).json()
        assert final["status"] == "open", final["blockers"]
        assert a.get(gate, headers=ci).json()["digest"] == final["digest"]

        # Rate limits live in Redis: one link's 20 page views a minute, whichever host serves.
        probe = "/s/not-a-real-link-but-counted"
        answers = [(a if n % 2 else b).get(probe).status_code for n in range(21)]
        assert 429 not in answers[:20], answers
        assert answers[-1] == 429, answers

        # One scrape of host A adds up both of its gunicorn workers.
        before = a.scrape()
        for _ in range(20):
            assert a.get("/healthz").status_code == 200
        after = a.scrape()
        healthz = (
            "gatekeeper_http_requests_total",
            frozenset({("route", "/healthz"), ("method", "GET"), ("status", "200")}),
        )
        assert after[healthz] - before.get(healthz, 0.0) == 20
        pids = {p.stem.rsplit("_", 1)[-1] for p in a.metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 4, f"two gunicorn workers and two mail workers count: {pids}"
        depth = ("gatekeeper_outbox_depth", frozenset({("kind", "signoff_request")}))
        assert after.get(depth, 0.0) == 0, "everything was delivered"
        assert after[("gatekeeper_audit_chain_length", frozenset())] > 0

        # Host B's log: JSON lines only, the probe's path masked, request ids on access lines.
        entries = [
            json.loads(line) for line in (tmp_path / "gunicorn-b.log").read_text().splitlines()
        ]
        probes = [e for e in entries if e.get("route") == "/s/<token>"]
        assert probes, entries
        assert all(e["path"] == "/s/[token]" and e["request_id"] for e in probes)
        assert "not-a-real-link" not in (tmp_path / "gunicorn-b.log").read_text()

        health = subprocess.run(
            [BIN / "gatekeeper", "worker", "--healthcheck"],
            env=environ,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert health.returncode == 0, health.stdout + health.stderr
    assert time.monotonic() - began < 120
