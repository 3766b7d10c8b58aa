"""The site icon: named by every page, served from static and at /favicon.ico, to anyone."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

ICO_HEADER = b"\x00\x00\x01\x00"


def fetch(client: FlaskClient, path: str) -> tuple[int, str, bytes]:
    # Static files are streamed: close each response, or the file handle leaks.
    with client.get(path) as response:
        return response.status_code, response.mimetype, response.get_data()


def test_pages_name_an_icon_and_browsers_find_one_at_favicon_ico(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/login")
    icons = re.findall(r'<link rel="icon" href="([^"]+)"', page.text)
    assert icons, "base.html links the icon"
    assert "img-src 'self'" in page.headers["Content-Security-Policy"]
    for href in icons:
        status, mimetype, data = fetch(client, href)
        assert (status, mimetype) == (200, "image/svg+xml"), href
        assert b"<svg" in data
    status, mimetype, data = fetch(client, "/favicon.ico")
    assert status == 200, "public: no sign-in redirect, no 404"
    assert mimetype in ("image/vnd.microsoft.icon", "image/x-icon")
    assert data.startswith(ICO_HEADER)
    assert fetch(client, "/static/gatekeeper.css")[0] == 200, "other files still served"
