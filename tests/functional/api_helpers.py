"""Shared setup for the JSON API tests: data through the services, calls through the test client.

Every call made with `Api` is checked against the OpenAPI document the app serves: the status
must be documented for that operation and the body must validate against the documented schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Rule
from werkzeug.test import TestResponse

from gatekeeper.api.openapi import openapi_document
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain import signoff
from gatekeeper.domain.clock import FixedClock
from gatekeeper.services import packages, tokens
from tests.support import generated
from tests.support.api_tokens import issue_token

# `X as X`: re-exported to the API and web tests, which import them from here.
from tests.support.generated import EVIDENCE as EVIDENCE
from tests.support.generated import write_checklists as write_checklists

API_PREFIX = "/api/v1"
OPENAPI_ENDPOINT = "api.openapi"
RELEASE_MANAGER = "release-manager@example.com"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# --- data set up through the services -------------------------------------------------------


def sync_and_approve(directory: Path, clock: FixedClock) -> None:
    """Sync every checklist in `directory` and approve each new version by its first reviewer."""
    with unit_of_work(db.session) as session:
        generated.sync_and_approve(session, directory, clock)


def create_token(
    clock: FixedClock,
    name: str,
    scopes: Iterable[str] = tokens.SCOPES,
    *,
    owner: str | None = RELEASE_MANAGER,
) -> str:
    with unit_of_work(db.session) as session:
        return issue_token(session, name=name, scopes=scopes, owner=owner, clock=clock)


def revoke_token(clock: FixedClock, name: str) -> None:
    with unit_of_work(db.session) as session:
        tokens.revoke_token(session, name, clock=clock)


def create_package(
    clock: FixedClock, key: str, applications: dict[str, str], *, submit: bool = True
) -> None:
    spec = generated.package_spec(
        key, (packages.ApplicationSpec(a, v, f"{a} {v}") for a, v in applications.items())
    )
    with unit_of_work(db.session) as session:
        packages.create_package(session, spec, assembler=RELEASE_MANAGER, clock=clock)
        if submit:
            packages.submit_package(session, key, actor=RELEASE_MANAGER, clock=clock)


def sign(
    clock: FixedClock,
    key: str,
    *,
    application: str | None = None,
    signer: str | None = None,
    item: str | None = None,
    except_signer: str | None = None,
    limit: int | None = None,
    decision: signoff.Decision | None = None,
) -> int:
    """Record decisions for the pending requests that match; returns how many were recorded."""
    done = 0
    with unit_of_work(db.session) as session:
        for request in packages.pending_requests(session, key):
            if limit is not None and done >= limit:
                break
            if application and request.package_application.application.slug != application:
                continue
            if (signer and request.signer != signer) or (item and request.item_id != item):
                continue
            if request.signer == except_signer:
                continue
            packages.record_signoff(
                session, request.id, decision or generated.positive_decision(request), clock=clock
            )
            done += 1
    return done


def pending_signers(key: str) -> set[tuple[str, str]]:
    """(application, signer) of every pending request of a package."""
    with unit_of_work(db.session) as session:
        return {
            (r.package_application.application.slug, r.signer)
            for r in packages.pending_requests(session, key)
        }


def pending_count(key: str) -> int:
    with unit_of_work(db.session) as session:
        return len(packages.pending_requests(session, key))


# --- counting SQL ------------------------------------------------------------------------------


@contextmanager
def recorded_statements() -> Iterator[list[str]]:
    """Every SQL statement sent through the engine while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


# --- the OpenAPI document ----------------------------------------------------------------------


def api_rules(app: Flask) -> list[Rule]:
    """Every /api/v1 rule but the OpenAPI document itself."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(API_PREFIX + "/") and rule.endpoint != OPENAPI_ENDPOINT
    ]


def rule_methods(rule: Rule) -> set[str]:
    return {m.lower() for m in rule.methods or ()} - {"head", "options"}


def openapi_path(rule: Rule) -> str:
    """`/api/v1/packages/<key>/gate` as the document spells it: `/packages/{key}/gate`."""
    path = rule.rule.removeprefix(API_PREFIX)
    for argument in rule.arguments:
        for pattern in (f"<{argument}>", *(f"<{c}:{argument}>" for c in ("string", "path"))):
            path = path.replace(pattern, "{" + argument + "}")
    assert "<" not in path, f"unexpected converter in {rule.rule}"
    return path


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def validate(doc: dict[str, Any], schema: dict[str, Any], instance: object) -> None:
    """Validate `instance` against a schema of the document (its $refs resolve in `doc`)."""
    root = {**schema, "components": doc["components"]}
    jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(instance)


def schema_validate(doc: dict[str, Any], name: str, instance: object) -> None:
    validate(doc, {"$ref": f"#/components/schemas/{name}"}, instance)


class Api:
    """A test client for /api/v1 that checks every answer against the OpenAPI document."""

    def __init__(self, app: Flask, token: str | None = None) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        self.token = token
        self.doc = openapi_document("http://gatekeeper.test")
        self.checked: list[tuple[str, str, int]] = []

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        anonymous: bool = False,
        json: object = None,
        data: str | bytes | None = None,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        sent = dict(headers or {})
        secret = token or self.token
        if secret and not anonymous:
            sent.setdefault("Authorization", f"Bearer {secret}")
        kwargs: dict[str, Any] = {"method": method, "headers": sent}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        if content_type is not None:
            kwargs["content_type"] = content_type
        # Each request gets a fresh session, as it would with its own app context in production.
        db.session.remove()
        try:
            response = self.client.open(path, **kwargs)
        finally:
            db.session.remove()
        assert response.status_code != 500, response.get_data(as_text=True)
        self._check(method, path, response)
        return response

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.call("PATCH", path, **kwargs)

    def _check(self, method: str, path: str, response: TestResponse) -> None:
        url = urlsplit(path).path
        if not url.startswith(API_PREFIX + "/"):
            return
        if response.status_code >= 400:
            assert_envelope(response)
        try:
            endpoint, _ = self.app.url_map.bind("gatekeeper.test").match(url, method)
        except HTTPException:
            return
        if endpoint == OPENAPI_ENDPOINT:
            return
        (rule,) = self.app.url_map.iter_rules(endpoint)
        operation = self.doc["paths"][openapi_path(rule)][method.lower()]
        status = str(response.status_code)
        assert status in operation["responses"], (
            f"{method} {path} answered {status}, which {operation['operationId']} does not document"
        )
        documented = resolve(self.doc, operation["responses"][status])
        if response.status_code == 304:
            assert response.get_data() == b"", f"{method} {path}: a 304 carries no body"
            assert "content" not in documented
            self.checked.append((operation["operationId"], status, response.status_code))
            return
        assert response.mimetype in documented["content"], (
            f"{method} {path} answered {response.mimetype}, which "
            f"{operation['operationId']} does not document for {status}"
        )
        if response.mimetype == "application/json":
            schema = documented["content"]["application/json"]["schema"]
            validate(self.doc, schema, response.json)
        self.checked.append((operation["operationId"], status, response.status_code))


def assert_envelope(
    response: TestResponse, status: int | None = None, code: str | None = None
) -> dict[str, Any]:
    """The response is the JSON error envelope; returns its `error` member."""
    if status is not None:
        assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json", response.get_data(as_text=True)
    body = response.json
    assert isinstance(body, dict)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error
