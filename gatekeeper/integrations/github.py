"""GitHub: Gatekeeper as a GitHub App answering custom deployment protection rules.

GitHub posts `deployment_protection_rule` (action `requested`) signed with the App's webhook
secret (X-Hub-Signature-256, HMAC-SHA256 of the raw body). Documented at
https://docs.github.com/en/actions/how-tos/deploy/configure-and-manage-deployments/create-custom-protection-rules
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.runtime import runtime
from gatekeeper.services import deployment_gates

bp = Blueprint("github", __name__, url_prefix="/integrations/github")


def _answer(status: int, **body: Any) -> tuple[Response, int]:
    return jsonify(body), status


def signature_ok(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode())


@bp.post("/webhook")
def webhook() -> tuple[Response, int]:
    rt = runtime(current_app)
    secret = rt.settings.github_webhook_secret
    if not secret:
        return _answer(404, error="the GitHub App is not configured here")
    body = request.get_data()
    if not signature_ok(secret, body, request.headers.get("X-Hub-Signature-256", "")):
        return _answer(401, error="bad signature")
    event = request.headers.get("X-GitHub-Event", "")
    try:
        payload = json.loads(body)
    except ValueError:
        return _answer(400, error="the body is not JSON")
    if event != "deployment_protection_rule" or payload.get("action") != "requested":
        return _answer(202, ignored=f"{event} {payload.get('action', '')}".strip())
    try:
        deployment = payload["deployment"]
        callback_url = str(payload["deployment_callback_url"])
        environment = str(payload["environment"])
        repository = str(payload["repository"]["full_name"])
        installation = int(payload["installation"]["id"])
        ref, sha = str(deployment.get("ref") or ""), str(deployment.get("sha") or "")
    except (KeyError, TypeError, ValueError):
        return _answer(422, error="not a deployment_protection_rule payload")
    # Only GitHub's own API receives the installation token, whatever a payload says.
    if not callback_url.startswith(f"{rt.settings.github_api_url}/repos/{repository}/"):
        return _answer(422, error="the callback URL is not on the configured GitHub API")
    found = deployment_gates.Request(
        platform="github",
        external_id=f"{callback_url}#{environment}",
        project=repository,
        environment=environment,
        ref=ref,
        sha=sha,
        callback={"url": callback_url, "environment": environment, "installation": installation},
    )
    with unit_of_work(db.session) as session:
        row = deployment_gates.record_request(
            session, found, clock=rt.clock, settings=rt.deployment_gate_settings()
        )
        return _answer(202, deployment=row.id, state=row.state)
