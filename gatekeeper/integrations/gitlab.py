"""GitLab: Gatekeeper's bot user approves or rejects deployments of protected environments.

Blocked deployments fire no webhook, so the worker polls for them; job and deployment events
(sent with the webhook's secret token in X-Gitlab-Token) only make the next poll come sooner.
Documented at https://docs.gitlab.com/user/project/integrations/webhooks/ and
https://docs.gitlab.com/ci/environments/deployment_approvals/
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.runtime import runtime
from gatekeeper.services import deployment_gates

bp = Blueprint("gitlab", __name__, url_prefix="/integrations/gitlab")

# The events after which a deployment may be waiting for approval.
EVENTS = frozenset({"Job Hook", "Deployment Hook"})


@bp.post("/webhook")
def webhook() -> tuple[Response, int]:
    rt = runtime(current_app)
    secret = rt.settings.gitlab_webhook_secret
    if not secret:
        return jsonify(error="GitLab is not configured here"), 404
    given = request.headers.get("X-Gitlab-Token", "")
    if not hmac.compare_digest(secret.encode(), given.encode()):
        return jsonify(error="wrong secret token"), 401
    event = request.headers.get("X-Gitlab-Event", "")
    if event not in EVENTS:
        return jsonify(ignored=event), 202
    with unit_of_work(db.session) as session:
        deployment_gates.poll_soon(session, "gitlab", clock=rt.clock)
    return jsonify(poll="soon"), 202
