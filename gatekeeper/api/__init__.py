"""JSON API under /api/v1: bearer tokens only (the session cookie is ignored), error envelopes."""

from __future__ import annotations

from flask import Flask, Response, request
from flask_wtf.csrf import CSRFProtect

from gatekeeper.api import audit, checklists, gate_polls, packages
from gatekeeper.api.auth import URL_PREFIX, bp

# The endpoint modules attach their routes to `bp` when imported.
ENDPOINT_MODULES = (audit, checklists, packages)


def never_stored(response: Response) -> Response:
    """Every /api/v1 answer, errors included, is for its caller only and only now: a proxy must
    never serve one pipeline's gate to another, nor a gate that has changed since."""
    if request.path == URL_PREFIX or request.path.startswith(f"{URL_PREFIX}/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def register_api(app: Flask, csrf: CSRFProtect) -> None:
    # Safe because the API authenticates by bearer token only and never reads the session.
    csrf.exempt(bp)
    app.register_blueprint(bp)
    # On the app, not the blueprint: routing errors (an unknown /api/v1 path) belong to none.
    app.after_request(never_stored)
    # Last: it wraps the whole Flask application, after web/ has named the form targets.
    gate_polls.install(app)
