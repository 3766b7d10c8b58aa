"""The OpenAPI 3.1 document of /api/v1; request bodies are validated against these same schemas."""

from __future__ import annotations

from typing import Any

from gatekeeper.domain import confirmation, deployment, gate, population
from gatekeeper.domain.checklist import SLUG_PATTERN
from gatekeeper.domain.package import KEY_PATTERN, MAX_SUMMARY_CHARS, STATES
from gatekeeper.services.population import FORMAT as POPULATION_FORMAT
from gatekeeper.services.population import FORMATS

_EMAIL = {"type": "string", "format": "email", "maxLength": 254}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {},
                },
            }
        },
    },
    "ApplicationEntry": {
        "type": "object",
        "additionalProperties": False,
        "required": ["application", "version"],
        "properties": {
            "application": {"type": "string", "minLength": 1, "maxLength": 64},
            "version": {"type": "string", "minLength": 1, "maxLength": 100},
            "change_summary": {"type": "string", "maxLength": MAX_SUMMARY_CHARS},
        },
    },
    "PackageCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["key", "title", "environment", "applications"],
        "properties": {
            "key": {"type": "string", "pattern": KEY_PATTERN},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "environment": {"type": "string", "minLength": 1, "maxLength": 64},
            "planned_for": {"type": ["string", "null"], "format": "date"},
            "applications": {"type": "array", "items": _ref("ApplicationEntry")},
        },
    },
    "PackageEdit": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "environment": {"type": "string", "minLength": 1, "maxLength": 64},
            "planned_for": {"type": "string", "format": "date"},
            "applications": {"type": "array", "items": _ref("ApplicationEntry")},
        },
    },
    "Release": {
        "type": "object",
        "additionalProperties": False,
        "required": ["digest"],
        "properties": {
            "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            "notes": {"type": "string", "maxLength": 4000},
        },
    },
    "PackageApplication": {
        "type": "object",
        "required": ["application", "version", "change_summary", "checklist_version"],
        "properties": {
            "application": {"type": "string"},
            "version": {"type": "string"},
            "change_summary": {"type": "string"},
            "checklist_version": {"type": ["integer", "null"]},
            "changed_in_revision": {"type": "integer"},
        },
    },
    "Package": {
        "type": "object",
        "required": ["key", "title", "environment", "state", "revision", "applications"],
        "properties": {
            "key": {"type": "string"},
            "title": {"type": "string"},
            "environment": {"type": "string"},
            "planned_for": {"type": ["string", "null"], "format": "date"},
            "assembled_by": _EMAIL,
            "state": {"enum": list(STATES)},
            "revision": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "submitted_at": _NULLABLE_TIME,
            "released_at": _NULLABLE_TIME,
            "released_by": {"type": ["string", "null"]},
            "release_digest": {"type": ["string", "null"]},
            "applications": {"type": "array", "items": _ref("PackageApplication")},
        },
    },
    "Blocker": {
        "type": "object",
        "required": ["code", "message", "waiting_on"],
        "properties": {
            # Warnings share this shape; OPEN_FINDING only ever appears among them.
            "code": {"enum": [*gate.BLOCKING_CODES, *gate.WAITING_CODES, *gate.WARNING_CODES]},
            "application": {"type": ["string", "null"]},
            "section": {"type": ["string", "null"]},
            "item": {"type": ["string", "null"]},
            "waiting_on": {"type": "array", "items": {"type": "string"}},
            "since": _NULLABLE_TIME,
            "message": {"type": "string"},
            # FREEZE_WINDOW and FREEZE_AHEAD only: the window and the occurrence meant.
            "freeze": {
                "type": "object",
                "required": ["id", "title", "reason", "owner", "starts", "ends"],
                "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "reason": {"type": "string"},
                    "owner": {
                        "type": "string",
                        "description": '"freeze calendar", or the application of a blackout',
                    },
                    "starts": {"type": "string", "format": "date-time"},
                    "ends": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
    "Gate": {
        "type": "object",
        "required": [
            "package",
            "revision",
            "state",
            "release",
            "digest",
            "status",
            "progress",
            "blockers",
            "warnings",
        ],
        "properties": {
            "package": {"type": "string"},
            "revision": {"type": "integer"},
            "state": {
                "enum": list(STATES),
                "description": "the package's lifecycle state; a released package's gate stays "
                "open (a pipeline re-run may re-deploy it), a cancelled one is blocked",
            },
            "release": {
                "description": "null until the package is released",
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["released_at", "released_by", "digest"],
                        "properties": {
                            "released_at": {"type": "string", "format": "date-time"},
                            "released_by": {"type": "string"},
                            "digest": {
                                "type": "string",
                                "pattern": "^sha256:[0-9a-f]{64}$",
                                "description": "the gate digest the release was recorded at",
                            },
                        },
                    },
                ],
            },
            "outcome": {
                "description": "after release, what key users said once it was live: "
                "confirmed, problems_reported or unconfirmed; null while they may still answer, "
                "before release, or when no checklist asks them",
                "enum": [*confirmation.OUTCOMES, None],
            },
            "confirmation": {
                "description": "null unless released with a confirmation window",
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["outcome", "closes_at", "waiting_on", "problems_reported_by"],
                        "properties": {
                            "outcome": {"enum": [*confirmation.OUTCOMES, None]},
                            "closes_at": {"type": "string", "format": "date-time"},
                            "waiting_on": {"type": "array", "items": {"type": "string"}},
                            "problems_reported_by": {
                                "type": "array",
                                "items": {"type": "string"},
                            },
                        },
                    },
                ],
            },
            "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
            "status": {"enum": [gate.OPEN, gate.PENDING, gate.BLOCKED]},
            "mode": {
                "enum": [gate.NORMAL, gate.EMERGENCY],
                "description": "emergency once an emergency is declared on the package: the "
                "emergency approvers' quorum and the required items are what the gate waits for",
            },
            "emergency": {
                "description": "null unless an emergency was declared",
                "oneOf": [{"type": "null"}, _ref("Emergency")],
            },
            "deferred": {
                "type": "array",
                "items": _ref("Blocker"),
                "description": "in an emergency: what the gate would otherwise wait for, sent "
                "out after the release as its post-implementation review",
            },
            "progress": {
                "type": "object",
                "required": ["signed", "required"],
                "properties": {"signed": {"type": "integer"}, "required": {"type": "integer"}},
            },
            "waiting_on": {"type": "array", "items": {"type": "string"}},
            "blockers": {"type": "array", "items": _ref("Blocker")},
            "warnings": {"type": "array", "items": _ref("Blocker")},
            "applications": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Emergency": {
        "type": "object",
        "required": ["declared_by", "declared_at", "reason", "approvals", "review"],
        "properties": {
            "declared_by": {"type": "string"},
            "declared_at": {"type": "string", "format": "date-time"},
            "reason": {"type": "string"},
            "approvals": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["approver", "approved_at"],
                    "properties": {
                        "approver": {"type": "string"},
                        "approved_at": {"type": "string", "format": "date-time"},
                    },
                },
            },
            "review": {
                "description": "the post-implementation review; null until the release",
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["due_at", "waiting_on", "completed_at"],
                        "properties": {
                            "due_at": {"type": "string", "format": "date-time"},
                            "waiting_on": {"type": "array", "items": {"type": "string"}},
                            "completed_at": _NULLABLE_TIME,
                        },
                    },
                ],
            },
        },
    },
    "EmergencyDeclaration": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 2000}},
    },
    "EmergencyResult": {
        "type": "object",
        "required": ["package", "gate"],
        "properties": {"package": _ref("Package"), "gate": _ref("Gate")},
    },
    "ReleaseResult": {
        "type": "object",
        "required": ["package", "gate", "audit_head"],
        "properties": {
            "package": _ref("Package"),
            "gate": _ref("Gate"),
            "audit_head": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
    },
    "DeployedApplication": {
        "type": "object",
        "additionalProperties": False,
        "required": ["application"],
        # The version label as the package holds it, or the commit sha deployed (or both).
        "anyOf": [{"required": ["version"]}, {"required": ["sha"]}],
        "properties": {
            "application": {"type": "string", "pattern": SLUG_PATTERN, "maxLength": 64},
            "version": {
                "type": "string",
                "minLength": 1,
                "maxLength": deployment.MAX_VERSION_CHARS,
            },
            "sha": {"type": "string", "pattern": deployment.SHA_PATTERN},
        },
    },
    "DeploymentCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["environment", "applications", "pipeline_url"],
        "properties": {
            "environment": {
                "type": "string",
                "minLength": 1,
                "maxLength": deployment.MAX_ENVIRONMENT_CHARS,
            },
            "applications": {
                "type": "array",
                "minItems": 1,
                "maxItems": deployment.MAX_APPLICATIONS,
                "items": _ref("DeployedApplication"),
            },
            "pipeline_url": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://",
                "maxLength": deployment.MAX_URL_CHARS,
            },
        },
    },
    "Deployment": {
        "type": "object",
        "required": [
            "id",
            "package",
            "environment",
            "applications",
            "pipeline_url",
            "reported_by",
            "reported_at",
            "gate",
            "covered",
            "uncovered",
        ],
        "properties": {
            "id": {"type": "integer"},
            "package": {"type": "string"},
            "environment": {"type": "string"},
            "applications": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["application", "version", "sha", "package_version"],
                    "properties": {
                        "application": {"type": "string"},
                        "version": {"type": ["string", "null"]},
                        "sha": {"type": ["string", "null"]},
                        # What the package held for this application when it was reported.
                        "package_version": {"type": ["string", "null"]},
                    },
                },
            },
            "pipeline_url": {"type": "string"},
            "reported_by": {"type": "string"},
            "reported_at": {"type": "string", "format": "date-time"},
            "gate": {
                "type": "object",
                "required": ["status", "digest", "package_state", "revision"],
                "properties": {
                    "status": {"enum": [gate.OPEN, gate.PENDING, gate.BLOCKED]},
                    "digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                    "package_state": {"enum": list(STATES)},
                    "revision": {"type": "integer"},
                },
            },
            "covered": {"type": "boolean"},
            "uncovered": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "application", "message"],
                    "properties": {
                        "code": {"enum": list(deployment.UNCOVERED_CODES)},
                        "application": {"type": ["string", "null"]},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    },
    "PopulationException": {
        "type": "object",
        "required": ["code", "package", "message", "details"],
        "properties": {
            "code": {"type": "string"},
            "package": {"type": ["string", "null"]},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    },
    "Population": {
        "type": "object",
        "required": ["header", "population", "deployments", "exceptions"],
        "properties": {
            "header": {
                "type": "object",
                "required": [
                    "format",
                    "query",
                    "period",
                    "generated_at",
                    "counts",
                    "audit_chain",
                    "audit_head",
                    "content_sha256",
                ],
                "properties": {
                    "format": {"const": POPULATION_FORMAT},
                    "query": {"type": "object"},
                    "period": {
                        "type": "object",
                        "required": ["from", "to", "start", "end", "interval"],
                    },
                    "generated_at": {"type": "string", "format": "date-time"},
                    "counts": {"type": "object"},
                    "audit_chain": {"type": "object"},
                    "audit_head": {
                        "type": "object",
                        "required": ["seq", "hash"],
                        "properties": {
                            "seq": {"type": "integer"},
                            "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                        },
                    },
                    "content_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            },
            "population": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "package",
                        "sources",
                        "mode",
                        "release_event",
                        "applications",
                        "approvals",
                        "separation_of_duties",
                    ],
                    "properties": {
                        "package": {"type": "string"},
                        "mode": {"enum": [population.NORMAL, population.EMERGENCY]},
                        "applications": {"type": "array"},
                        "approvals": {"type": "array"},
                        "separation_of_duties": {"type": "array"},
                    },
                },
            },
            "deployments": {"type": "array", "items": _ref("Deployment")},
            "exceptions": {"type": "array", "items": _ref("PopulationException")},
        },
    },
    "ChecklistSummary": {
        "type": "object",
        "required": ["application", "title", "approved_version", "versions"],
        "properties": {
            "application": {"type": "string"},
            "title": {"type": "string"},
            "approved_version": {"type": ["integer", "null"]},
            "versions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["version", "state", "sha256"],
                    "properties": {
                        "version": {"type": "integer"},
                        "state": {"type": "string"},
                        "sha256": {"type": "string"},
                        "synced_at": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
    },
    "ChecklistDetail": {
        "type": "object",
        "required": ["application", "title", "approved_version", "versions", "checklist"],
        "properties": {
            "application": {"type": "string"},
            "title": {"type": "string"},
            "approved_version": {"type": ["integer", "null"]},
            "versions": {"type": "array"},
            "checklist": {"type": ["object", "null"]},
        },
    },
}

_ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthenticated"},
    "403": {"$ref": "#/components/responses/Forbidden"},
    "404": {"$ref": "#/components/responses/NotFound"},
    # Any request can meet a locked or unreachable database (sent with Retry-After).
    "503": {"$ref": "#/components/responses/Unavailable"},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    operation_id: str,
    summary: str,
    scope: str,
    responses: dict[str, Any],
    body: str | None = None,
    extra_errors: tuple[str, ...] = (),
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "security": [{"bearer": [scope]}],
        "x-required-scope": scope,
        "responses": {
            **responses,
            **_ERRORS,
            **{code: _json(_ref("Error"), "error") for code in extra_errors},
        },
    }
    if body:
        operation["responses"]["413"] = {"$ref": "#/components/responses/TooLarge"}
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return operation


_ETAG_HEADER = {
    "description": "a strong entity tag of this gate document; it changes whenever any field "
    "of the document does",
    "schema": {"type": "string"},
}


def _gate_operation() -> dict[str, Any]:
    """The gate, with conditional requests: a poller sends back the ETag it holds."""
    operation = _operation(
        "getGate",
        "Evaluate the release gate (fails closed: an error, never open)",
        "gate:read",
        {
            "200": {**_json(_ref("Gate"), "the gate"), "headers": {"ETag": _ETAG_HEADER}},
            "304": {
                "description": "not modified: the gate is still the one If-None-Match names "
                "(no body)",
                "headers": {"ETag": _ETAG_HEADER},
            },
        },
        extra_errors=("503",),
    )
    operation["parameters"] = [
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "description": "the ETag of the gate you hold: 304 while it is still the gate",
            "schema": {"type": "string"},
        }
    ]
    return operation


