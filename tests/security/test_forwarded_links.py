"""A link forwarded to someone who is signed in still signs only as the person it was sent to."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import Signoff
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from tests.functional.web_helpers import add_user, csrf, sign_in
from tests.support.flows import prepare

pytestmark = pytest.mark.security


def test_a_signed_in_colleague_opening_a_forwarded_link_signs_nothing_as_themselves(
    app: Flask, clock: FixedClock
) -> None:
    tokens = prepare(app, clock)
    add_user(clock, "admin@example.com", users.ADMIN)
    browser = sign_in(app, "admin@example.com")
    path = f"/s/{tokens['raj@example.com']}"
    page = browser.get(path)
    assert page.status_code == 200
    assert "You are signing as <strong>raj@example.com</strong>" in page.text
    form = {"csrf_token": csrf(page.text)}
    for prefix in sorted(set(re.findall(r'name="(r\d+)-decision"', page.text))):
        form[f"{prefix}-decision"] = "pass"
        form[f"{prefix}-evidence"] = "https://ci.example.com/1"
    assert browser.post(path, data=form).status_code == 200
    signers = set(db.session.scalars(sa.select(Signoff.signer)))
    assert signers == {"raj@example.com"}, "the session never changes who signs"
