"""The outbox page for admins: every dead-lettered email with its error, and a retry button."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import NotFound
from gatekeeper.notify import worker
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime

bp = Blueprint("outbox", __name__, url_prefix="/outbox")


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template(
        "outbox/index.html",
        counts=worker.outbox_counts(db.session),
        dead=worker.dead_letters(db.session),
    )


@bp.post("/<int:message_id>/retry")
def retry(message_id: int) -> ResponseReturnValue:
    # CSRFProtect has checked the token already, as for every browser POST.
    with unit_of_work(db.session, origin=request_origin()) as session:
        row = worker.requeue(session, message_id, clock=runtime(current_app).clock)
    if row is None:
        raise NotFound(f"no dead-lettered message #{message_id}")
    flash(f"Message #{message_id} is queued again.", "ok")
    return redirect(url_for("outbox.index"))
