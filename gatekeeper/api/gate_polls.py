"""The fast path for CI waiting on a gate: a poll whose copy is still the gate gets its 304,
and a poll without one the stored document, before Flask sees the request.

1,000 pipelines polling every 10 s send 100 requests a second, nearly all of which change
nothing. Through Flask each cost more CPU than /healthz (routing, a dozen request hooks, the
request context); here it costs two dictionary lookups and the indexed read of the audit head
that tells whether anything changed at all (services/head_cache.py).

Taken only when every condition holds; any other request goes to Flask unchanged, which answers
it the same way (tests/integration/test_gate_poll_middleware.py holds the two to one answer):
- `GET /api/v1/packages/<key>/gate`, no query string, a well-formed package key;
- a bearer token this process authenticated at the current audit head, with `gate:read`, whose
  last use needs no new record (services/tokens.needs_touch);
- an answer this process cached at that head that still holds now, and that head is the one
  this host witnessed (services/head_witness.py): any other is checked through Flask first;
- no If-None-Match (a 200 with the stored bytes), or exactly that answer's strong ETag (a 304:
  what `gate check --wait` sends; lists, weak forms and other tags go to Flask).
The answer carries what Flask's would: the ETag, Cache-Control: no-store, the security headers
and the request id; it is counted in the metrics and written to the JSON access log alike.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import Flask

from gatekeeper import http_policy, logs, metrics
from gatekeeper.api.auth import URL_PREFIX
from gatekeeper.db.base import db
from gatekeeper.domain.package import KEY_PATTERN
from gatekeeper.runtime import Runtime, runtime
from gatekeeper.services import audit, head_witness, tokens
from gatekeeper.services.gate_cache import GateAnswer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ROUTE = f"{URL_PREFIX}/packages/<key>/gate"
_PATH = re.compile(rf"{re.escape(URL_PREFIX)}/packages/(?P<key>{KEY_PATTERN.strip('^$')})/gate")
NOT_MODIFIED = "304 NOT MODIFIED"
OK = "200 OK"


class GatePolls:
    def __init__(
        self,
        flask_app: WSGIApplication,
        rt: Runtime,
        engine: sa.Engine,
        form_targets: Iterable[str],
    ) -> None:
        self.flask_app = flask_app
        self._runtime = rt
        self._engine = engine
        self._witness = head_witness.witness_of(engine)
        self._headers = [
            ("Cache-Control", "no-store"),
            # Flask-Login looks into the session after every request, which makes Flask send
            # Vary: Cookie on each answer; sent here too, so both paths give one answer.
            ("Vary", "Cookie"),
            *http_policy.security_headers(form_targets),
        ]

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        found = self._held(environ)
        if found is None:
            return self.flask_app(environ, start_response)
        answer, not_modified = found
        request_id = http_policy.request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        tail = [*self._headers, (http_policy.REQUEST_ID_HEADER, request_id)]
        if not_modified:
            status, body = 304, b""
            start_response(NOT_MODIFIED, [("ETag", answer.etag), *tail])
        else:
            status, body = 200, answer.body
            start_response(
                OK,
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("ETag", answer.etag),
                    *tail,
                ],
            )
        seconds = time.perf_counter() - started
        metrics.count_request(ROUTE, "GET", status, seconds)
        if self._runtime.settings.log_format == logs.JSON:
            logs.log_request("GET", ROUTE, environ["PATH_INFO"], status, seconds, request_id)
        return [body] if body else []

    def _held(self, environ: WSGIEnvironment) -> tuple[GateAnswer, bool] | None:
        """The cached answer to send and whether the caller holds it already (a 304), or None
        for Flask to answer."""
        if environ.get("REQUEST_METHOD") != "GET" or environ.get("QUERY_STRING"):
            return None
        path = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        sent = environ.get("HTTP_IF_NONE_MATCH")
        scheme, _, secret = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if path is None or sent == "" or scheme.lower() != "bearer" or not secret.strip():
            return None
        rt = self._runtime
        try:
            with self._engine.connect() as connection:
                head = audit.latest_on(connection)
        except sa.exc.SQLAlchemyError:
            return None  # Flask's error handling answers (503 while the database is busy)
        if not self._witness.vouches_for(head):
            return None  # a new head is checked against the witnessed one first (Flask's path)
        caller = rt.callers.cached_at(head, secret.strip())
        if (
            caller is None
            or not caller.may(tokens.SCOPE_GATE_READ)
            or tokens.needs_touch(caller, clock=rt.clock)
        ):
            return None
        answer = rt.cached_gate_answer(head, path["key"])
        if answer is None:
            return None
        if sent is None:
            return answer, False
        return (answer, True) if sent == answer.etag else None


def install(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
    app.wsgi_app = GatePolls(  # type: ignore[method-assign]
        app.wsgi_app,
        runtime(app),
        engine,
        app.extensions.get(http_policy.FORM_TARGETS, ()),
    )
