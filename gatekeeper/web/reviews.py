"""Governance pages reached from emailed links, for reviewers with or without a staff account:
reviewing a checklist version, triaging a finding. GET shows, only the POST decides."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import LinkUnusable, TokenInvalid, ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import escapes, findings, link_outcomes, reviews
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.web import token_pages
from gatekeeper.web.governance import TRIAGE_CHOICES, TriageForm
from gatekeeper.web.limits import link_page

bp = Blueprint("reviews", __name__, url_prefix="/review")


class ReviewForm(FlaskForm):
    """Only carries the CSRF token; the decision fields are read below."""


def governance_settings() -> GovernanceSettings:
    return runtime(current_app).governance_settings()


token_pages.protect(bp)


def _unusable(token: str, error: LinkUnusable | TokenInvalid) -> ResponseReturnValue:
    """The link's own page: the review that settled it, or where the newer link is."""
    outcome = link_outcomes.review_dead_end(
        db.session,
        token,
        error,
        settings=governance_settings(),
        clock=runtime(current_app).clock,
    )
    return token_pages.unusable_page("reviews/unusable.html", error, outcome=outcome)


def _page(view: reviews.ReviewView, errors: dict[str, str], values: dict[str, object]) -> str:
    window = runtime(current_app).settings.never_fires_releases
    application_id = view.version.application_id
    return render_template(
        "reviews/review.html",
        view=view,
        form=ReviewForm(),
        errors=errors,
        values=values,
        escapes={
            "items": escapes.item_stats(db.session, window=window, application_id=application_id),
            "gaps": escapes.gaps(db.session, application_id=application_id),
            "window": window,
        },
    )


@bp.route("/<token>", methods=["GET", "HEAD"])
@link_page
def show(token: str) -> ResponseReturnValue:
    try:
        view = reviews.open_review(
            db.session, token, settings=governance_settings(), clock=runtime(current_app).clock
        )
    except (LinkUnusable, TokenInvalid) as error:
        return _unusable(token, error)
    if (refused := token_pages.refuse_other_session(view.link.reviewer)) is not None:
        return refused
    chosen = sorted(view.referenced)
    return _page(view, {}, {"addresses": chosen})


@bp.post("/<token>")
@link_page
def decide(token: str) -> ResponseReturnValue:
    form = ReviewForm()
    clock = runtime(current_app).clock
    try:
        view = reviews.open_review(db.session, token, settings=governance_settings(), clock=clock)
    except (LinkUnusable, TokenInvalid) as error:
        return _unusable(token, error)
    if (refused := token_pages.refuse_other_session(view.link.reviewer)) is not None:
        return refused
    decision = reviews.ReviewDecision(
        action=request.form.get("action", ""),
        consulted=request.form.get("consulted", ""),
        notes=request.form.get("notes", ""),
        addresses=tuple(request.form.getlist("addresses")),
    )
    errors = reviews.decision_errors(view, decision)
    values = {**request.form, "addresses": list(decision.addresses)}
    if not form.validate_on_submit() or errors:
        return _page(view, errors, values), 422
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            review = reviews.submit_review(
                session, token, decision, settings=governance_settings(), clock=clock
            )
            done = {
                "application": view.checklist.application,
                "version": view.version.version,
                "outcome": review.outcome,
                "reviewer": review.reviewer,
                "next_due_at": view.next_due_at,
            }
    except (LinkUnusable, TokenInvalid) as error:
        return _unusable(token, error)
    except ValidationFailed as error:
        return _page(view, {"action": error.message}, values), 422
    return render_template("reviews/done.html", **done)


# --- triaging a finding ----------------------------------------------------------------------


def _triage_page(view: findings.TriageView, form: TriageForm, error: str | None) -> str:
    return render_template(
        "reviews/finding.html",
        view=view,
        form=form,
        error=error,
        choices=TRIAGE_CHOICES,
        items=findings.triage_items(view.finding),
    )


@bp.route("/findings/<token>", methods=["GET", "HEAD"])
def finding(token: str) -> ResponseReturnValue:
    try:
        view = findings.open_triage(
            db.session, token, settings=governance_settings(), clock=runtime(current_app).clock
        )
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("reviews/triage_unusable.html", error)
    return _triage_page(view, TriageForm(), None)


@bp.post("/findings/<token>")
def triage(token: str) -> ResponseReturnValue:
    form = TriageForm()
    clock = runtime(current_app).clock
    try:
        view = findings.open_triage(db.session, token, settings=governance_settings(), clock=clock)
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("reviews/triage_unusable.html", error)
    if not form.validate_on_submit():
        return _triage_page(view, form, None), 422
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            triaged = findings.submit_triage(
                session,
                token,
                classification=form.classification.data or "",
                item=form.item.data or "",
                rationale=form.rationale.data or "",
                settings=governance_settings(),
                clock=clock,
            )
            done = {
                "ref": triaged.ref,
                "state": triaged.state,
                "classification": triaged.classification,
                "reviewer": triaged.triaged_by,
            }
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("reviews/triage_unusable.html", error)
    except ValidationFailed as error:
        return _triage_page(view, form, error.message), 422
    return render_template("reviews/triage_done.html", **done)
