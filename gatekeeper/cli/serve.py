"""`gatekeeper serve`: the web app on Werkzeug's built-in server, tokens masked in its log."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from gatekeeper.web.serving import RedactingRequestHandler


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def command(host: str, port: int) -> None:
    """Run the web app with the built-in server (production: gunicorn gatekeeper.wsgi:app)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.echo(f"Gatekeeper on http://{host}:{port}/")
    run_simple(host, port, app, threaded=True, request_handler=RedactingRequestHandler)
