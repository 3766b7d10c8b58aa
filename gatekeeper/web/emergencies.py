"""Emergency approval pages, from the approver's email: GET shows, only the POST approves."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import Conflict, LinkUnusable, TokenInvalid
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import emergencies
from gatekeeper.web import token_pages
from gatekeeper.web.limits import link_page

bp = Blueprint("emergencies", __name__, url_prefix="/emergency")
token_pages.protect(bp)


class ApproveForm(FlaskForm):
    """Only the CSRF token: the button itself is the approval."""


@bp.route("/<token>", methods=["GET", "HEAD", "POST"])
@link_page
def approve(token: str) -> ResponseReturnValue:
    rt = runtime(current_app)
    links = rt.link_settings()
    try:
        view = emergencies.open_approval(db.session, token, links=links, clock=rt.clock)
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("emergencies/unusable.html", error)
    if (refused := token_pages.refuse_other_session(view.link.approver)) is not None:
        return refused
    form = ApproveForm()
    if request.method != "POST" or not form.validate_on_submit():
        status = 422 if request.method == "POST" else 200
        return render_template("emergencies/approve.html", view=view, form=form), status
    try:
        with unit_of_work(db.session, origin=request_origin()) as session:
            done = emergencies.approve(session, token, links=links, clock=rt.clock)
            status_now = done.gate.status
    except (LinkUnusable, TokenInvalid) as error:
        return token_pages.unusable_page("emergencies/unusable.html", error)
    except Conflict as error:
        return render_template(
            "emergencies/approve.html", view=view, form=form, error=error.message
        ), 409
    return render_template("emergencies/done.html", view=view, status=status_now)
