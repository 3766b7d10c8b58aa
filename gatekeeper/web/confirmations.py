""" "Still working after go-live?" pages, from the confirmation email: no account needed."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import confirmation as rules
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import LinkUnusable, TokenInvalid, ValidationFailed
from gatekeeper.domain.finding import Report
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import confirmations, proposal_links
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.web import token_pages
from gatekeeper.web.limits import link_page
from gatekeeper.web.proposals import ProposalForm, proposed_page
from gatekeeper.web.reports import ProblemForm

bp = Blueprint("confirmations", __name__, url_prefix="/confirm")
token_pages.protect(bp)


class WorksForm(FlaskForm):
    """Only the CSRF token: the button itself is the answer."""


def _opened(
    token: str, settings: GovernanceSettings, clock: Clock
) -> confirmations.ConfirmationView | ResponseReturnValue:
    """What the link shows, or the page that says why it cannot be used (or not by this
    session)."""
    try:
        view = confirmations.open_confirmation(db.session, token, settings=settings, clock=clock)
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("confirmations/unusable.html", error)
    refused = token_pages.refuse_other_session(view.link.key_user)
    return view if refused is None else refused


@bp.route("/<token>", methods=["GET", "HEAD", "POST"])
@link_page
def confirm(token: str) -> ResponseReturnValue:
    rt = runtime(current_app)
    settings = rt.governance_settings()
    view = _opened(token, settings, rt.clock)
    if not isinstance(view, confirmations.ConfirmationView):
        return view
    answer = request.form.get("answer") if request.method == "POST" else None
    works, problem = WorksForm(), ProblemForm()
    chosen = works if answer == rules.WORKS else problem
    if answer not in rules.ANSWERS or not chosen.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template(
            "confirmations/confirm.html",
            view=view,
            works=works,
            form=problem,
            proposal=ProposalForm(formdata=None),
        ), status
    report = (
        Report(
            problem.what_happened.data or "",
            problem.impact.data or "",
            problem.could_have_caught.data or "",
            problem.impact_level.data or "",
        )
        if answer == rules.PROBLEM
        else None
    )
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            filed = confirmations.submit_confirmation(
                session, token, answer=answer, report=report, settings=settings, clock=rt.clock
            )
            ref = filed.ref if filed else None
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("confirmations/unusable.html", error)
    except ValidationFailed as error:
        return render_template(
            "confirmations/confirm.html",
            view=view,
            works=works,
            form=problem,
            proposal=ProposalForm(formdata=None),
            error=error.message,
        ), 422
    return render_template("confirmations/done.html", view=view, answer=answer, ref=ref)


@bp.post("/<token>/propose")
@link_page
def propose(token: str) -> ResponseReturnValue:
    """A scenario the key user relies on; the link stays usable for its own answer."""
    rt = runtime(current_app)
    settings = rt.governance_settings()
    form = ProposalForm()
    view = _opened(token, settings, rt.clock)
    if not isinstance(view, confirmations.ConfirmationView):
        return view
    back = url_for("confirmations.confirm", token=token)
    if not form.validate_on_submit():
        return proposed_page(back, error="Describe the scenario you rely on, then send it.")
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            ref = proposal_links.propose_from_confirmation(
                session,
                token,
                scenario=form.scenario.data or "",
                notes=form.notes.data or "",
                settings=settings,
                clock=rt.clock,
            ).ref
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("confirmations/unusable.html", error)
    except ValidationFailed as error:
        return proposed_page(back, error=error.message)
    return proposed_page(back, ref=ref)
