"""Read-only checklist catalogue pages."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from gatekeeper.db.base import db
from gatekeeper.services import checklists

bp = Blueprint("checklists", __name__)


@bp.get("/")
@bp.get("/checklists")
def index() -> ResponseReturnValue:
    return render_template("checklists/index.html", entries=checklists.catalogue(db.session))


@bp.get("/checklists/<application>/<int:version>")
def show(application: str, version: int) -> ResponseReturnValue:
    stored = checklists.get_version(db.session, application, version)
    return render_template(
        "checklists/show.html", version=stored, checklist=checklists.checklist_of(stored)
    )
