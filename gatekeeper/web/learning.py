"""Learning review pages: the list, one review as a page, and the forms that write it."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms import (
    DateField,
    DateTimeLocalField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import learning as rules
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import boards, learning_reviews
from gatekeeper.web.access import signed_in

bp = Blueprint("learning", __name__, url_prefix="/learning-reviews")

_NEEDED = DataRequired(message="This is needed.")


class OpenForm(FlaskForm):
    package = StringField("Release package", validators=[_NEEDED, Length(max=64)])
    # Rendered as a <select> of the package's applications; the service checks it is one.
    application = StringField("Application", validators=[_NEEDED, Length(max=64)])
    reason = StringField(
        "What should the release learn from?",
        validators=[_NEEDED, Length(max=170)],
        description="The facts that make you open it, such as 'refunds stalled for a day'.",
    )


class StatementForm(FlaskForm):
    statement = TextAreaField(
        "What happened, and its impact",
        description="As if from a video feed: what was seen and when, no judgement.",
        validators=[Length(max=rules.MAX_TEXT_CHARS)],
    )
    factors = TextAreaField("Contributing factors", validators=[Length(max=rules.MAX_TEXT_CHARS)])
    # Two buttons: save the draft, or complete the review with it.
    intent = StringField(validators=[AnyOf(["save", "complete"])], default="save")


class EntryForm(FlaskForm):
    occurred_at = DateTimeLocalField(
        "When (UTC)", format="%Y-%m-%dT%H:%M", validators=[DataRequired("Say when.")]
    )
    text = TextAreaField(
        "What happened at that moment", validators=[_NEEDED, Length(max=rules.MAX_TEXT_CHARS)]
    )


class ItemForm(FlaskForm):
    title = StringField("Action", validators=[_NEEDED, Length(max=rules.MAX_TITLE_CHARS)])
    owner = StringField(
        "Owning team's address",
        description="A group or team address: who owns the fix, not who is to blame.",
        validators=[_NEEDED, Length(max=254)],
    )
    due_on = DateField("Due on", validators=[DataRequired("Say by when.")])
    kind = SelectField(
        "Kind",
        choices=[
            SelectChoice(
                "checklist_change",
                "Checklist change (done when an approved version addresses its findings)",
            ),
            SelectChoice("process", "Process"),
            SelectChoice("tooling", "Tooling"),
        ],
    )
    findings = StringField(
        "Findings it addresses",
        description="For a checklist change: finding ids such as F-12, F-14.",
        validators=[Optional(), Length(max=400)],
    )


class CloseForm(FlaskForm):
    action = StringField(validators=[AnyOf([rules.FINISH, rules.DROP])])
    rationale = TextAreaField("Why it is dropped", validators=[Length(max=rules.MAX_TEXT_CHARS)])


def _in_reach(session: Session, review_id: int) -> Any:
    """The review, when its package is within the user's reach; else 404, never 403."""
    review = learning_reviews.get_review(session, review_id)
    boards.find_package_id(session, review.package.key, assembled_by=signed_in().package_scope)
    return review


def _writable(session: Session, review_id: int, form: FlaskForm) -> Any:
    """The review in reach, for a user whose role may write it, and the form valid: a review
    out of reach is not found, whatever the form says."""
    review = _in_reach(session, review_id)
    learning_reviews.require_writer(session, signed_in().email)
    _valid(form)
    return review


def _now() -> datetime:
    return runtime(current_app).clock.now()


@bp.get("")
def index() -> ResponseReturnValue:
    package = request.args.get("package", "")[:64] or None
    found = learning_reviews.list_reviews(
        db.session, assembled_by=signed_in().package_scope, package=package
    )
    return render_template("learning/index.html", reviews=found, package=package, now=_now())


