"""GitLab's side of deployment approvals, for the local fake.

Shapes as documented at https://docs.gitlab.com/api/deployments/ ("List project deployments"
with `status=blocked` and `environment`, and "Approve or reject a blocked deployment":
`POST /projects/:id/deployments/:deployment_id/approval` with `status` and `comment`, answered
201), authenticated by the `PRIVATE-TOKEN` header (https://docs.gitlab.com/api/rest/authentication/),
and webhooks carrying `X-Gitlab-Token` and `X-Gitlab-Event`
(https://docs.gitlab.com/user/project/integrations/webhooks/).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

TOKEN = "glpat-gatekeeper-bot-0123456789"
PROJECT = "group/payments"
ENVIRONMENT = "production"


def encoded(project: str = PROJECT) -> str:
    return quote(project, safe="")


def deployment(deployment_id: int, *, sha: str, ref: str) -> dict[str, Any]:
    """One item of the deployments list, trimmed to the fields the docs show and we read."""
    return {
        "id": deployment_id,
        "iid": deployment_id,
        "ref": ref,
        "sha": sha,
        "status": "blocked",
        "created_at": "2026-12-02T14:00:00.000Z",
        "environment": {"id": 9, "name": ENVIRONMENT, "tier": "production"},
        "user": {"id": 1, "username": "deployer"},
        "deployable": {"id": 77, "status": "manual", "stage": "deploy", "name": "deploy"},
    }


class FakeGitLab:
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.blocked: list[dict[str, Any]] = []
        self.approvals: list[dict[str, Any]] = []
        self.lists = 0
        self.answers: list[int] = []
        # Werkzeug matches the decoded path; each handler checks the raw one kept %2F, which
        # GitLab needs to read the project's path as one segment.
        server.expect_request(
            f"/api/v4/projects/{PROJECT}/deployments", method="GET"
        ).respond_with_handler(self._list)

    def _authorised(self, request: Request) -> bool:
        assert f"/projects/{encoded()}/" in request.environ["REQUEST_URI"]
        return request.headers.get("PRIVATE-TOKEN") == TOKEN

    def _list(self, request: Request) -> Response:
        if not self._authorised(request):
            return Response('{"message":"401 Unauthorized"}', status=401)
        assert request.args["status"] == "blocked"
        self.lists += 1
        wanted = request.args.get("environment")
        found = [d for d in self.blocked if d["environment"]["name"] == wanted]
        return Response(json.dumps(found), status=200, content_type="application/json")

    def expect_approval(self, deployment_id: int) -> None:
        self.server.expect_request(
            f"/api/v4/projects/{PROJECT}/deployments/{deployment_id}/approval", method="POST"
        ).respond_with_handler(lambda request: self._approve(deployment_id, request))

    def _approve(self, deployment_id: int, request: Request) -> Response:
        if not self._authorised(request):
            return Response('{"message":"401 Unauthorized"}', status=401)
        body = request.get_json()
        assert set(body) <= {"status", "comment", "represented_as"}
        assert body["status"] in ("approved", "rejected")
        if self.answers:
            return Response('{"message":"busy"}', status=self.answers.pop(0))
        self.approvals.append({"deployment": deployment_id, **body})
        self.blocked = [d for d in self.blocked if d["id"] != deployment_id]
        answer = {
            "user": {"username": "gatekeeper-bot"},
            "status": body["status"],
            "created_at": "2026-12-02T14:05:00.000Z",
            "comment": body.get("comment"),
        }
        return Response(json.dumps(answer), status=201, content_type="application/json")


def event_headers(secret: str, event: str = "Job Hook") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Gitlab-Token": secret, "X-Gitlab-Event": event}
