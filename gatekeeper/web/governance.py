"""Staff governance pages: the checklist dashboard and its CSV, findings and their triage."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import escapes, findings, governance, learning_reviews, reviews
from gatekeeper.web import charts
from gatekeeper.web.access import signed_in

bp = Blueprint("governance", __name__, url_prefix="/governance")

FINDING_FILTERS = {
    "unresolved": finding_rules.UNRESOLVED,
    "all": (),
    **{state: (state,) for state in finding_rules.FINDING_STATES},
}


TRIAGE_CHOICES = {
    finding_rules.ESCAPED_PAST: "Escaped past an item: the item named below should have caught it",
    finding_rules.UNCOVERED: "Uncovered: no item covers it (a gap: a new item may be needed)",
    finding_rules.NOT_A_CHECKLIST_MATTER: "Not a checklist matter: the checklist should not change",
}
_CHOOSE = "Choose escaped past an item, uncovered, or not a checklist matter."


class TriageForm(FlaskForm):
    # Rendered as radio buttons and a select by the template (WTForms' choice fields are
    # mid-deprecation); the service checks the item against the checklist version.
    classification = StringField(
        "Class",
        validators=[DataRequired(message=_CHOOSE), AnyOf(list(TRIAGE_CHOICES), message=_CHOOSE)],
    )
    item = StringField("The item it escaped past", validators=[Length(max=129)])
    rationale = TextAreaField(
        "Rationale",
        description="Required when it is not a checklist matter: why the checklist should not "
        "change. Optional otherwise.",
        validators=[Length(max=finding_rules.MAX_RATIONALE_CHARS)],
    )


class ActionForm(FlaskForm):
    """Only carries the CSRF token."""


def _rows() -> list[governance.ChecklistRow]:
    rt = runtime(current_app)
    return governance.dashboard(
        db.session, now=rt.clock.now(), lead=rt.governance_settings().review_lead
    )


def _escapes() -> dict[str, object]:
    window = runtime(current_app).settings.never_fires_releases
    return {
        "items": escapes.item_stats(db.session, window=window),
        "gaps": escapes.gaps(db.session),
        "rates": escapes.change_failure_rates(db.session),
        "lead_times": escapes.lead_times(db.session),
        "classes": escapes.findings_by_class(db.session),
        "window": window,
    }


@bp.get("")
def index() -> ResponseReturnValue:
    late = learning_reviews.overdue(db.session, runtime(current_app).clock.now())
    return render_template(
        "governance/index.html", rows=_rows(), form=ActionForm(), escapes=_escapes(), late=late
    )


@bp.get("/change-failure-rate.csv")
def export_rates() -> Response:
    stamp = runtime(current_app).clock.now().strftime("%Y%m%d")
    return Response(
        escapes.rates_csv(escapes.change_failure_rates(db.session)),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="change-failure-rate-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.get("/charts/change-failure-rate.svg")
def failure_rate_chart() -> Response:
    return charts.svg_response(charts.failure_rate_chart(escapes.change_failure_rates(db.session)))


@bp.get("/charts/lead-time.svg")
def lead_time_chart() -> Response:
    return charts.svg_response(charts.lead_time_chart(escapes.lead_times(db.session)))


@bp.get("/charts/findings-by-class.svg")
def classes_chart() -> Response:
    return charts.svg_response(charts.classes_chart(escapes.findings_by_class(db.session)))


@bp.get("/checklists.csv")
def export() -> Response:
    stamp = runtime(current_app).clock.now().strftime("%Y%m%d")
    return Response(
        governance.dashboard_csv(_rows()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="checklist-governance-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


@bp.post("/checklists/<application>/remind")
def remind(application: str) -> ResponseReturnValue:
    if not ActionForm().validate_on_submit():
        raise ValidationFailed("the form expired; reload the page and try again")
    rt = runtime(current_app)
    with unit_of_work(db.session, origin=request_origin()) as session:
        version, emailed = reviews.resend_review_links(
            session, application, settings=rt.governance_settings(), clock=rt.clock
        )
    flash(
        f"Review links for {application} v{version} emailed to {', '.join(emailed)}; "
        "their earlier links no longer work.",
        "ok",
    )
    return redirect(url_for("governance.index"))


@bp.get("/findings")
def findings_index() -> ResponseReturnValue:
    chosen = request.args.get("state", "unresolved")
    if chosen not in FINDING_FILTERS:
        chosen = "unresolved"
    listed = findings.list_findings(
        db.session,
        states=FINDING_FILTERS[chosen],
        application=request.args.get("application") or None,
    )
    return render_template(
        "governance/findings.html", findings=listed, chosen=chosen, filters=FINDING_FILTERS
    )


@bp.route("/findings/<int:finding_id>", methods=["GET", "POST"])
def finding(finding_id: int) -> ResponseReturnValue:
    found = findings.get_finding(db.session, finding_id)
    form = TriageForm()
    error = None
    if form.validate_on_submit():
        try:
            with unit_of_work(db.session, origin=request_origin()) as session:
                triaged = findings.triage(
                    session,
                    finding_id,
                    classification=form.classification.data or "",
                    item=form.item.data or "",
                    actor=signed_in().email,
                    rationale=form.rationale.data or "",
                    clock=runtime(current_app).clock,
                )
                message = f"{triaged.ref} {triaged.state}."
        except ValidationFailed as failed:
            error = failed.message
        else:
            flash(message, "ok")
            return redirect(url_for("governance.finding", finding_id=finding_id))
        found = findings.get_finding(db.session, finding_id)
    status = 422 if form.is_submitted() else 200
    return render_template(
        "governance/finding.html",
        finding=found,
        form=form,
        error=error,
        choices=TRIAGE_CHOICES,
        items=findings.triage_items(found),
    ), status


@bp.post("/findings/<int:finding_id>/links")
def email_triage_links(finding_id: int) -> ResponseReturnValue:
    """Fresh triage links for the finding's reviewers (say, after theirs expired)."""
    if not ActionForm().validate_on_submit():
        raise ValidationFailed("the form expired; reload the page and try again")
    rt = runtime(current_app)
    with unit_of_work(db.session, origin=request_origin()) as session:
        emailed = findings.resend_triage_links(
            session, finding_id, settings=rt.governance_settings(), clock=rt.clock
        )
    flash(
        f"Triage links for {finding_rules.finding_ref(finding_id)} emailed to "
        f"{', '.join(emailed)}; their earlier links no longer work.",
        "ok",
    )
    return redirect(url_for("governance.finding", finding_id=finding_id))
