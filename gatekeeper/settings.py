"""Typed settings read once from GATEKEEPER_* environment variables; bad values fail fast."""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper.domain.sso import FALLBACK_ADMINS, FALLBACKS, parse_role_map

ENVIRONMENTS = ("development", "testing", "production")
# Written by `gatekeeper demo` into the instance folder: the URL it serves on.
DEMO_BASE_URL_FILE = "demo-base-url"
WITNESS_FILE_NAME = "audit-witness.json"
REVIEW_POLICIES = ("block", "warn")
LOG_FORMATS = ("text", "json")


class SettingsError(Exception):
    """A configuration value is missing or wrong; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = ""
    secret_keys: tuple[str, ...] = ()
    # Keys of the MACs on sign-offs and governance reviews (first signs, any verifies); kept
    # out of the database so that write access to it alone cannot make a record count.
    record_keys: tuple[str, ...] = ()
    # PEM files of the Ed25519 keys of the audit trail: the first (a private key) signs every
    # new event, the others (private or public) only verify events signed before a rotation.
    audit_signing_key_files: tuple[str, ...] = ()
    # Where this host keeps the newest audit head it has seen (services/head_witness.py);
    # "" until load_settings puts it in the instance folder.
    audit_witness_file: str = ""
    base_url: str = "http://127.0.0.1:5000"
    mail_server: str = "127.0.0.1"
    mail_port: int = 8025
    mail_username: str | None = None
    mail_password: str | None = None
    mail_use_tls: bool = False
    mail_use_ssl: bool = False
    mail_sender: str = "Gatekeeper <gatekeeper@localhost>"
    mail_timeout: float = 10.0
    signoff_ttl_hours: int = 168
    reminder_after_hours: int = 48
    escalate_after_hours: int = 96
    overdue_review_policy: str = "block"
    review_lead_days: int = 14
    finding_warn_days: int = 7
    never_fires_releases: int = 20
    learning_review_due_hours: int = 48
    sqlite_busy_timeout: float = 5.0
    rate_limit_storage: str = "memory://"
    # Every `checklists sync` must name who is accountable (--author or an owned CI token);
    # load_settings turns it on in production unless it is set.
    sync_require_author: bool = False
    # Single sign-on (OpenID Connect); off while oidc_issuer is None. See docs/sso.md.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = "groups"
    oidc_role_map: Mapping[str, str] = field(default_factory=dict)
    oidc_magic_link_fallback: str = FALLBACK_ADMINS
    oidc_require_verified_email: bool = True
    # Outbound webhooks: private, loopback and link-local receivers are refused unless allowed
    # (a receiver inside the network is a deliberate choice; tests need loopback).
    webhook_allow_private: bool = False
    webhook_timeout: float = 10.0
    # Operators: log lines as text or one JSON object a line; who may scrape /metrics (a bearer
    # token, or client addresses; closed while neither is set). See docs/production.md.
    log_format: str = "text"
    metrics_token: str | None = None
    metrics_allow: tuple[IPv4Network | IPv6Network, ...] = ()
    # Gatekeeper as a GitHub App answering deployment protection rules; off while
    # github_app_id is None. See docs/ci.md.
    github_app_id: str | None = None
    github_private_key_file: str | None = None
    github_webhook_secret: str | None = None
    github_api_url: str = "https://api.github.com"
    # The shared secret Azure DevOps' Invoke REST API check sends; off while None.
    azure_devops_secret: str | None = None
    # GitLab deployment approvals by Gatekeeper's bot user; off while gitlab_token is None.
    gitlab_url: str = "https://gitlab.com"
    gitlab_token: str | None = None
    gitlab_webhook_secret: str | None = None
    # Blocked deployments fire no webhook: the worker looks for them this often.
    gitlab_poll_seconds: int = 60
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The GATEKEEPER_* variables that were set: everything else is a default, which a command
    # may fill in better (the demo points links at the port it serves on).
    configured: frozenset[str] = frozenset()

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def sso_enabled(self) -> bool:
        return self.oidc_issuer is not None


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; use true or false")


def _int(name: str, raw: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={value} must be at most {maximum}")
    return value


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={value} must be greater than 0")
    return value


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r} must be one of: {', '.join(choices)}")
    return raw


def _url(name: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"{name}={raw!r} must be an absolute http(s) URL")
    return raw.rstrip("/")


def _database_url(name: str, raw: str) -> str:
    if not raw.startswith(("sqlite:", "postgresql")):
        raise SettingsError(
            f"{name}={raw!r}: Gatekeeper supports sqlite:///PATH and postgresql+psycopg://… URLs"
        )
    if raw.startswith("postgresql://") or raw.startswith("postgres://"):
        # psycopg 3 is the driver we ship; the bare scheme would ask SQLAlchemy for psycopg2.
        raw = "postgresql+psycopg://" + raw.split("://", 1)[1]
    return raw


def _issuer(name: str, raw: str) -> str:
    """Kept exactly as given: an issuer is compared character for character with the one the
    provider names (some end in a slash)."""
    _url(name, raw)
    if urlsplit(raw).query or urlsplit(raw).fragment:
        raise SettingsError(f"{name}={raw!r}: an issuer URL has no query or fragment")
    return raw


def _scopes(name: str, raw: str) -> str:
    scopes = raw.split()
    if "openid" not in scopes:
        raise SettingsError(f"{name}={raw!r} must include openid")
    return " ".join(scopes)


def _role_map(name: str, raw: str) -> dict[str, str]:
    try:
        return parse_role_map(raw)
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise SettingsError(f"{name} is empty")
    return raw.strip()


def _keys(name: str, raw: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise SettingsError(f"{name} is empty; give one or more comma-separated keys")
    for key in keys:
        if len(key) < 32:
            raise SettingsError(f"{name}: every key needs at least 32 characters")
    return keys


def _metrics_token(name: str, raw: str) -> str:
    token = raw.strip()
    if len(token) < 32:
        raise SettingsError(f"{name} needs at least 32 characters (a random token)")
    return token


def _networks(name: str, raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    found = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            found.append(ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(
                f"{name}: {part!r} is not an address or a network (10.0.0.0/8, ::1)"
            ) from None
    if not found:
        raise SettingsError(f"{name} is empty; give addresses or networks, comma-separated")
    return tuple(found)


def _files(name: str, raw: str) -> tuple[str, ...]:
    files = tuple(f.strip() for f in raw.split(",") if f.strip())
    if not files:
        raise SettingsError(f"{name} is empty; give one or more comma-separated key files")
    for file in files:
        if not Path(file).is_file():
            raise SettingsError(f"{name}: {file} is not a readable file")
    return files


_PARSERS: dict[str, tuple[str, Any]] = {
    "GATEKEEPER_ENV": ("env", lambda n, v: _choice(n, v, ENVIRONMENTS)),
    "GATEKEEPER_DATABASE_URL": ("database_url", _database_url),
    "GATEKEEPER_SECRET_KEYS": ("secret_keys", _keys),
    "GATEKEEPER_RECORD_KEYS": ("record_keys", _keys),
    "GATEKEEPER_AUDIT_SIGNING_KEY_FILE": ("audit_signing_key_files", _files),
    "GATEKEEPER_AUDIT_WITNESS_FILE": ("audit_witness_file", _text),
    "GATEKEEPER_BASE_URL": ("base_url", _url),
    "GATEKEEPER_MAIL_SERVER": ("mail_server", lambda n, v: v),
    "GATEKEEPER_MAIL_PORT": ("mail_port", lambda n, v: _int(n, v, minimum=1)),
    "GATEKEEPER_MAIL_USERNAME": ("mail_username", lambda n, v: v or None),
    "GATEKEEPER_MAIL_PASSWORD": ("mail_password", lambda n, v: v or None),
    "GATEKEEPER_MAIL_USE_TLS": ("mail_use_tls", _bool),
    "GATEKEEPER_MAIL_USE_SSL": ("mail_use_ssl", _bool),
    "GATEKEEPER_MAIL_SENDER": ("mail_sender", lambda n, v: v),
    "GATEKEEPER_MAIL_TIMEOUT": ("mail_timeout", _float),
    "GATEKEEPER_SIGNOFF_TTL_HOURS": ("signoff_ttl_hours", lambda n, v: _int(n, v, minimum=1)),
    "GATEKEEPER_REMINDER_AFTER_HOURS": (
        "reminder_after_hours",
        lambda n, v: _int(n, v, minimum=1),
    ),
    "GATEKEEPER_ESCALATE_AFTER_HOURS": (
        "escalate_after_hours",
        lambda n, v: _int(n, v, minimum=1),
    ),
    "GATEKEEPER_OVERDUE_REVIEW_POLICY": (
        "overdue_review_policy",
        lambda n, v: _choice(n, v, REVIEW_POLICIES),
    ),
    # Days before a scheduled checklist review is due that its reviewers are first emailed.
    "GATEKEEPER_REVIEW_LEAD_DAYS": (
        "review_lead_days",
        lambda n, v: _int(n, v, minimum=0, maximum=3650),
    ),
    # Days a post-release finding may stay untriaged before gates of its application warn.
    "GATEKEEPER_FINDING_WARN_DAYS": (
        "finding_warn_days",
        lambda n, v: _int(n, v, minimum=0, maximum=3650),
    ),
    # A checklist item that has not failed in this many releases is flagged "never fires".
    "GATEKEEPER_NEVER_FIRES_RELEASES": (
        "never_fires_releases",
        lambda n, v: _int(n, v, minimum=1, maximum=10000),
    ),
    # Hours after its trigger (a high-impact finding) that a learning review is due.
    "GATEKEEPER_LEARNING_REVIEW_DUE_HOURS": (
        "learning_review_due_hours",
        lambda n, v: _int(n, v, minimum=1, maximum=24 * 366),
    ),
    "GATEKEEPER_SQLITE_BUSY_TIMEOUT": ("sqlite_busy_timeout", _float),
    "GATEKEEPER_RATE_LIMIT_STORAGE": ("rate_limit_storage", lambda n, v: v),
    # Git's author field is whatever the committer typed: production names a person instead.
    "GATEKEEPER_SYNC_REQUIRE_AUTHOR": ("sync_require_author", _bool),
    "GATEKEEPER_OIDC_ISSUER": ("oidc_issuer", _issuer),
    "GATEKEEPER_OIDC_CLIENT_ID": ("oidc_client_id", _text),
    "GATEKEEPER_OIDC_CLIENT_SECRET": ("oidc_client_secret", _text),
    "GATEKEEPER_OIDC_SCOPES": ("oidc_scopes", _scopes),
    "GATEKEEPER_OIDC_ROLE_CLAIM": ("oidc_role_claim", _text),
    "GATEKEEPER_OIDC_ROLE_MAP": ("oidc_role_map", _role_map),
    "GATEKEEPER_OIDC_MAGIC_LINK_FALLBACK": (
        "oidc_magic_link_fallback",
        lambda n, v: _choice(n, v, FALLBACKS),
    ),
    "GATEKEEPER_OIDC_REQUIRE_VERIFIED_EMAIL": ("oidc_require_verified_email", _bool),
    "GATEKEEPER_WEBHOOK_ALLOW_PRIVATE": ("webhook_allow_private", _bool),
    "GATEKEEPER_WEBHOOK_TIMEOUT": ("webhook_timeout", _float),
    "GATEKEEPER_LOG_FORMAT": ("log_format", lambda n, v: _choice(n, v, LOG_FORMATS)),
    "GATEKEEPER_METRICS_TOKEN": ("metrics_token", _metrics_token),
    "GATEKEEPER_METRICS_ALLOW": ("metrics_allow", _networks),
    "GATEKEEPER_GITHUB_APP_ID": ("github_app_id", _text),
    "GATEKEEPER_GITHUB_PRIVATE_KEY_FILE": ("github_private_key_file", _text),
    "GATEKEEPER_GITHUB_WEBHOOK_SECRET": ("github_webhook_secret", _text),
    "GATEKEEPER_GITHUB_API_URL": ("github_api_url", lambda n, v: v.rstrip("/")),
    "GATEKEEPER_AZURE_DEVOPS_SECRET": ("azure_devops_secret", _text),
    "GATEKEEPER_GITLAB_URL": ("gitlab_url", lambda n, v: v.rstrip("/")),
    "GATEKEEPER_GITLAB_TOKEN": ("gitlab_token", _text),
    "GATEKEEPER_GITLAB_WEBHOOK_SECRET": ("gitlab_webhook_secret", _text),
    "GATEKEEPER_GITLAB_POLL_SECONDS": (
        "gitlab_poll_seconds",
        lambda n, v: _int(n, v, minimum=1, maximum=86400),
    ),
}
_OIDC_REQUIRED = ("GATEKEEPER_OIDC_CLIENT_ID", "GATEKEEPER_OIDC_ROLE_MAP")
# Read by other parts (CLI client, test suite), not by the server; known so they are not typos.
_CLIENT_VARIABLES = (
    "GATEKEEPER_URL",
    "GATEKEEPER_TOKEN",
    "GATEKEEPER_TEST_DATABASE_URL",
    "GATEKEEPER_SCREENSHOTS",
)
KNOWN_VARIABLES = (*_PARSERS, *_CLIENT_VARIABLES)


def load_settings(environ: Mapping[str, str], instance_path: Path) -> Settings:
    """Build Settings from the environment; development fills in a local database and keys."""
    for name in environ:
        if name.startswith("GATEKEEPER_") and name not in KNOWN_VARIABLES:
            # Compare without the shared prefix, or every name looks close to every other.
            suffixes = [known.removeprefix("GATEKEEPER_") for known in KNOWN_VARIABLES]
            close = difflib.get_close_matches(name.removeprefix("GATEKEEPER_"), suffixes, n=1)
            hint = f"; did you mean GATEKEEPER_{close[0]}?" if close else ""
            raise SettingsError(f"unknown setting {name}{hint}")
    values: dict[str, Any] = {}
    for name, (attribute, parse) in _PARSERS.items():
        if name in environ:
            values[attribute] = parse(name, environ[name])
    values.setdefault("sync_require_author", values.get("env") == "production")
    settings = Settings(**values, configured=frozenset(n for n in _PARSERS if n in environ))
    if settings.mail_use_tls and settings.mail_use_ssl:
        raise SettingsError(
            "GATEKEEPER_MAIL_USE_TLS and GATEKEEPER_MAIL_USE_SSL exclude each other"
        )
    _check_oidc(environ, settings)
    if not settings.audit_witness_file:
        settings = replace(settings, audit_witness_file=str(instance_path / WITNESS_FILE_NAME))
    if settings.is_production:
        missing = [
            name
            for name in (
                "GATEKEEPER_SECRET_KEYS",
                "GATEKEEPER_BASE_URL",
                "GATEKEEPER_DATABASE_URL",
                "GATEKEEPER_MAIL_SERVER",
                "GATEKEEPER_MAIL_SENDER",
                "GATEKEEPER_RECORD_KEYS",
                "GATEKEEPER_AUDIT_SIGNING_KEY_FILE",
            )
            if name not in environ
        ]
        if missing:
            raise SettingsError(f"production needs these settings: {', '.join(missing)}")
        return settings
    if not settings.database_url:
        settings = replace(
            settings, database_url=f"sqlite:///{instance_path / 'gatekeeper.sqlite'}"
        )
    if not settings.secret_keys:
        settings = replace(settings, secret_keys=(_development_key(instance_path),))
    if not settings.record_keys:
        settings = replace(settings, record_keys=(_development_key(instance_path, "record_key"),))
    if not settings.audit_signing_key_files:
        settings = replace(
            settings, audit_signing_key_files=(str(_development_audit_key(instance_path)),)
        )
    served = instance_path / DEMO_BASE_URL_FILE
    if "GATEKEEPER_BASE_URL" not in environ and served.is_file():
        # Where `gatekeeper demo` serves: links that other commands email point there too.
        settings = replace(settings, base_url=_url(str(served), served.read_text().strip()))
    return settings


def _check_oidc(environ: Mapping[str, str], settings: Settings) -> None:
    """Single sign-on is all or nothing: an issuer needs a client and a role map, and the other
    OIDC settings mean nothing without an issuer."""
    oidc_names = [n for n in _PARSERS if n.startswith("GATEKEEPER_OIDC_") and n in environ]
    if not settings.sso_enabled:
        if oidc_names:
            raise SettingsError(
                f"{', '.join(oidc_names)} set but GATEKEEPER_OIDC_ISSUER is not: set the "
                "issuer to turn single sign-on on, or remove them"
            )
        return
    missing = [n for n in _OIDC_REQUIRED if n not in environ]
    if settings.is_production:
        if "GATEKEEPER_OIDC_CLIENT_SECRET" not in environ:
            missing.append("GATEKEEPER_OIDC_CLIENT_SECRET")
        if not str(settings.oidc_issuer).startswith("https://"):
            raise SettingsError("GATEKEEPER_OIDC_ISSUER must be an https URL in production")
    if missing:
        raise SettingsError(
            f"single sign-on (GATEKEEPER_OIDC_ISSUER) needs these settings: {', '.join(missing)}"
        )


def _development_key(instance_path: Path, name: str = "secret_key") -> str:
    """A per-checkout key kept in the instance folder so links survive restarts in development."""
    key_file = instance_path / name
    if not key_file.exists():
        _create_once(key_file, secrets.token_urlsafe(48).encode())
    return key_file.read_text().strip()


def _development_audit_key(instance_path: Path) -> Path:
    """A per-checkout Ed25519 key for the audit trail, kept in the instance folder like the
    other development keys (production names its own file)."""
    key_file = instance_path / "audit_signing_key.pem"
    if not key_file.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _create_once(key_file, pem)
    return key_file


def _create_once(key_file: Path, content: bytes) -> None:
    """Write a key file whole, readable by its owner only; when several processes start at
    once (gunicorn workers) the first one's key wins and every process reads that one."""
    instance_path = key_file.parent
    instance_path.mkdir(parents=True, exist_ok=True)
    staged = instance_path / f".{key_file.name}.{os.getpid()}"
    staged.write_bytes(content)
    staged.chmod(0o600)
    try:
        os.link(staged, key_file)
    except FileExistsError:
        pass
    finally:
        staged.unlink()
