"""Sign-off pages reached from emailed links: GET shows, only the CSRF-protected POST decides."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, StringField
from wtforms.validators import DataRequired, Email, Length

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import absence as absence_rules
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import Conflict, LinkUnusable, TokenInvalid, ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import deputies, link_outcomes, proposal_links, signoffs
from gatekeeper.web import token_pages
from gatekeeper.web.limits import asking_for_links, link_page
from gatekeeper.web.proposals import ProposalForm, proposed_page

bp = Blueprint("signoffs", __name__, url_prefix="/s")


class ConfirmForm(FlaskForm):
    """Only carries the CSRF token; the decisions are read per request below."""


class AwayForm(FlaskForm):
    """ "I am away until …": the day the signer is back (their absence ends as it begins)."""

    until = DateField("I am away until", validators=[DataRequired()])
    note = StringField(
        "Note for the release manager (optional)",
        validators=[Length(max=absence_rules.MAX_NOTE_CHARS)],
    )


class ResendForm(FlaskForm):
    email = EmailField("Your email address", validators=[DataRequired(), Email(), Length(max=254)])
    package = StringField("Release package key", validators=[DataRequired(), Length(max=64)])


def link_settings() -> signoffs.LinkSettings:
    return runtime(current_app).link_settings()


token_pages.protect(bp)


def _unusable(token: str, error: LinkUnusable | TokenInvalid) -> ResponseReturnValue:
    """The link's own page: what was answered with it, what changed since, what to do next."""
    outcome = link_outcomes.signoff_dead_end(
        db.session, token, error, settings=link_settings(), clock=runtime(current_app).clock
    )
    return token_pages.unusable_page("signoffs/unusable.html", error, outcome=outcome)


def _sign_page(
    view: signoffs.LinkView,
    *,
    form: FlaskForm | None = None,
    away: AwayForm | None = None,
    away_problem: str | None = None,
    errors: dict[int, str] | None = None,
    values: Any = None,
) -> str:
    """The sign-off page, with the "I am away" and "propose a scenario" forms under it."""
    return render_template(
        "signoffs/sign.html",
        view=view,
        form=form or ConfirmForm(),
        away=away or AwayForm(formdata=None),
        away_problem=away_problem,
        errors=errors or {},
        values=values or {},
        proposal=ProposalForm(formdata=None),
    )


def _opened(token: str, clock: Clock) -> signoffs.LinkView | ResponseReturnValue:
    """What the link shows, or the page that says why it cannot be used (or not by this
    session)."""
    try:
        view = signoffs.open_link(db.session, token, settings=link_settings(), clock=clock)
    except (LinkUnusable, TokenInvalid) as error:
        return _unusable(token, error)
    refused = token_pages.refuse_other_session(view.link.signer)
    return view if refused is None else refused


@bp.route("/<token>", methods=["GET", "HEAD"])
@link_page
def show(token: str) -> ResponseReturnValue:
    clock = runtime(current_app).clock
    view = _opened(token, clock)
    if not isinstance(view, signoffs.LinkView):
        return view
    page = _sign_page(view)
    # Most opens write nothing: only the first, then one an hour, is recorded.
    if signoffs.open_worth_recording(view.link, clock.now()):
        with unit_of_work(db.session, origin=request_origin()) as session:
            signoffs.record_opened(session, view, clock=clock)
    return page


def _decisions(form: Any, view: signoffs.LinkView) -> dict[int, signoff_rules.Decision]:
    decisions: dict[int, signoff_rules.Decision] = {}
    for item in view.requests:
        prefix = f"r{item.request.id}"
        decision = form.get(f"{prefix}-decision", "")
        if not decision:
            continue
        confirmed = tuple(
            index
            for index in range(len(item.checklist.user_validation.scenarios))
            if form.get(f"{prefix}-scenario-{index}") == "on"
        )
        decisions[item.request.id] = signoff_rules.Decision(
            kind=item.request.kind,
            decision=decision,
            comment=form.get(f"{prefix}-comment", ""),
            evidence=form.get(f"{prefix}-evidence", ""),
            scenarios_confirmed=confirmed if item.request.kind == signoff_rules.KEY_USER else (),
        )
    return decisions


