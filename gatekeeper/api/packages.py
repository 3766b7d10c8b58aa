"""Package and gate endpoints of the JSON API."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import current_app, g, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from gatekeeper.api.auth import bp, json_body, requires
from gatekeeper.db.base import db
from gatekeeper.db.models import Package
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.deployment import DeployedApplication, DeploymentReport
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import (
    audit,
    boards,
    deployments,
    emergencies,
    packages,
    signoffs,
    tokens,
)
from gatekeeper.services.tokens import SCOPE_GATE_READ, SCOPE_PACKAGES_WRITE, SCOPE_RELEASES_WRITE


def package_json(package: Package) -> dict[str, Any]:
    return {
        "key": package.key,
        "title": package.title,
        "environment": package.environment,
        "planned_for": package.planned_for.isoformat() if package.planned_for else None,
        "assembled_by": package.assembled_by,
        "state": package.state,
        "revision": package.revision,
        "created_at": package.created_at.isoformat(),
        "submitted_at": package.submitted_at.isoformat() if package.submitted_at else None,
        "released_at": package.released_at.isoformat() if package.released_at else None,
        "released_by": package.released_by,
        "release_digest": package.release_digest,
        "applications": [
            {
                "application": pa.application.slug,
                "version": pa.version_label,
                "change_summary": pa.change_summary,
                "checklist_version": pa.checklist_version.version if pa.checklist_version else None,
                "changed_in_revision": pa.changed_in_revision,
            }
            for pa in package.applications
            if pa.removed_in_revision is None
        ],
    }


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"planned_for {value!r} is not a date (YYYY-MM-DD)") from None


def _applications(body: dict[str, Any]) -> tuple[packages.ApplicationSpec, ...] | None:
    if "applications" not in body:
        return None
    return tuple(
        packages.ApplicationSpec(a["application"], a["version"], a.get("change_summary", ""))
        for a in body["applications"]
    )


def _in_reach(session: Session, key: str) -> None:
    """Package writes are scoped like the web UI: another manager's package is 404."""
    boards.find_package_id(session, key, assembled_by=tokens.package_scope(g.caller))


def _policy() -> str:
    return runtime(current_app).settings.overdue_review_policy


@bp.post("/packages")
@requires(SCOPE_PACKAGES_WRITE)
def create_package() -> ResponseReturnValue:
    body = json_body("PackageCreate")
    owner = tokens.accountable_owner(g.caller)
    spec = packages.PackageSpec(
        key=body["key"],
        title=body["title"],
        environment=body["environment"],
        planned_for=_date(body.get("planned_for")),
        applications=_applications(body) or (),
    )
    with unit_of_work(db.session, origin=request_origin()) as session:
        package = packages.create_package(
            session, spec, assembler=owner, clock=runtime(current_app).clock
        )
        payload = package_json(package)
    location = url_for("api.get_package", key=payload["key"])
    return payload, 201, {"Location": location}


@bp.get("/packages/<key>")
@requires(SCOPE_GATE_READ)
def get_package(key: str) -> ResponseReturnValue:
    return package_json(packages.get_package(db.session, key))


@bp.patch("/packages/<key>")
@requires(SCOPE_PACKAGES_WRITE)
def edit_package(key: str) -> ResponseReturnValue:
    body = json_body("PackageEdit")
    changes = packages.PackageChanges(
        title=body.get("title"),
        environment=body.get("environment"),
        planned_for=_date(body.get("planned_for")),
        applications=_applications(body),
    )
    with unit_of_work(db.session, origin=request_origin()) as session:
        _in_reach(session, key)
        package = signoffs.edit_and_reissue(
            session,
            key,
            changes,
            actor=g.caller.name,
            clock=runtime(current_app).clock,
            links=runtime(current_app).link_settings(),
        )
        return package_json(package)


