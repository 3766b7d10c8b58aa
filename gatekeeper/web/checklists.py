"""Checklist catalogue pages: applications, their versions, one rendered version, and diffs."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from gatekeeper.db.base import db
from gatekeeper.domain import proposal as proposal_rules
from gatekeeper.domain.checklist_diff import diff_checklists
from gatekeeper.domain.errors import NotFound
from gatekeeper.services import checklists, proposals
from gatekeeper.web.proposals import DeclineForm

bp = Blueprint("checklists", __name__)


@bp.get("/checklists")
def index() -> ResponseReturnValue:
    return render_template("checklists/index.html", entries=checklists.catalogue(db.session))


def _entry(application: str) -> checklists.CatalogueEntry:
    entry = checklists.catalogue_entry(db.session, application)
    if entry is None or not entry.versions:
        raise NotFound(f"no checklist of {application!r} has been synced")
    return entry


@bp.get("/checklists/<application>")
def application(application: str) -> ResponseReturnValue:
    entry = _entry(application)
    return render_template(
        "checklists/application.html",
        entry=entry,
        proposals=proposals.open_proposals(db.session, entry.application.id),
        snippet=proposal_rules.yaml_snippet,
        decline=DeclineForm(formdata=None),
    )


@bp.get("/checklists/<application>/<int:version>")
def show(application: str, version: int) -> ResponseReturnValue:
    stored = checklists.get_version(db.session, application, version)
    return render_template(
        "checklists/show.html", version=stored, checklist=checklists.checklist_of(stored)
    )


@bp.get("/checklists/<application>/diff")
def diff(application: str) -> ResponseReturnValue:
    """`?from=N&to=M`, any two versions; by default the one before the newest against it."""
    entry = _entry(application)
    numbers = [v.version for v in entry.versions]
    newest = numbers[-1]
    older = numbers[-2] if len(numbers) > 1 else newest
    old_number = request.args.get("from", default=older, type=int)
    new_number = request.args.get("to", default=newest, type=int)
    by_number = {v.version: v for v in entry.versions}
    if old_number not in by_number or new_number not in by_number:
        raise NotFound(f"{application} has versions {', '.join(map(str, numbers))} only")
    old, new = by_number[old_number], by_number[new_number]
    return render_template(
        "checklists/diff.html",
        entry=entry,
        old=old,
        new=new,
        diff=diff_checklists(checklists.checklist_of(old), checklists.checklist_of(new)),
    )
