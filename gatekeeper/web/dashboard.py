"""The staff dashboard: packages by state, with their gates, progress and what is late."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask.typing import ResponseReturnValue

from gatekeeper.db.base import db
from gatekeeper.runtime import runtime
from gatekeeper.services import boards
from gatekeeper.web.access import signed_in

bp = Blueprint("dashboard", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    rt = runtime(current_app)
    groups = boards.dashboard(
        db.session,
        assembled_by=signed_in().package_scope,
        now=rt.clock.now(),
        overdue_policy=rt.settings.overdue_review_policy,
        overdue_after=rt.link_settings().reminder_after,
        finding_warn_after=rt.governance_settings().finding_warn_after,
    )
    return render_template("dashboard/index.html", groups=groups)
