"""Scenario proposals: the form key users send from their emailed links, and the reviewers'
decline form. Adoption needs no form: an approved checklist version adopts."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import proposal as rules
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import proposals
from gatekeeper.web.access import signed_in

bp = Blueprint("proposals", __name__, url_prefix="/governance/proposals")


class ProposalForm(FlaskForm):
    # Which key-user validation of a sign-off link it is about; a confirmation link has one.
    request = IntegerField("Application", validators=[Optional()])
    scenario = StringField(
        "A scenario I rely on that is not listed",
        validators=[DataRequired(), Length(max=rules.MAX_SCENARIO_CHARS)],
    )
    notes = TextAreaField(
        "Why it matters to you (optional)", validators=[Length(max=rules.MAX_NOTES_CHARS)]
    )


class DeclineForm(FlaskForm):
    rationale = TextAreaField(
        "Why it is not adopted",
        validators=[
            DataRequired(message="say why the scenario is not adopted: the proposer reads it"),
            Length(max=rules.MAX_RATIONALE_CHARS),
        ],
    )


def proposed_page(
    back: str, *, ref: str | None = None, error: str | None = None
) -> ResponseReturnValue:
    """What a proposal from an emailed link answers; the link itself still awaits its answer."""
    page = render_template("proposals/proposed.html", back=back, ref=ref, error=error)
    return (page, 422) if error else page


@bp.post("/<int:proposal_id>/decline")
def decline(proposal_id: int) -> ResponseReturnValue:
    # Not found comes before the form is read: whatever is posted, a missing proposal is a 404.
    proposals.get_proposal(db.session, proposal_id)
    form = DeclineForm()
    if not form.validate_on_submit():
        raise ValidationFailed(
            "; ".join(e for errors in form.errors.values() for e in errors)
            or "the form expired; reload the page and try again"
        )
    user = signed_in()
    with unit_of_work(db.session, origin=request_origin()) as session:
        declined = proposals.decline(
            session,
            proposal_id,
            rationale=form.rationale.data or "",
            actor=user.email,
            role=user.role,
            clock=runtime(current_app).clock,
        )
        ref, application = declined.ref, declined.application.slug
    flash(f"{ref} declined; its proposer is told why.", "ok")
    return redirect(url_for("checklists.application", application=application))