@bp.post("/packages/<key>/submit")
@requires(SCOPE_PACKAGES_WRITE)
def submit_package(key: str) -> ResponseReturnValue:
    with unit_of_work(db.session, origin=request_origin()) as session:
        _in_reach(session, key)
        package = signoffs.submit_for_signoff(
            session,
            key,
            actor=g.caller.name,
            clock=runtime(current_app).clock,
            links=runtime(current_app).link_settings(),
        )
        return package_json(package)


@bp.post("/packages/<key>/cancel")
@requires(SCOPE_PACKAGES_WRITE)
def cancel_package(key: str) -> ResponseReturnValue:
    with unit_of_work(db.session, origin=request_origin()) as session:
        _in_reach(session, key)
        rt = runtime(current_app)
        package = signoffs.cancel_and_revoke(
            session,
            key,
            actor=g.caller.name,
            clock=rt.clock,
            overdue_policy=rt.settings.overdue_review_policy,
        )
        return package_json(package)


@bp.post("/packages/<key>/emergency")
@requires(SCOPE_PACKAGES_WRITE)
def declare_emergency(key: str) -> ResponseReturnValue:
    body = json_body("EmergencyDeclaration")
    rt = runtime(current_app)
    with unit_of_work(db.session, origin=request_origin()) as session:
        _in_reach(session, key)
        emergency = emergencies.declare(
            session,
            key,
            reason=body["reason"],
            # The person the token acts for: separation of duties compares people.
            actor=tokens.accountable_owner(g.caller),
            clock=rt.clock,
            links=rt.link_settings(),
        )
        gate = packages.evaluate_gate(
            session, key, clock=rt.clock, overdue_policy=rt.settings.overdue_review_policy
        )
        return {"package": package_json(emergency.package), "gate": gate.to_dict()}


@bp.get("/packages/<key>/gate")
@requires(SCOPE_GATE_READ)
def get_gate(key: str) -> ResponseReturnValue:
    """The gate as stored bytes; 304, with no body, when the caller's copy is still the gate."""
    answer = runtime(current_app).gate_answer(db.session, key)
    if _holds(answer.etag):
        return current_app.response_class(status=304, headers={"ETag": answer.etag})
    return current_app.response_class(
        answer.body, mimetype="application/json", headers={"ETag": answer.etag}
    )


def _holds(etag: str) -> bool:
    """Does If-None-Match name this entity tag? The exact header a polling CLI sends is compared
    as a string; any other list or `*` is parsed (weak comparison, as RFC 9110 says)."""
    sent = request.headers.get("If-None-Match")
    if sent is None:
        return False
    return sent == etag or request.if_none_match.contains_weak(etag[1:-1])


@bp.post("/packages/<key>/release")
@requires(SCOPE_RELEASES_WRITE)
def release_package(key: str) -> ResponseReturnValue:
    body = json_body("Release")
    with unit_of_work(db.session, origin=request_origin()) as session:
        package, gate = emergencies.release_package(
            session,
            key,
            digest=body["digest"],
            actor=g.caller.name,
            notes=body.get("notes", ""),
            clock=runtime(current_app).clock,
            links=runtime(current_app).link_settings(),
            reports=runtime(current_app).governance_settings(),
        )
        # The chain head at release: CI logs it, giving the audit trail an outside anchor.
        return {
            "package": package_json(package),
            "gate": gate.to_dict(),
            "audit_head": audit.head(session),
        }


@bp.post("/packages/<key>/deployments")
@requires(SCOPE_RELEASES_WRITE)
def record_deployment(key: str) -> ResponseReturnValue:
    body = json_body("DeploymentCreate")
    report = DeploymentReport(
        environment=body["environment"],
        applications=tuple(
            DeployedApplication(a["application"], a.get("version"), a.get("sha"))
            for a in body["applications"]
        ),
        pipeline_url=body["pipeline_url"],
    )
    rt = runtime(current_app)
    with unit_of_work(db.session, origin=request_origin()) as session:
        recorded = deployments.record_deployment(
            session,
            key,
            report,
            actor=g.caller.name,
            clock=rt.clock,
            overdue_policy=_policy(),
            finding_warn_after=rt.governance_settings().finding_warn_after,
        )
        return recorded.to_dict(), 201
