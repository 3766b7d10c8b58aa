"""Gate status badges (SVG) for wikis and release notes, behind an unguessable signed URL."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from gatekeeper.db.base import db
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.errors import NotFound
from gatekeeper.runtime import runtime
from gatekeeper.signing import badge_signature_valid

bp = Blueprint("badges", __name__)
COLOURS = {
    gate_rules.OPEN: "#1a7f37",
    gate_rules.PENDING: "#9a6700",
    gate_rules.BLOCKED: "#cf222e",
    gate_rules.RELEASED: "#0550ae",
}


@bp.get("/badges/<key>/<signature>.svg")
def badge(key: str, signature: str) -> Response:
    settings = runtime(current_app).settings
    if not badge_signature_valid(settings.secret_keys, key, signature):
        raise NotFound("no such badge")
    # The gate's own state, as `gatekeeper gate check` reads it: the two always agree.
    result = runtime(current_app).gate_now(db.session, key)
    status = result.shown_status
    # After go-live, what key users said: the colour stays the gate's.
    shown = f"{status}, {result.outcome.replace('_', ' ')}" if result.outcome else status
    if result.mode == gate_rules.EMERGENCY:
        shown = f"{shown}, emergency"
    return Response(
        render_badge("gate", shown, COLOURS[status]),
        mimetype="image/svg+xml",
        headers={"Cache-Control": "no-cache, max-age=0"},
    )


def render_badge(label: str, value: str, colour: str) -> str:
    left, right = 7 * len(label) + 12, 7 * len(value) + 12
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + right}" height="20" role="img" '
        f'aria-label="{label}: {value}"><title>{label}: {value}</title>'
        f'<rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="6" y="14">{label}</text><text x="{left + 6}" y="14">{value}</text></g></svg>'
    )
