"""HTML adapter: server-rendered pages, error pages and security headers."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Response, current_app

from gatekeeper import http_policy
from gatekeeper.domain import finding as finding_rules
from gatekeeper.runtime import runtime
from gatekeeper.services import labels
from gatekeeper.web import (
    access,
    auth,
    badges,
    calendar,
    checklists,
    confirmations,
    converters,
    dashboard,
    emergencies,
    errors,
    governance,
    health,
    learning,
    mailbox,
    observability,
    oidc,
    outbox,
    packages,
    people,
    proposals,
    reports,
    reviews,
    signoffs,
    users,
    webhooks,
)
from gatekeeper.web.form_errors import form_problems
from gatekeeper.web.inputs import reject_unstorable_text
from gatekeeper.web.limits import limiter
from gatekeeper.web.session_cookie import SessionCookieWhenSent


def security_headers(response: Response) -> Response:
    for name, value in http_policy.security_headers(
        current_app.extensions.get(http_policy.FORM_TARGETS, ())
    ):
        response.headers.setdefault(name, value)
    return response


def register_web(app: Flask) -> None:
    observability.register(app)
    converters.register(app)
    limiter.init_app(app)
    # Template helpers: audit events by name (the timeline) and the entries of error summaries.
    app.add_template_filter(labels.action_label, "action_label")
    app.add_template_global(form_problems)
    app.add_template_filter(finding_rules.class_label, "finding_class")
    # Registered first, so hostile text is refused before access checks or any query run.
    app.before_request(reject_unstorable_text)
    # Staff sessions end after a working day; the cookie is signed, HttpOnly and SameSite=Lax.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=12)
    app.session_interface = SessionCookieWhenSent()
    access.register(app)
    app.register_blueprint(health.bp)
    # Browsers ask every site for /favicon.ico; it is a static file, public like the others.
    app.add_url_rule("/favicon.ico", endpoint="static", defaults={"filename": "favicon.ico"})
    app.register_blueprint(auth.bp)
    app.extensions[http_policy.FORM_TARGETS] = oidc.register(app)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(packages.bp)
    app.register_blueprint(checklists.bp)
    app.register_blueprint(calendar.bp)
    app.register_blueprint(calendar.feed_bp)
    app.register_blueprint(outbox.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(people.bp)
    app.register_blueprint(badges.bp)
    app.register_blueprint(signoffs.bp)
    app.register_blueprint(governance.bp)
    app.register_blueprint(proposals.bp)
    app.register_blueprint(reviews.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(learning.bp)
    app.register_blueprint(confirmations.bp)
    app.register_blueprint(emergencies.bp)
    if not runtime(app).settings.is_production:
        app.register_blueprint(mailbox.bp)
    errors.register(app)
    app.after_request(security_headers)
