"""WSGI entry point for production servers: `gunicorn gatekeeper.wsgi:app`."""

from gatekeeper.app import create_app

app = create_app()
