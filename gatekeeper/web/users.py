"""Staff accounts for admins: who may assemble, release and review, added and deactivated here
as with `gatekeeper users`."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from gatekeeper.db.base import db
from gatekeeper.db.models import User
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import Conflict, ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import users
from gatekeeper.web.access import ROLE_LABELS, signed_in

bp = Blueprint("users", __name__, url_prefix="/users")


class AccountForm(FlaskForm):
    email = StringField("Email address", validators=[DataRequired(), Length(max=254)])
    name = StringField("Name", validators=[DataRequired(), Length(max=users.MAX_NAME_CHARS)])
    role = SelectField(
        "Role",
        choices=[SelectChoice(role, ROLE_LABELS[role]) for role in users.ROLES],
        default=users.RELEASE_MANAGER,
    )


def _page(form: AccountForm, error: str = "") -> str:
    return render_template(
        "users/index.html",
        accounts=users.list_users(db.session),
        form=form,
        error=error,
        me=signed_in().email,
        role_labels=ROLE_LABELS,
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    return _page(AccountForm())


@bp.post("/")
def create() -> ResponseReturnValue:
    form = AccountForm()
    if not form.validate():
        return _page(form), 422
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            added = users.add_user(
                session,
                email=form.email.data or "",
                name=form.name.data or "",
                role=form.role.data or "",
                clock=runtime(current_app).clock,
                actor=signed_in().email,
            )
            email = added.email
    except (ValidationFailed, Conflict) as error:
        return _page(form, error.message), 409 if isinstance(error, Conflict) else 422
    flash(f"{email} can now sign in with a link emailed from the sign-in page.", "ok")
    return redirect(url_for("users.index"))


@bp.post("/<int:user_id>/deactivate")
def deactivate(user_id: int) -> ResponseReturnValue:
    email = _change(user_id, users.deactivate_user)
    flash(
        f"{email} is deactivated: their sessions have ended and their API tokens are revoked.",
        "ok",
    )
    return redirect(url_for("users.index"))


@bp.post("/<int:user_id>/activate")
def activate(user_id: int) -> ResponseReturnValue:
    email = _change(user_id, users.activate_user)
    flash(f"{email} may sign in again (their old API tokens stay revoked).", "ok")
    return redirect(url_for("users.index"))


def _change(user_id: int, change: Callable[..., User]) -> str:
    """Apply `change` to the account, as the signed-in admin; returns the account's email."""
    with unit_of_work(db.session, origin=request_origin()) as session:
        account = users.user_by_id(session, user_id)
        change(session, account.email, clock=runtime(current_app).clock, actor=signed_in().email)
        return account.email
