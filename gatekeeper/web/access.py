"""Who may open what: staff sessions (Flask-Login) and the role × route rules, kept as data.

Deny by default: an endpoint that is neither public nor listed in ROUTE_ROLES is refused to
everyone, so a new page stays closed until someone decides who may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user

from gatekeeper.db.base import db
from gatekeeper.domain.errors import PermissionDenied
from gatekeeper.services import users

ROLES = users.ROLES
ADMIN, RELEASE_MANAGER, GOVERNANCE_REVIEWER = ROLES
ROLE_LABELS: dict[str | None, str] = {
    ADMIN: "Admin",
    RELEASE_MANAGER: "Release manager",
    GOVERNANCE_REVIEWER: "Governance reviewer",
    # Single sign-on mapped none of the person's groups to a role: no access.
    None: "No role",
}

STAFF = frozenset(ROLES)
MANAGERS = frozenset({ADMIN, RELEASE_MANAGER})
ADMINS = frozenset({ADMIN})
GOVERNANCE = frozenset({ADMIN, GOVERNANCE_REVIEWER})

# Reachable without a staff session: emailed sign-off, governance-review (and finding
# triage), problem-report, post-release confirmation and emergency approval links, sign-in
# itself (by link and by single sign-on), badges, the health check, static files, the demo
# mailbox, the JSON API (which has its own bearer tokens), /metrics (which has its own token or
# address allowlist, see web/observability.py) and the CI platforms' integrations (each
# verifies its caller's signature or shared secret).
PUBLIC_BLUEPRINTS = frozenset(
    {
        "auth",
        "oidc",
        "signoffs",
        "reviews",
        "reports",
        "confirmations",
        "emergencies",
        "badges",
        "health",
        "mailbox",
        "api",
        "metrics",
        "github",
        "gitlab",
        "azure_devops",
        # The calendar feed: its secret key in the URL is the credential (web/calendar.py).
        "calendar_feed",
    }
)
PUBLIC_ENDPOINTS = frozenset({"static"})

# endpoint -> roles allowed. Every other endpoint outside the public ones is refused.
ROUTE_ROLES: dict[str, frozenset[str]] = {
    "dashboard.index": STAFF,
    "calendar.index": STAFF,
    "calendar.create_key": STAFF,
    "calendar.revoke_key": STAFF,
    "checklists.index": STAFF,
    "checklists.application": STAFF,
    "checklists.show": STAFF,
    "checklists.diff": STAFF,
    "packages.new": MANAGERS,
    "packages.show": STAFF,
    "packages.timeline": STAFF,
    "packages.evidence_pack": STAFF,
    "packages.edit": MANAGERS,
    "packages.submit": MANAGERS,
    "packages.remind": MANAGERS,
    "packages.cancel": MANAGERS,
    "packages.release": MANAGERS,
    "packages.emergency": MANAGERS,
    "governance.index": GOVERNANCE,
    "governance.export": GOVERNANCE,
    "governance.export_rates": GOVERNANCE,
    "governance.failure_rate_chart": GOVERNANCE,
    "governance.lead_time_chart": GOVERNANCE,
    "governance.classes_chart": GOVERNANCE,
    "governance.remind": GOVERNANCE,
    "governance.findings_index": GOVERNANCE,
    "governance.finding": GOVERNANCE,
    "governance.email_triage_links": GOVERNANCE,
    # The service checks the decliner is a reviewer of that checklist (or an admin).
    "proposals.decline": GOVERNANCE,
    # Every staff role reads and writes learning reviews (the service checks the role again).
    "learning.index": STAFF,
    "learning.show": STAFF,
    "learning.open_review": STAFF,
    "learning.statement": STAFF,
    "learning.add_entry": STAFF,
    "learning.add_item": STAFF,
    "learning.close_item": STAFF,
    "outbox.index": ADMINS,
    "users.index": ADMINS,
    "users.create": ADMINS,
    "users.deactivate": ADMINS,
    "users.activate": ADMINS,
    "outbox.retry": ADMINS,
    "webhooks.index": ADMINS,
    "webhooks.create": ADMINS,
    "webhooks.rotate": ADMINS,
    "webhooks.remove": ADMINS,
    "webhooks.deliveries": ADMINS,
    "people.index": MANAGERS,
    "people.record": MANAGERS,
    "people.end": MANAGERS,
}

# Roles that see (and, with a managing role, act on) every package; anyone else only reaches
# the packages they assembled. Packages outside a user's reach answer 404, never 403.
SEES_ALL_PACKAGES = frozenset({ADMIN, GOVERNANCE_REVIEWER})

login_manager = LoginManager()
login_manager.session_protection = "basic"


@dataclass(frozen=True)
class StaffUser(UserMixin):
    """The signed-in person as the web layer sees them; loaded fresh on every request."""

    id: int
    email: str
    name: str
    role: str
    session_version: int

    def get_id(self) -> str:
        # The session version is part of the session identity: bumping it (deactivation,
        # "sign out everywhere") makes every existing session resolve to nobody.
        return f"{self.id}:{self.session_version}"

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    def may(self, endpoint: str) -> bool:
        return self.role in ROUTE_ROLES.get(endpoint, frozenset())

    @property
    def package_scope(self) -> str | None:
        """None: every package; else only packages assembled by this address."""
        return None if self.role in SEES_ALL_PACKAGES else self.email


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    raw_id, _, raw_version = user_id.partition(":")
    if not (raw_id.isdigit() and raw_version.isdigit()):
        return None
    found = users.session_user(db.session, int(raw_id), int(raw_version))
    if found is None or found.role is None:
        return None
    return StaffUser(found.id, found.email, found.name, found.role, found.session_version)


def signed_in() -> StaffUser:
    user = current_user._get_current_object()
    if not isinstance(user, StaffUser):
        raise PermissionDenied("sign in first")
    return user


def is_public(endpoint: str | None, blueprint: str | None) -> bool:
    return endpoint in PUBLIC_ENDPOINTS or blueprint in PUBLIC_BLUEPRINTS


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: no scheme, no host, no protocol-relative `//evil`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def guard() -> ResponseReturnValue | None:
    """Runs before every request: anonymous users go to sign-in, roles are checked."""
    endpoint = request.endpoint
    if endpoint is None or is_public(endpoint, request.blueprint):
        return None  # unknown URLs fall through to the 404/405 pages
    if not current_user.is_authenticated:
        wanted = request.full_path.rstrip("?") if request.method in ("GET", "HEAD") else None
        return redirect(url_for("auth.login", next=safe_next(wanted)))
    if not signed_in().may(endpoint):
        raise PermissionDenied("Your role does not allow this page or action.")
    return None


def register(app: Flask) -> None:
    login_manager.init_app(app)
    app.before_request(guard)

    @app.context_processor
    def roles() -> dict[str, object]:
        return {"role_labels": ROLE_LABELS}
