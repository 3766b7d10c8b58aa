"""Endpoints CI platforms call: each adapter verifies the caller, reads the request and hands it
to services/deployment_gates; what Gatekeeper answers later goes through the outbox."""

from __future__ import annotations

import importlib

from flask import Flask
from flask_wtf.csrf import CSRFProtect

# Each module defines `bp`; imported here so that one line adds a platform.
MODULES = (
    "gatekeeper.integrations.github",
    "gatekeeper.integrations.gitlab",
    "gatekeeper.integrations.azure_devops",
)


def register_integrations(app: Flask, csrf: CSRFProtect) -> None:
    for name in MODULES:
        bp = importlib.import_module(name).bp
        # Safe: platforms authenticate by signature, shared secret or token, never by cookie.
        csrf.exempt(bp)
        app.register_blueprint(bp)
