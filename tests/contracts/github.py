"""GitHub's side of a custom deployment protection rule, for the local fake.

Shapes as documented at
https://docs.github.com/en/webhooks/webhook-events-and-payloads#deployment_protection_rule (the
webhook), https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
(X-Hub-Signature-256), https://docs.github.com/en/rest/actions/workflow-runs#review-custom-deployment-protection-rules-for-a-workflow-run
(status reports and decisions, answered 204), and
https://docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app
(the token exchange, answered 201).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

APP_ID = "424242"
INSTALLATION = 99999
REPOSITORY = "acme/payments"
ENVIRONMENT = "production"


def private_key_pem() -> tuple[str, Any]:
    """A fresh App key: the PEM Gatekeeper reads, and the public key GitHub checks with."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, key.public_key()


def callback_path(run: int, repository: str = REPOSITORY) -> str:
    return f"/repos/{repository}/actions/runs/{run}/deployment_protection_rule"


def requested(
    api_url: str,
    *,
    run: int,
    sha: str,
    ref: str = "main",
    repository: str = REPOSITORY,
    environment: str = ENVIRONMENT,
) -> dict[str, Any]:
    """The `deployment_protection_rule` webhook, action `requested`."""
    return {
        "action": "requested",
        "environment": environment,
        "event": "push",
        "deployment_callback_url": f"{api_url}{callback_path(run, repository)}",
        "deployment": {
            "id": run * 10,
            "sha": sha,
            "ref": ref,
            "environment": environment,
            "task": "deploy",
        },
        "pull_requests": [],
        "repository": {"full_name": repository, "name": repository.split("/")[1]},
        "organization": {"login": repository.split("/")[0]},
        "installation": {"id": INSTALLATION},
        "sender": {"login": "octocat"},
    }


def signed(body: bytes, secret: str) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "deployment_protection_rule",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


class FakeGitHub:
    """The two endpoints Gatekeeper calls, checking what the docs require of each call."""

    def __init__(self, server: HTTPServer, public_key: Any, now: Callable[[], datetime]) -> None:
        self.server = server
        self.public_key = public_key
        self.now = now
        self.tokens_issued: list[str] = []
        self.token_lifetime_s = 3600
        self.calls: list[dict[str, Any]] = []
        self.answers: list[int] = []  # answers to give to the next calls, then 204
        self.refuse_tokens: set[str] = set()
        server.expect_request(
            f"/app/installations/{INSTALLATION}/access_tokens", method="POST"
        ).respond_with_handler(self._token)

    def _token(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        assert scheme == "Bearer"
        claims = jwt.decode(
            token,
            self.public_key,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False},
        )
        assert claims["iss"] == APP_ID
        now = int(self.now().timestamp())
        assert claims["iat"] <= now - 30, "backdated for clock drift"
        assert 0 < claims["exp"] - claims["iat"] <= 600, "GitHub accepts at most 10 minutes"
        assert claims["exp"] > now
        issued = f"ghs_{len(self.tokens_issued) + 1}"
        self.tokens_issued.append(issued)
        expires = datetime.fromtimestamp(now + self.token_lifetime_s).astimezone()
        return Response(
            json.dumps({"token": issued, "expires_at": expires.isoformat()}),
            status=201,
            content_type="application/json",
        )

    def expect_run(self, run: int, repository: str = REPOSITORY) -> None:
        self.server.expect_request(
            callback_path(run, repository), method="POST"
        ).respond_with_handler(self._callback)

    def _callback(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        assert request.headers.get("Accept") == "application/vnd.github+json"
        if token in self.refuse_tokens or token not in self.tokens_issued:
            return Response('{"message":"Bad credentials"}', status=401)
        body = request.get_json()
        assert set(body) in (
            {"environment_name", "comment"},
            {"environment_name", "state", "comment"},
        )
        assert len(body["comment"]) <= 1024
        if self.answers:
            status = self.answers.pop(0)
            return Response('{"message":"busy"}', status=status)
        self.calls.append({"path": request.path, **body})
        return Response(status=204)

    def decisions(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if "state" in c]

    def reports(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if "state" not in c]
