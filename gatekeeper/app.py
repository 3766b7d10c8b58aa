"""The application factory: settings, extensions and blueprints; nothing runs at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import Engine

from gatekeeper.db.base import db
from gatekeeper.db.engine import configure_engine
from gatekeeper.domain.clock import Clock, SystemClock
from gatekeeper.notify.worker import mail
from gatekeeper.runtime import Runtime
from gatekeeper.services import head_witness, integrity
from gatekeeper.settings import Settings, SettingsError, load_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
migrate = Migrate()
csrf = CSRFProtect()


def create_app(
    overrides: Mapping[str, Any] | None = None,
    *,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    instance_path: str | None = None,
) -> Flask:
    # `instance/` of the directory the command runs in, as the README says; not Flask's default
    # next to the package, which an editable install would share between every working copy.
    app = Flask(
        __name__,
        instance_path=instance_path or str(Path.cwd() / "instance"),
        instance_relative_config=True,
    )
    settings = load_settings(os.environ if environ is None else environ, Path(app.instance_path))
    if overrides:
        settings = replace(settings, **overrides)
    app.extensions["gatekeeper"] = Runtime(settings, clock or SystemClock())
    app.config.update(
        SECRET_KEY=settings.secret_keys[-1],
        SECRET_KEY_FALLBACKS=list(settings.secret_keys[:-1]),
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        # A network database may drop idle connections; a SQLite file cannot, and pinging it
        # would add a query to every request.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": not settings.database_url.startswith("sqlite")},
        MAX_CONTENT_LENGTH=1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
        JSON_SORT_KEYS=False,
        WTF_CSRF_TIME_LIMIT=None,
        MAIL_SERVER=settings.mail_server,
        MAIL_PORT=settings.mail_port,
        MAIL_USERNAME=settings.mail_username,
        MAIL_PASSWORD=settings.mail_password,
        MAIL_USE_TLS=settings.mail_use_tls,
        MAIL_USE_SSL=settings.mail_use_ssl,
        MAIL_DEFAULT_SENDER=settings.mail_sender,
        # Flask-Mail would silently drop mail when TESTING is on; tests talk real SMTP instead.
        MAIL_SUPPRESS_SEND=False,
        RATELIMIT_STORAGE_URI=settings.rate_limit_storage,
    )
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(MIGRATIONS_DIR), compare_type=True, render_as_batch=True
    )
    with app.app_context():
        configure_engine(db.engine, busy_timeout=settings.sqlite_busy_timeout)
        integrity.bind(db.engine, _keyring(settings))
        head_witness.bind(db.engine, _witness(settings, db.engine))

    mail.init_app(app)
    csrf.init_app(app)

    from gatekeeper.api import register_api
    from gatekeeper.integrations import register_integrations
    from gatekeeper.web import register_web

    register_web(app)
    register_api(app, csrf)
    register_integrations(app, csrf)
    return app


def _witness(settings: Settings, engine: Engine) -> head_witness.HeadWitness:
    try:
        return head_witness.HeadWitness(
            Path(settings.audit_witness_file),
            engine.url.render_as_string(hide_password=True),
            adopt_other_databases=not settings.is_production,
        )
    except head_witness.WitnessFileError as error:
        raise SettingsError(f"GATEKEEPER_AUDIT_WITNESS_FILE: {error}") from None


def _keyring(settings: Settings) -> integrity.Keyring:
    records = integrity.RecordKeys(settings.record_keys)
    try:
        audit_keys = integrity.AuditKeys.from_files(settings.audit_signing_key_files)
    except ValueError as error:
        raise SettingsError(f"GATEKEEPER_AUDIT_SIGNING_KEY_FILE: {error}") from None
    return integrity.Keyring(records, audit_keys)
