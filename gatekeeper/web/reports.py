""" "Report a problem found after release" pages, from the release email: no account needed."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import LinkUnusable, TokenInvalid, ValidationFailed
from gatekeeper.domain.finding import MAX_REPORT_CHARS, Report
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import findings, link_outcomes
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.web import token_pages
from gatekeeper.web.limits import link_page

bp = Blueprint("reports", __name__, url_prefix="/report")

_TEXT = [DataRequired(message="This is needed."), Length(max=MAX_REPORT_CHARS)]


# Rendered as a <select> of the release's applications by the template; the service checks the
# value is one of them. Made before ProblemForm's fields: WTForms orders fields by creation, and
# the question comes first on the page and in the error summary.
_APPLICATION = StringField(
    "Which application is it about?",
    validators=[DataRequired(message="Choose the application."), Length(max=64)],
)


class ProblemForm(FlaskForm):
    """What happened, its impact, what the checklist could have caught — never who. The release
    email's report and the go-live confirmation's "something is wrong" answer share it."""

    what_happened = TextAreaField(
        "What happened?",
        description="What you saw, when, and what you were doing. Your own words are fine.",
        validators=_TEXT,
    )
    impact = TextAreaField(
        "What was the impact?",
        description="Who or what was affected, and how badly: customers, money, time, data.",
        validators=_TEXT,
    )
    impact_level = SelectField(
        "How bad is it?",
        choices=[
            SelectChoice("low", "Low: an annoyance, there is a way around it"),
            SelectChoice("medium", "Medium: work is slowed or some people are stuck"),
            SelectChoice("high", "High: customers, money or data are affected"),
        ],
        default="medium",
        description="A high impact opens a blameless learning review of the release.",
    )
    could_have_caught = TextAreaField(
        "What could the release checklist have caught?",
        description="A check or a scenario that, had someone tried it before the release, "
        "would have shown the problem.",
        validators=_TEXT,
    )


class ReportForm(ProblemForm):
    """The release email's report names the application too (a release holds several)."""

    application = _APPLICATION


def governance_settings() -> GovernanceSettings:
    return runtime(current_app).governance_settings()


token_pages.protect(bp)


def _unusable(token: str, error: LinkUnusable | TokenInvalid) -> ResponseReturnValue:
    """The link's own page: the report it filed and what became of it, or whom to tell."""
    outcome = link_outcomes.report_dead_end(
        db.session,
        token,
        error,
        settings=governance_settings(),
        clock=runtime(current_app).clock,
    )
    return token_pages.unusable_page("reports/unusable.html", error, outcome=outcome)


def _form(view: findings.ReportView) -> ReportForm:
    form = ReportForm()
    if not form.is_submitted():
        form.application.data = view.suggested or ""
    return form


@bp.route("/<token>", methods=["GET", "HEAD", "POST"])
@link_page
def report(token: str) -> ResponseReturnValue:
    clock = runtime(current_app).clock
    try:
        view = findings.open_report(db.session, token, settings=governance_settings(), clock=clock)
    except (LinkUnusable, TokenInvalid) as error:
        return _unusable(token, error)
    if (refused := token_pages.refuse_other_session(view.link.recipient)) is not None:
        return refused
    form = _form(view)
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("reports/report.html", view=view, form=form), status
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            filed = findings.submit_report(
                session,
                token,
                application=form.application.data or "",
                report=Report(
                    form.what_happened.data or "",
                    form.impact.data or "",
                    form.could_have_caught.data or "",
                    form.impact_level.data or "",
                ),
                settings=governance_settings(),
                clock=clock,
            )
            ref, application = filed.ref, filed.application.slug
    except (LinkUnusable, TokenInvalid) as error:
        return _unusable(token, error)
    except ValidationFailed as error:
        return render_template(
            "reports/report.html", view=view, form=form, error=error.message
        ), 422
    return render_template(
        "reports/done.html", ref=ref, application=application, package_key=view.package.key
    )
