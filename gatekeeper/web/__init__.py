"""HTML adapter: server-rendered pages, error pages and security headers."""

from __future__ import annotations

from flask import Flask

from gatekeeper.web import checklists, errors, health


def register_web(app: Flask) -> None:
    app.register_blueprint(health.bp)
    app.register_blueprint(checklists.bp)
    errors.register(app)
