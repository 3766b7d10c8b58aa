"""Operators' view of every request: a request id, metrics, a structured log line; /metrics.

- Request id: an incoming X-Request-ID is kept when it is a plain short word (what proxies and
  load balancers send), else one is made (http_policy); it is echoed on the response and on
  every log line written while the request is handled.
- Metrics count by route, the URL rule (`/s/<token>`), never the path a client sent.
- /metrics answers a scraper holding GATEKEEPER_METRICS_TOKEN (bearer) or calling from an
  address in GATEKEEPER_METRICS_ALLOW; anyone else gets 401 (or 403 while neither is set).
"""

from __future__ import annotations

import hmac
import logging
import time
from ipaddress import ip_address

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, request
from flask.typing import ResponseReturnValue

from gatekeeper import http_policy, logs, metrics
from gatekeeper.db.base import db
from gatekeeper.runtime import runtime
from gatekeeper.services import operations

bp = Blueprint("metrics", __name__)


class RequestContext(logging.Filter):
    """Puts the request's id, method and route on every record written while it is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and "request_id" in g:
            record.request_id = g.request_id
            record.method = request.method
            record.route = _route()
        return True


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else metrics.UNMATCHED_ROUTE


def _start() -> None:
    g.request_id = http_policy.request_id(request.headers.get(http_policy.REQUEST_ID_HEADER, ""))
    g.request_started = time.perf_counter()


def _finish(response: Response) -> Response:
    started = g.get("request_started")
    if started is None:  # a request refused before our before_request ran
        return response
    seconds = time.perf_counter() - started
    route = _route()
    metrics.count_request(route, request.method, response.status_code, seconds)
    response.headers[http_policy.REQUEST_ID_HEADER] = g.request_id
    if runtime(current_app).settings.log_format == logs.JSON:
        # The access log of JSON mode (gunicorn's own is off then).
        logs.log_request(
            request.method, route, request.path, response.status_code, seconds, g.request_id
        )
    return response


def _refusal(status: int, message: str, challenge: bool) -> Response:
    response = Response(message + "\n", status=status, mimetype="text/plain")
    if challenge:
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@bp.get("/metrics")
def scrape() -> ResponseReturnValue:
    settings = runtime(current_app).settings
    if settings.metrics_token is None and not settings.metrics_allow:
        return _refusal(
            403,
            "metrics are off: set GATEKEEPER_METRICS_TOKEN (bearer token) or "
            "GATEKEEPER_METRICS_ALLOW (scraper addresses) to turn them on",
            challenge=False,
        )
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    by_token = (
        settings.metrics_token is not None
        and scheme.lower() == "bearer"
        and hmac.compare_digest(offered.strip().encode(), settings.metrics_token.encode())
    )
    client = ip_address(request.remote_addr or "0.0.0.0")  # noqa: S104 (an address, not a bind)
    by_address = any(client in network for network in settings.metrics_allow)
    if not (by_token or by_address):
        return _refusal(
            401,
            "a metrics scrape needs the bearer token of GATEKEEPER_METRICS_TOKEN"
            + (" or an address in GATEKEEPER_METRICS_ALLOW" if settings.metrics_allow else ""),
            challenge=settings.metrics_token is not None,
        )
    snapshot = operations.snapshot(db.session, runtime(current_app).clock.now())
    return Response(metrics.exposition(snapshot), mimetype=None, content_type=metrics.CONTENT_TYPE)


def register(app: Flask) -> None:
    """First and last of the request hooks: the id is known to every other hook's log lines,
    and the count sees the final status."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_finish)
    app.register_blueprint(bp)
    app_log = logging.getLogger("gatekeeper")
    if runtime(app).settings.log_format == logs.JSON:
        logs.use_json(app_log)
    for handler in app_log.handlers:
        if not any(isinstance(f, RequestContext) for f in handler.filters):
            handler.addFilter(RequestContext())