_KEY_PARAM = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": KEY_PATTERN},
}
_APP_PARAM = {"name": "application", "in": "path", "required": True, "schema": {"type": "string"}}


def _day_parameter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "description": description,
        "schema": {"type": "string", "format": "date"},
    }


def _population_operation() -> dict[str, Any]:
    operation = _operation(
        "getPopulation",
        "Every package released in a period, reconciled with the audit log, for auditors",
        "audit:read",
        {
            "200": {
                "description": "the population (JSON, or CSV with `format=csv`)",
                "content": {
                    "application/json": {"schema": _ref("Population")},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
        extra_errors=("422",),
    )
    operation["parameters"] = [
        _day_parameter("from", "first day of the period (UTC), included"),
        _day_parameter("to", "last day of the period (UTC), included"),
        {
            "name": "format",
            "in": "query",
            "required": False,
            "schema": {"enum": list(FORMATS), "default": FORMATS[0]},
        },
    ]
    return operation


def openapi_document(server_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Gatekeeper API",
            "version": "1",
            "description": "Release packages, the release gate CI asks before deploying, and "
            "checklists. Authenticate with `Authorization: Bearer gk_…` "
            "(create tokens with `gatekeeper tokens create`). Every answer, errors included, "
            "is sent with `Cache-Control: no-store`: no cache may keep or share it.",
        },
        "servers": [{"url": f"{server_url}/api/v1"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "BadRequest": _json(_ref("Error"), "malformed request"),
                "Unauthenticated": _json(_ref("Error"), "missing, unknown or revoked token"),
                "Forbidden": _json(_ref("Error"), "the token lacks the required scope"),
                "NotFound": _json(_ref("Error"), "no such package or application"),
                "TooLarge": _json(_ref("Error"), "the request body is too large"),
                "Unavailable": _json(_ref("Error"), "the database is busy; retry later"),
            },
        },
        "paths": {
            "/packages": {
                "post": _operation(
                    "createPackage",
                    "Assemble a draft release package",
                    "packages:write",
                    {"201": _json(_ref("Package"), "created")},
                    body="PackageCreate",
                    extra_errors=("409", "422"),
                )
            },
            "/packages/{key}": {
                "parameters": [_KEY_PARAM],
                "get": _operation(
                    "getPackage",
                    "Read a package",
                    "gate:read",
                    {"200": _json(_ref("Package"), "ok")},
                ),
                "patch": _operation(
                    "editPackage",
                    "Edit a package; in review this bumps the revision",
                    "packages:write",
                    {"200": _json(_ref("Package"), "edited")},
                    body="PackageEdit",
                    extra_errors=("409", "422"),
                ),
            },
            "/packages/{key}/submit": {
                "parameters": [_KEY_PARAM],
                "post": _operation(
                    "submitPackage",
                    "Submit for sign-off: pins checklists and requests sign-offs",
                    "packages:write",
                    {"200": _json(_ref("Package"), "submitted")},
                    extra_errors=("409", "422"),
                ),
            },
            "/packages/{key}/cancel": {
                "parameters": [_KEY_PARAM],
                "post": _operation(
                    "cancelPackage",
                    "Cancel a package that is not released",
                    "packages:write",
                    {"200": _json(_ref("Package"), "cancelled")},
                    extra_errors=("409",),
                ),
            },
            "/packages/{key}/emergency": {
                "parameters": [_KEY_PARAM],
                "post": _operation(
                    "declareEmergency",
                    "Declare an emergency: the emergency approvers are asked to authorise it",
                    "packages:write",
                    {"200": _json(_ref("EmergencyResult"), "declared")},
                    body="EmergencyDeclaration",
                    extra_errors=("409", "422"),
                ),
            },
            "/packages/{key}/gate": {
                "parameters": [_KEY_PARAM],
                "get": _gate_operation(),
            },
            "/packages/{key}/release": {
                "parameters": [_KEY_PARAM],
                "post": _operation(
                    "releasePackage",
                    "Record the release; only when the gate is open at the digest you checked",
                    "releases:write",
                    {"200": _json(_ref("ReleaseResult"), "released")},
                    body="Release",
                    extra_errors=("409", "422"),
                ),
            },
            "/packages/{key}/deployments": {
                "parameters": [_KEY_PARAM],
                "post": _operation(
                    "recordDeployment",
                    "Record what a pipeline deployed, with the gate as it stands now",
                    "releases:write",
                    {"201": _json(_ref("Deployment"), "recorded")},
                    body="DeploymentCreate",
                    extra_errors=("422",),
                ),
            },
            "/audit/population": {"get": _population_operation()},
            "/checklists": {
                "get": _operation(
                    "listChecklists",
                    "Every application's checklist versions",
                    "gate:read",
                    {"200": _json({"type": "array", "items": _ref("ChecklistSummary")}, "ok")},
                )
            },
            "/checklists/{application}": {
                "parameters": [_APP_PARAM],
                "get": _operation(
                    "getChecklist",
                    "One application's versions and its approved checklist",
                    "gate:read",
                    {"200": _json(_ref("ChecklistDetail"), "ok")},
                ),
            },
        },
    }
