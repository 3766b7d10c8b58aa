"""HTML adapter: server-rendered pages, error pages and security headers."""

from __future__ import annotations

from flask import Flask, Response

from gatekeeper.app import runtime
from gatekeeper.web import badges, checklists, errors, health, mailbox, signoffs
from gatekeeper.web.limits import limiter

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def register_web(app: Flask) -> None:
    limiter.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(checklists.bp)
    app.register_blueprint(badges.bp)
    app.register_blueprint(signoffs.bp)
    if not runtime(app).settings.is_production:
        app.register_blueprint(mailbox.bp)
    errors.register(app)
    app.after_request(security_headers)