def _field_errors(
    view: signoffs.LinkView, decisions: dict[int, signoff_rules.Decision]
) -> dict[int, str]:
    errors: dict[int, str] = {}
    for item in view.requests:
        submitted = decisions.get(item.request.id)
        if submitted is None:
            errors[item.request.id] = "Choose a decision."
            continue
        try:
            signoff_rules.validate_decision(
                submitted, item=item.item, scenarios=len(item.checklist.user_validation.scenarios)
            )
        except ValidationFailed as error:
            errors[item.request.id] = error.message
    return errors


@bp.post("/<token>")
@link_page
def decide(token: str) -> ResponseReturnValue:
    form = ConfirmForm()
    clock = runtime(current_app).clock
    view = _opened(token, clock)
    if not isinstance(view, signoffs.LinkView):
        return view
    decisions = _decisions(request.form, view)
    errors = _field_errors(view, decisions)
    if not form.validate_on_submit() or errors:
        return _sign_page(view, form=form, errors=errors, values=request.form), 422
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            recorded = signoffs.submit_link(
                session, token, decisions, settings=link_settings(), clock=clock
            )
            done = {
                "answers": link_outcomes.answers(recorded),
                "package_key": view.package.key,
                "signer": view.link.signer,
                "manager": view.package.assembled_by,
            }
    except (LinkUnusable, TokenInvalid) as error:
        return _unusable(token, error)
    return render_template("signoffs/done.html", **done)


@bp.post("/<token>/away")
@link_page
def away(token: str) -> ResponseReturnValue:
    """The signer is away: their deputies get what this link asks, and the link dies."""
    form = AwayForm()
    clock = runtime(current_app).clock
    view = _opened(token, clock)
    if not isinstance(view, signoffs.LinkView):
        return view
    problem = None
    if form.validate_on_submit() and form.until.data is not None:
        until = datetime.combine(form.until.data, time(), UTC)
        try:
            with unit_of_work(db.session, origin=request_origin()) as session:
                done = deputies.away_from_link(
                    session,
                    token,
                    until=until,
                    note=form.note.data or "",
                    links=link_settings(),
                    clock=clock,
                )
            return render_template("signoffs/away.html", done=done)
        except (LinkUnusable, TokenInvalid) as error:
            return _unusable(token, error)
        except (ValidationFailed, Conflict) as error:
            problem = error.message
    return _sign_page(view, form=ConfirmForm(formdata=None), away=form, away_problem=problem), 422


@bp.post("/<token>/propose")
@link_page
def propose(token: str) -> ResponseReturnValue:
    """A scenario the key user relies on; the link stays usable for its own answer."""
    form = ProposalForm()
    clock = runtime(current_app).clock
    view = _opened(token, clock)
    if not isinstance(view, signoffs.LinkView):
        return view
    back = url_for("signoffs.show", token=token)
    if not form.validate_on_submit() or form.request.data is None:
        return proposed_page(back, error="Describe the scenario you rely on, then send it.")
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            ref = proposal_links.propose_from_signoff(
                session,
                token,
                request_id=form.request.data,
                scenario=form.scenario.data or "",
                notes=form.notes.data or "",
                settings=link_settings(),
                clock=clock,
            ).ref
    except (LinkUnusable, TokenInvalid) as error:
        return _unusable(token, error)
    except ValidationFailed as error:
        return proposed_page(back, error=error.message)
    return proposed_page(back, ref=ref)


@bp.route("/resend", methods=["GET", "POST"])
@asking_for_links
def resend() -> ResponseReturnValue:
    form = ResendForm()
    if form.validate_on_submit():
        with unit_of_work(db.session, origin=request_origin()) as session:
            signoffs.resend_link(
                session,
                email=form.email.data or "",
                package_key=form.package.data or "",
                settings=link_settings(),
                clock=runtime(current_app).clock,
            )
        # The same answer whether or not the address or package exists.
        return render_template("signoffs/resend.html", form=form, sent=True)
    status = 422 if request.method == "POST" else 200
    return render_template("signoffs/resend.html", form=form, sent=False), status
