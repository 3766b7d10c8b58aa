"""Audit endpoints of the JSON API: the release population auditors sample from."""

from __future__ import annotations

from flask import Response, current_app, request
from flask.typing import ResponseReturnValue

from gatekeeper.api.auth import bp, requires
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import read_snapshot
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.runtime import runtime
from gatekeeper.services import population
from gatekeeper.services.tokens import SCOPE_AUDIT_READ

POPULATION_PARAMETERS = ("from", "to", "format")


def _parameter(name: str, default: str | None = None) -> str:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise ValidationFailed(f"give the {name} parameter once")
    if values:
        return values[0]
    if default is None:
        raise ValidationFailed(f"the {name} parameter is required (YYYY-MM-DD)")
    return default


@bp.get("/audit/population")
@requires(SCOPE_AUDIT_READ)
def get_population() -> ResponseReturnValue:
    unknown = sorted(set(request.args) - set(POPULATION_PARAMETERS))
    if unknown:
        raise ValidationFailed(
            f"unknown parameter(s): {', '.join(unknown)}; "
            f"expected {', '.join(POPULATION_PARAMETERS)}"
        )
    first, last = _parameter("from"), _parameter("to")
    output_format = _parameter("format", "json")
    if output_format not in population.FORMATS:
        raise ValidationFailed(f"format must be one of: {', '.join(population.FORMATS)}")
    with read_snapshot(db.session) as session:
        found = population.build(session, first, last, now=runtime(current_app).clock.now())
        if output_format == "json":
            return found.document(), 200, {"Cache-Control": "no-store"}
        name = f"release-population-{found.period.first_day}-{found.period.last_day}.csv"
        return Response(
            found.csv(),
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )
