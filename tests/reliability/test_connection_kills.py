"""PostgreSQL connections killed under load: CI polling the gate, signers posting sign-offs and
staff loading pages while another connection terminates the app's backends in a loop.

Every answer is what the request asks for (2xx, or the 4xx its state explains) or a 503 that
says to retry: the JSON error envelope on the API and health checks, the friendly page
elsewhere, `Retry-After` on both. The log holds one clean line per failure: no traceback, no
error-level line, no token. Afterwards every link was used at most once and the gate reads
fine. Bounded: a few seconds of load on loopback."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from gatekeeper.db.base import db
from gatekeeper.db.models import Signoff, SignoffLink, SignoffRequest
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from tests.conftest import POSTGRES_URL, dispose, make_app
from tests.functional.api_helpers import create_token
from tests.functional.web_helpers import ADMIN, add_user, client, sign_in
from tests.support.flows import KEY, prepare
from tests.support.limits import no_rate_limits
from tests.support.link_forms import positive_form

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES_URL, reason="needs GATEKEEPER_TEST_DATABASE_URL"),
]

APP_NAME = "gatekeeper-under-fire"
LOAD_SECONDS = 6.0
MAX_SECONDS = 20.0  # keep going past LOAD_SECONDS only until the kills have hit requests
KILL_EVERY = 0.03
JSON_PATHS = ("/api/", "/healthz", "/readyz")


@dataclass
class Seen:
    """Every answer, by (what was asked, status), and every answer that was not acceptable."""

    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    crashed: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, what: str, path: str, response: TestResponse, expected: set[int]) -> int:
        status = response.status_code
        problem = None
        if status == 503:
            problem = unavailable_problem(path, response)
        elif status not in expected:
            problem = f"status {status}: {response.get_data(as_text=True)[:300]}"
        with self.lock:
            self.answers[(what, status)] += 1
            if problem:
                self.wrong.append(f"{what} {status}: {problem}")
        return status

    def unavailable(self) -> int:
        return sum(n for (_, status), n in self.answers.items() if status == 503)


def unavailable_problem(path: str, response: TestResponse) -> str | None:
    if not response.headers.get("Retry-After"):
        return "no Retry-After"
    if path.startswith(JSON_PATHS):
        body = response.get_json(silent=True)
        if not isinstance(body, dict) or body.get("error", {}).get("code") != "unavailable":
            return f"not the JSON envelope: {response.get_data(as_text=True)[:300]}"
        return None
    if 'data-status="503"' not in response.text or "Busy, try again" not in response.text:
        return f"not the friendly page: {response.text[:300]}"
    return None


def backends_killer(stop: threading.Event, kills: list[int]) -> None:
    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as connection:
        while not stop.is_set():
            killed = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (APP_NAME,),
            ).fetchone()
            kills.append(killed[0] if killed else 0)
            stop.wait(KILL_EVERY)


@pytest.fixture
def app_under_fire(
    migrated_databases: dict[str, str], tmp_path: Path, clock: FixedClock
) -> Iterator[Flask]:
    # The conftest's database_url fixture would also run this on SQLite; here only PostgreSQL
    # can be cut off, so the database is reset by hand.
    from tests.conftest import _truncate_postgres

    url = migrated_databases["postgresql"]
    _truncate_postgres(url)
    app = make_app(f"{url}?application_name={APP_NAME}", tmp_path / "instance", clock)
    app.config["TESTING"] = False  # errors go through the handlers and the log, as in production
    # The storm opens the same links thousands of times from one address: the link-page limits
    # would answer most of it with 429 instead of reaching the database.
    with app.app_context(), no_rate_limits():
        yield app
    dispose(app)


def test_killed_connections_give_503s_and_clean_log_lines_never_anything_else(
    app_under_fire: Flask, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_under_fire
    links = prepare(app, clock)
    api_token = create_token(clock, "ci", ["gate:read"])
    add_user(clock, ADMIN, users.ADMIN)
    staff = sign_in(app, ADMIN)
    secrets = [api_token, *links.values()]
    seen = Seen()
    stop = threading.Event()
    caplog.clear()

    def poll_gate() -> None:
        browser = app.test_client()
        path = f"/api/v1/packages/{KEY}/gate"
        while not stop.is_set():
            response = browser.get(path, headers={"Authorization": f"Bearer {api_token}"})
            if seen.check("gate", path, response, {200}) == 200:
                assert response.json is not None
                assert response.json["status"] in ("open", "pending", "blocked")

    def sign(token: str) -> Callable[[], None]:
        def run() -> None:
            browser = client(app)
            path = f"/s/{token}"
            while not stop.is_set():
                page = browser.get(path)
                if seen.check("link page", path, page, {200, 410}) != 200:
                    continue
                done = browser.post(path, data=positive_form(page.text))
                # 410: a commit the kill cut off after it landed; the link was used then.
                if seen.check("sign-off", path, done, {200, 410}) in (200, 410):
                    break

        return run

    def load_pages() -> None:
        while not stop.is_set():
            for path in ("/", f"/packages/{KEY}", "/readyz", "/healthz"):
                seen.check("page", path, staff.get(path), {200})

    def guarded(job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                with app.app_context():
                    job()
            except BaseException as exc:
                seen.crashed.append(exc)

        return run

    kills: list[int] = []
    killer = threading.Thread(target=backends_killer, args=(stop, kills), daemon=True)
    jobs = [poll_gate, poll_gate, load_pages, *(sign(token) for token in links.values())]
    threads = [threading.Thread(target=guarded(job), daemon=True) for job in jobs]
    started = time.monotonic()
    killer.start()
    for thread in threads:
        thread.start()
    while time.monotonic() - started < MAX_SECONDS:
        time.sleep(0.2)
        if time.monotonic() - started >= LOAD_SECONDS and seen.unavailable() >= 3:
            break
    stop.set()
    for thread in [*threads, killer]:
        thread.join(30)
        assert not thread.is_alive(), "a worker thread hung"

    assert not seen.crashed, seen.crashed
    assert not seen.wrong, seen.wrong[:10]
    assert sum(kills) > 0, "nothing was killed"
    assert seen.unavailable() >= 3, f"the kills never hit a request: {seen.answers}"
    assert seen.answers[("gate", 200)] > 0

    for record in caplog.records:
        message = record.getMessage()
        assert record.levelname in ("INFO", "WARNING"), f"{record.levelname}: {message}"
        assert record.exc_info is None, f"a traceback was logged with: {message}"
        assert "\n" not in message, message
        assert not any(secret in message for secret in secrets), message

    # Every link was used at most once: a used link has each of its requests signed once.
    db.session.remove()
    signed = Counter(db.session.scalars(sa.select(Signoff.request_id)))
    assert set(signed.values()) <= {1}, signed
    for link in db.session.scalars(sa.select(SignoffLink)):
        requests = db.session.scalars(
            sa.select(SignoffRequest.id).where(SignoffRequest.signer == link.signer)
        ).all()
        expected = len(requests) if link.state == "used" else 0
        assert sum(signed[r] for r in requests) == expected, link.signer
    after = app.test_client().get(
        f"/api/v1/packages/{KEY}/gate", headers={"Authorization": f"Bearer {api_token}"}
    )
    assert after.status_code == 200, after.text
