"""`POST /integrations/azure-devops/check`: an Azure DevOps "Invoke REST API" check in callback
mode. The view only authenticates, reads and records; the worker calls Azure DevOps back once
the gate decides (services/deployment_gates, notify/azure_devops). See docs/ci.md.

Azure DevOps waits 3 seconds for the answer: nothing here talks to another system."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.runtime import runtime
from gatekeeper.services import deployment_gates

bp = Blueprint("azure_devops", __name__, url_prefix="/integrations/azure-devops")

PLATFORM = "azure_devops"
# The headers Azure DevOps sends the check by default, and the callback's key for each: where
# and how the worker answers (notify/azure_devops).
HEADERS = {
    "PlanUrl": "plan_url",
    "ProjectId": "project_id",
    "HubName": "hub_name",
    "PlanId": "plan_id",
    "JobId": "job_id",
    "TimelineId": "timeline_id",
    "TaskInstanceId": "task_instance_id",
    "AuthToken": "auth_token",
}
KEY_LIMIT = 64
TEXT_LIMIT = 255
BODY_FORMS = (
    '{"package": "<package key>"}, or a deploy target of a checklist: '
    '{"project": "$(System.TeamProject)", "environment": "<environment>", '
    '"sha": "$(Build.SourceVersion)"} (or "ref" instead of "sha")'
)


def _error(status: int, message: str) -> ResponseReturnValue:
    return jsonify({"error": message}), status


def _authenticated(secret: str) -> bool:
    """The generic service connection's password is the shared secret (its user name is free):
    Azure DevOps sends it as HTTP Basic authentication."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    _, _, password = decoded.partition(":")
    return hmac.compare_digest(password.encode(), secret.encode())


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    return value.strip()[:TEXT_LIMIT] if isinstance(value, str) else ""


@bp.post("/check")
def check() -> ResponseReturnValue:
    rt = runtime(current_app)
    secret = rt.settings.azure_devops_secret
    if not secret:
        return _error(404, "the Azure DevOps check is not configured")
    if not _authenticated(secret):
        return _error(401, "wrong or missing credentials")
    missing = [name for name in HEADERS if not request.headers.get(name, "").strip()]
    if missing:
        return _error(400, f"missing headers: {', '.join(missing)}")
    callback = {key: request.headers[name].strip() for name, key in HEADERS.items()}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, f"send a JSON body: {BODY_FORMS}")
    package = _text(body, "package") or None
    project, environment = _text(body, "project"), _text(body, "environment")
    ref, sha = _text(body, "ref"), _text(body, "sha")
    if package is not None and len(package) > KEY_LIMIT:
        return _error(400, f"a package key has at most {KEY_LIMIT} characters")
    if package is None and not (project and environment and (ref or sha)):
        return _error(400, f"name the package or the deploy target: {BODY_FORMS}")
    wait = deployment_gates.Request(
        platform=PLATFORM,
        external_id=f"{callback['plan_id']}:{callback['task_instance_id']}"[:500],
        # A deploy target is matched by the project's name; a named package needs no match,
        # and the project's id (a header Azure always sends) is kept with the wait.
        project=project if package is None else callback["project_id"][:TEXT_LIMIT],
        environment=environment or callback["hub_name"][:TEXT_LIMIT],
        ref=ref,
        sha=sha,
        callback=callback,
        package=package,
    )
    with unit_of_work(db.session) as session:
        row = deployment_gates.record_request(
            session, wait, clock=rt.clock, settings=rt.deployment_gate_settings()
        )
        answer = {
            "deployment": row.id,
            "state": row.state,
            "package": deployment_gates.package_of(session, row) or package,
        }
    return jsonify(answer), 200
