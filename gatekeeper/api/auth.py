"""Bearer-token authentication, scopes and request-body validation for the JSON API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import jsonschema
from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from gatekeeper.api.openapi import SCHEMAS, openapi_document
from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import Unauthenticated, ValidationFailed
from gatekeeper.runtime import runtime
from gatekeeper.services import tokens

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

URL_PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=URL_PREFIX)


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document(runtime(current_app).settings.base_url))


def requires(scope: str) -> Callable[[F], F]:
    """Authenticate the bearer token (never the session cookie) and check one scope."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            g.caller = _authenticate()
            g.caller.require(scope)
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def _authenticate() -> tokens.Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("send an API token as `Authorization: Bearer gk_…`")
    rt = runtime(current_app)
    caller = rt.callers.authenticate(db.session, secret.strip())
    if tokens.needs_touch(caller, clock=rt.clock):
        with unit_of_work(db.session) as session:
            tokens.touch(session, caller, clock=rt.clock)
        rt.callers.touched(secret.strip())
    return caller


@functools.cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": {"schemas": SCHEMAS}}
    return jsonschema.Draft202012Validator(root)


def json_body(schema_name: str) -> dict[str, Any]:
    """The request's JSON object, validated against the OpenAPI schema of that body."""
    if not request.is_json:
        raise ValidationFailed("send a JSON body with Content-Type: application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # `silent` only covers ValueError; deeply nested JSON ("[[[[…") makes the parser
        # raise RecursionError, which must be a 422 like any other unusable body, not a 500.
        body = None
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object (is it valid JSON?)")
    problems = sorted(_validator(schema_name).iter_errors(body), key=lambda e: list(e.path))
    if problems:
        raise ValidationFailed(
            "the request body does not match the API schema",
            details=[
                {"field": "/".join(str(p) for p in e.path) or None, "problem": e.message}
                for e in problems
            ],
        )
    return body
