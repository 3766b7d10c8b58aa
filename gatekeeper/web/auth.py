"""Staff sign-in by emailed one-time link, and sign-out. GET shows; only a POST signs in.

With single sign-on on (web/oidc.py), the sign-in page offers it first, and emailed links
remain for whom GATEKEEPER_OIDC_MAGIC_LINK_FALLBACK allows.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as cookie_session
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField
from wtforms.validators import DataRequired, Email, Length

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import LinkUnusable, TokenInvalid
from gatekeeper.domain.sso import roles_signing_in_by_link
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import sign_ins, users
from gatekeeper.web import token_pages
from gatekeeper.web.access import StaffUser, safe_next, signed_in
from gatekeeper.web.limits import asking_for_links, link_page

bp = Blueprint("auth", __name__)
NEXT_KEY = "gatekeeper.next"


class SignInForm(FlaskForm):
    email = EmailField(
        "Your work email address", validators=[DataRequired(), Email(), Length(max=254)]
    )


class ConfirmForm(FlaskForm):
    """Only carries the CSRF token."""


def sign_in_settings() -> sign_ins.SignInSettings:
    settings = runtime(current_app).settings
    return sign_ins.SignInSettings(
        base_url=settings.base_url,
        secret_keys=settings.secret_keys,
        roles=roles_signing_in_by_link(settings.sso_enabled, settings.oidc_magic_link_fallback),
    )


def links_offered() -> str:
    """Who the sign-in page offers an emailed link to: "all", "admins" or "off"."""
    settings = runtime(current_app).settings
    return settings.oidc_magic_link_fallback if settings.sso_enabled else "all"


def start_staff_session(user: StaffUser) -> ResponseReturnValue:
    """Sign `user` in and go where they were headed before signing in."""
    wanted = safe_next(cookie_session.get(NEXT_KEY))
    # A fresh session: nothing from before sign-in (CSRF token included) carries over.
    cookie_session.clear()
    login_user(user)
    cookie_session.permanent = True
    flash(f"Signed in as {user.name}.", "ok")
    return redirect(wanted or url_for("dashboard.index"))


token_pages.protect(bp)


@bp.route("/login", methods=["GET", "POST"])
@asking_for_links
def login() -> ResponseReturnValue:
    wanted = safe_next(request.args.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(wanted or url_for("dashboard.index"))
    form = SignInForm()
    if links_offered() != "off" and form.validate_on_submit():
        with unit_of_work(db.session, origin=request_origin()) as session:
            sign_ins.request_sign_in(
                session,
                form.email.data or "",
                settings=sign_in_settings(),
                clock=runtime(current_app).clock,
            )
        cookie_session[NEXT_KEY] = wanted
        # The same page whether or not the address has an account.
        return render_template("auth/sent.html", email=form.email.data, links=links_offered())
    status = 422 if request.method == "POST" else 200
    page = render_template(
        "auth/login.html",
        form=form,
        next=wanted,
        sso=runtime(current_app).settings.sso_enabled,
        links=links_offered(),
    )
    return page, status


@bp.get("/login/<token>")
@link_page
def confirm(token: str) -> ResponseReturnValue:
    try:
        view = sign_ins.open_sign_in(
            db.session, token, settings=sign_in_settings(), clock=runtime(current_app).clock
        )
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("auth/unusable.html", error)
    return render_template("auth/confirm.html", view=view, form=ConfirmForm())


@bp.post("/login/<token>")
@link_page
def sign_in(token: str) -> ResponseReturnValue:
    form = ConfirmForm()
    if not form.validate_on_submit():
        return render_template("auth/unusable.html", reason="invalid", message=""), 400
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            view = sign_ins.consume_sign_in(
                session, token, settings=sign_in_settings(), clock=runtime(current_app).clock
            )
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("auth/unusable.html", error)
    return start_staff_session(
        StaffUser(view.user_id, view.email, view.name, view.role, view.session_version)
    )


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    if current_user.is_authenticated:
        with unit_of_work(db.session, origin=request_origin()) as session:
            users.sign_out(session, signed_in().id, clock=runtime(current_app).clock)
    # Where to go next: the emailed link whose page asked this person to sign out first.
    wanted = safe_next(request.form.get("next"))
    logout_user()
    cookie_session.clear()
    flash("You are signed out.", "ok")
    return redirect(wanted or url_for("auth.login"))
