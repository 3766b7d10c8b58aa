"""Checklist catalogue endpoints of the JSON API."""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue

from gatekeeper.api.auth import bp, requires
from gatekeeper.db.base import db
from gatekeeper.domain.errors import NotFound
from gatekeeper.services import checklists
from gatekeeper.services.tokens import SCOPE_GATE_READ


def _summary(entry: checklists.CatalogueEntry) -> dict[str, Any]:
    return {
        "application": entry.application.slug,
        "title": entry.application.title,
        "approved_version": entry.approved.version if entry.approved else None,
        "versions": [
            {
                "version": v.version,
                "state": v.state,
                "sha256": v.sha256,
                "synced_at": v.synced_at.isoformat(),
            }
            for v in entry.versions
        ],
    }


@bp.get("/checklists")
@requires(SCOPE_GATE_READ)
def list_checklists() -> ResponseReturnValue:
    return [_summary(entry) for entry in checklists.catalogue(db.session)]


@bp.get("/checklists/<application>")
@requires(SCOPE_GATE_READ)
def get_checklist(application: str) -> ResponseReturnValue:
    entry = checklists.catalogue_entry(db.session, application)
    if entry is None:
        raise NotFound(f"no application {application!r}")
    approved = entry.approved
    return {
        **_summary(entry),
        "checklist": checklists.checklist_of(approved).to_canonical() if approved else None,
    }
