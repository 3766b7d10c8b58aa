"""Absences for release managers and admins: who is away, record one, end one, as with
`gatekeeper people`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import DateField, EmailField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import absence as absence_rules
from gatekeeper.domain.errors import Conflict, ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import deputies
from gatekeeper.web.access import signed_in

bp = Blueprint("people", __name__, url_prefix="/people")


class AbsenceForm(FlaskForm):
    email = EmailField("Who is away", validators=[DataRequired(), Email(), Length(max=254)])
    starts = DateField("Away from", validators=[Optional()])
    until = DateField("Back on", validators=[DataRequired()])
    note = StringField("Note", validators=[Length(max=absence_rules.MAX_NOTE_CHARS)])


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _page(form: AbsenceForm, error: str = "") -> str:
    now = runtime(current_app).clock.now()
    return render_template(
        "people/index.html",
        absences=deputies.list_absences(db.session, now=now),
        now=now,
        form=form,
        error=error,
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    return _page(AbsenceForm(formdata=None))


@bp.post("/")
def record() -> ResponseReturnValue:
    form = AbsenceForm()
    if not form.validate() or form.until.data is None:
        return _page(form), 422
    rt = runtime(current_app)
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            row = deputies.record_absence(
                session,
                person=form.email.data or "",
                starts_at=_midnight(form.starts.data) if form.starts.data else rt.clock.now(),
                ends_at=_midnight(form.until.data),
                note=form.note.data or "",
                actor=signed_in().email,
                clock=rt.clock,
                links=rt.link_settings(),
            )
            said = f"{row.person} is recorded as away until {row.ends_at.date().isoformat()}."
    except ValidationFailed as error:
        return _page(form, error.message), 422
    flash(said, "ok")
    return redirect(url_for("people.index"))


@bp.post("/<int:absence_id>/end")
def end(absence_id: int) -> ResponseReturnValue:
    rt = runtime(current_app)
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            row = deputies.end_absence(
                session,
                absence_id,
                actor=signed_in().email,
                clock=rt.clock,
                links=rt.link_settings(),
            )
            said = (
                f"{row.person}'s absence is ended; what their deputies left open is theirs again."
            )
    except Conflict as error:
        flash(error.message, "error")
        return redirect(url_for("people.index"))
    flash(said, "ok")
    return redirect(url_for("people.index"))
