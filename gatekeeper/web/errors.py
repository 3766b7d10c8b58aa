"""One table from errors to HTTP status; friendly pages for browsers, envelopes for the API."""

from __future__ import annotations

import contextlib
import logging
from types import TracebackType

import sqlalchemy as sa
from flask import Flask, current_app, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from gatekeeper.db.base import db
from gatekeeper.db.engine import database_failure
from gatekeeper.domain import errors
from gatekeeper.redaction import redact

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
RETRY_AFTER_SECONDS = "2"
JSON_PATHS = frozenset({"/healthz", "/readyz"})

DATABASE_BUSY = "The database is busy or unreachable. Nothing was changed; retry."
DATABASE_UNREADABLE = (
    "The database cannot be read: its file or storage is damaged. Nothing was changed; "
    "an operator has to restore it (see gatekeeper backup)."
)


def status_of(error: errors.GatekeeperError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path in JSON_PATHS


def error_envelope(code: str, message: str, details: object = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "details": details}}


def where() -> str:
    """The request as a log line may name it: method and path, tokens masked."""
    return f"{request.method} {redact(request.path)}"


def end_transaction(*, database_failed: bool = False) -> None:
    """Drop whatever the failed request left open, so that its error page can neither use
    half-done work nor trip over a transaction that has to be rolled back first."""
    # A failed database gets no ROLLBACK over a connection that may be dead: the connections
    # are discarded instead (the server rolls back what was not committed).
    with contextlib.suppress(sa.exc.SQLAlchemyError):
        if database_failed:
            db.session().invalidate()
        else:
            db.session.rollback()


def error_page(status: int, message: str, *, database_down: bool = False) -> str:
    if not database_down:
        try:
            return render_template("error.html", status=status, message=message)
        except sa.exc.SQLAlchemyError:
            end_transaction(database_failed=True)
    # Flask-Login's context processor looks up the signed-in account on every render_template:
    # with the database down, the page is rendered without context processors, as if signed out.
    page: str = current_app.jinja_env.get_template("error.html").render(
        status=status, message=message, database_down=True
    )
    return page


def respond(error: errors.GatekeeperError, *, database_down: bool = False) -> ResponseReturnValue:
    status = status_of(error)
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="gatekeeper"'
    if wants_json():
        return error_envelope(error.code, error.message, error.details), status, headers
    return error_page(status, error.message, database_down=database_down), status, headers


def register(app: Flask) -> None:
    app.register_error_handler(errors.GatekeeperError, respond)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        code = (error.name or "error").lower().replace(" ", "_")
        message = error.description or error.name
        if wants_json():
            return error_envelope(code, message), status
        return error_page(status, message), status

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error on %s", where())
        end_transaction()
        message = "Something went wrong on our side. Nothing was changed; please try again."
        if wants_json():
            return error_envelope("internal_error", message), 500
        return error_page(500, message), 500

    def database_error(error: sa.exc.SQLAlchemyError) -> ResponseReturnValue:
        failure = database_failure(error)
        if failure is None:
            return unexpected(error)
        # The transaction did not commit, so nothing is half written: one line says what
        # happened (no traceback, no token), the client is told to retry.
        end_transaction(database_failed=True)
        if failure.unreadable:
            log.critical("database unreadable on %s: %s", where(), redact(failure.reason))
            return respond(errors.DatabaseUnreadable(DATABASE_UNREADABLE), database_down=True)
        log.warning("database unavailable on %s: %s", where(), redact(failure.reason))
        return respond(errors.Unavailable(DATABASE_BUSY), database_down=True)

    app.register_error_handler(sa.exc.DBAPIError, database_error)
    app.register_error_handler(sa.exc.TimeoutError, database_error)

    @app.teardown_appcontext
    def end_session(_error: BaseException | None) -> None:
        # Runs before Flask-SQLAlchemy's own teardown (teardowns run last registered first),
        # whose ROLLBACK on a connection killed after the response was made would raise out of
        # the WSGI call: the client would get the server's bare 500 instead of its answer.
        try:
            db.session.remove()
        except sa.exc.SQLAlchemyError as error:
            failure = database_failure(error)
            if failure is None:
                raise
            # The request is gone by now (this is the app context's teardown): no path to name.
            log.warning("database connection lost after a response: %s", redact(failure.reason))
            end_transaction(database_failed=True)
            db.session.remove()

    def log_exception(
        exc_info: tuple[type[BaseException], BaseException, TracebackType]
        | tuple[None, None, None],
    ) -> None:
        # Flask's own line names the raw path ("Exception on /s/<token> [POST]"); it is written
        # only when an error handler itself failed.
        log.error("unhandled error on %s", where(), exc_info=exc_info)

    app.log_exception = log_exception  # type: ignore[method-assign]  # on purpose, see above
