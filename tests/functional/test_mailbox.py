"""The demo mailbox: every email the demo sends, with its links; never part of production."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from gatekeeper.app import create_app
from gatekeeper.web import mailbox
from tests.conftest import TEST_KEY, clean_environ
from tests.support.flows import prepare
from tests.support.mail import catcher, point_mail_at, run_worker


def test_mailbox_shows_caught_mail_with_its_links(app: Flask, clock: object) -> None:
    assert app.test_client().get("/dev/mailbox/").status_code == 404, "no catcher, no mailbox"
    with catcher() as box:
        point_mail_at(app, box.port)
        mailbox.attach(app.extensions, box)
        prepare(app, clock)  # type: ignore[arg-type]
        run_worker(app)
        page = app.test_client().get("/dev/mailbox/")
    assert page.status_code == 200
    assert "Sign-off needed: Race (2026.11-race rev 1)" in page.text
    assert 'class="mail-link" href="http://127.0.0.1:5000/s/' in page.text


def test_production_has_no_mailbox_route(tmp_path: Path) -> None:
    app = create_app(
        environ=clean_environ(
            GATEKEEPER_ENV="production",
            GATEKEEPER_SECRET_KEYS=TEST_KEY,
            GATEKEEPER_BASE_URL="https://gate.example.com",
            GATEKEEPER_DATABASE_URL=f"sqlite:///{tmp_path / 'p.sqlite'}",
            GATEKEEPER_MAIL_SERVER="smtp.example.com",
            GATEKEEPER_MAIL_SENDER="gate@example.com",
        ),
        instance_path=str(tmp_path),
    )
    assert "mailbox.index" not in app.view_functions
    assert app.config["SESSION_COOKIE_SECURE"] is True
