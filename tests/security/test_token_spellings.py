"""One token, one spelling: padding, stray characters or re-spelled signature bits make a link
"not a valid link"; what a server decodes before routing (percent-encoding) is the same link."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from flask import Flask

from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import users
from tests.functional.web_helpers import add_user, client, sign_in_url
from tests.support.flows import prepare

pytestmark = pytest.mark.security


def spellings(token: str) -> list[str]:
    return [f"{token}==", f"{token}=", f"{token}~", f"{token[:-3]}*{token[-3:]}", f"{token}/"]


def test_a_sign_off_link_opens_only_in_its_own_spelling(app: Flask, clock: FixedClock) -> None:
    token = prepare(app, clock)["raj@example.com"]
    browser = client(app)
    assert browser.get(f"/s/{token}").status_code == 200
    encoded = "".join(f"%{byte:02X}" for byte in token.encode())
    assert browser.get(f"/s/{encoded}").status_code == 200, "decoded before routing"
    assert browser.get(f"/s/{token}?utm_source=mail").status_code == 200
    for spelling in spellings(token):
        response = browser.get(f"/s/{spelling}")
        assert response.status_code == 404, spelling
        assert "raj@example.com" not in response.text


def test_a_sign_in_link_opens_only_in_its_own_spelling(app: Flask, clock: FixedClock) -> None:
    add_user(clock, "admin@example.com", users.ADMIN)
    path = urlsplit(sign_in_url(app, "admin@example.com")).path
    browser = client(app)
    assert browser.get(path).status_code == 200
    token = path.removeprefix("/login/")
    for spelling in spellings(token):
        assert browser.get(f"/login/{spelling}").status_code == 404, spelling