@bp.get("/<int:review_id>")
def show(review_id: int) -> ResponseReturnValue:
    review = _in_reach(db.session, review_id)
    statement = StatementForm(data={"statement": review.statement, "factors": review.factors})
    return render_template(
        "learning/show.html",
        review=review,
        timeline=learning_reviews.timeline(db.session, review),
        prompts=rules.PROMPTS,
        statement_form=statement,
        entry_form=EntryForm(),
        item_form=ItemForm(),
        close_form=CloseForm(),
        now=_now(),
    )


def _valid(form: FlaskForm) -> None:
    if not form.validate_on_submit():
        problems = [f"{form[name].label.text}: {errors[0]}" for name, errors in form.errors.items()]
        raise ValidationFailed("; ".join(problems) or "the form is incomplete; reload the page")


def _back(review_id: int, message: str) -> ResponseReturnValue:
    flash(message, "ok")
    return redirect(url_for("learning.show", review_id=review_id))


@bp.post("/open")
def open_review() -> ResponseReturnValue:
    form = OpenForm()
    _valid(form)
    with unit_of_work(db.session, origin=request_origin()) as session:
        key = form.package.data or ""
        boards.find_package_id(session, key, assembled_by=signed_in().package_scope)
        review = learning_reviews.open_by_hand(
            session,
            key,
            form.application.data or "",
            reason=form.reason.data or "",
            actor=signed_in().email,
            now=_now(),
            due_hours=runtime(current_app).governance_settings().learning_review_due_hours,
        )
        review_id = review.id
    return _back(review_id, f"{rules.review_ref(review_id)} opened.")


@bp.post("/<int:review_id>/statement")
def statement(review_id: int) -> ResponseReturnValue:
    form = StatementForm()
    with unit_of_work(db.session, origin=request_origin()) as session:
        review = _writable(session, review_id, form)
        complete = form.intent.data == "complete"
        write = learning_reviews.complete_review if complete else learning_reviews.edit_review
        write(
            session,
            review,
            statement=form.statement.data or "",
            factors=form.factors.data or "",
            actor=signed_in().email,
            now=_now(),
        )
    return _back(review_id, "Review completed." if complete else "Draft saved.")


@bp.post("/<int:review_id>/entries")
def add_entry(review_id: int) -> ResponseReturnValue:
    form = EntryForm()
    with unit_of_work(db.session, origin=request_origin()) as session:
        review = _writable(session, review_id, form)
        assert form.occurred_at.data is not None  # DataRequired
        learning_reviews.add_timeline_entry(
            session,
            review,
            occurred_at=form.occurred_at.data.replace(tzinfo=UTC),
            text=form.text.data or "",
            actor=signed_in().email,
            now=_now(),
        )
    return _back(review_id, "Timeline entry added.")


@bp.post("/<int:review_id>/items")
def add_item(review_id: int) -> ResponseReturnValue:
    form = ItemForm()
    with unit_of_work(db.session, origin=request_origin()) as session:
        review = _writable(session, review_id, form)
        assert form.due_on.data is not None  # DataRequired
        learning_reviews.add_action_item(
            session,
            review,
            title=form.title.data or "",
            owner=form.owner.data or "",
            # Due at the end of the day named: the owners have all of it.
            due_at=datetime.combine(form.due_on.data, time.max, tzinfo=UTC),
            kind=form.kind.data or "",
            actor=signed_in().email,
            now=_now(),
            findings=learning_reviews.findings_named(session, review, form.findings.data or ""),
        )
    return _back(review_id, "Action item added.")


@bp.post("/<int:review_id>/items/<int:item_id>/close")
def close_item(review_id: int, item_id: int) -> ResponseReturnValue:
    form = CloseForm()
    with unit_of_work(db.session, origin=request_origin()) as session:
        review = _writable(session, review_id, form)
        learning_reviews.close_action_item(
            session,
            learning_reviews.get_item(session, review, item_id),
            action=form.action.data or "",
            actor=signed_in().email,
            now=_now(),
            rationale=form.rationale.data or "",
        )
    return _back(review_id, "Action item closed.")
