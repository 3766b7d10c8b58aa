"""One table from errors to HTTP status; friendly pages for browsers, envelopes for the API."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from gatekeeper.domain import errors

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.GatekeeperError], int] = {
    errors.NotFound: 404,
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.ValidationFailed: 422,
    errors.Conflict: 409,
    errors.TokenExpired: 410,
    errors.LinkUnusable: 410,
    errors.TokenInvalid: 400,
    errors.Unavailable: 503,
}


def status_of(error: errors.GatekeeperError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_envelope(code: str, message: str, details: object = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": details}}


def register(app: Flask) -> None:
    @app.errorhandler(errors.GatekeeperError)
    def domain_error(error: errors.GatekeeperError) -> ResponseReturnValue:
        status = status_of(error)
        headers = {"Retry-After": "2"} if status == 503 else {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="gatekeeper"'
        if wants_json():
            return error_envelope(error.code, error.message, error.details), status, headers
        return (
            render_template("error.html", status=status, message=error.message),
            status,
            headers,
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        code = (error.name or "error").lower().replace(" ", "_")
        message = error.description or error.name
        if wants_json():
            return error_envelope(code, message), status
        return render_template("error.html", status=status, message=message), status

    @app.errorhandler(sa.exc.OperationalError)
    def database_unavailable(error: sa.exc.OperationalError) -> ResponseReturnValue:
        # Locked or unreachable database: the transaction was rolled back, so nothing is half
        # written; tell the client to retry instead of failing with a 500.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error.orig)
        return domain_error(
            errors.Unavailable("The database is busy or unreachable. Nothing was changed; retry.")
        )

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error on %s %s", request.method, request.path)
        message = "Something went wrong on our side. Nothing was changed; please try again."
        if wants_json():
            return error_envelope("internal_error", message), 500
        return render_template("error.html", status=500, message=message), 500
