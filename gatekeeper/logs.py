"""Log lines for a log pipeline (GATEKEEPER_LOG_FORMAT=json): one JSON object a line, masked.

Each line has timestamp, level, logger and message; lines written while a request is handled
add its request id, method and route (see web/observability.py, which puts them on the record).
Tokens are masked as in the text logs (gatekeeper.redaction): in the message, in a traceback,
and in the request's path.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from gatekeeper.redaction import redact

JSON = "json"
# The request fields web/observability.py may set on a record; nothing else a record carries
# as an attribute is written out, so that a library's `extra=` never leaks into the log.
REQUEST_FIELDS = ("request_id", "method", "route", "path", "status", "duration_ms")
_STANDARD_FIELDS = ("timestamp", "level", "logger", "message", "exc_info", "stack_info")


class RedactingJsonFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp=True,
            reserved_attrs=[*RESERVED_ATTRS, "gatekeeper_redacted"],
        )

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        for name in list(log_record):
            if name not in _STANDARD_FIELDS and name not in REQUEST_FIELDS:
                del log_record[name]
        log_record["message"] = redact(str(log_record.get("message", "")))
        if "path" in log_record:
            log_record["path"] = redact(str(log_record["path"]))

    def formatException(self, ei: Any) -> str:
        return "\n".join(redact(line) for line in super().formatException(ei).splitlines())


_requests = logging.getLogger("gatekeeper.request")


def log_request(
    method: str, route: str, path: str, status: int, seconds: float, request_id: str
) -> None:
    """The access-log line of JSON mode: the route and the masked path, the status and the
    time taken. Both request paths write it: Flask's and the fast path for gate polls."""
    _requests.info(
        "%s %s %s",
        method,
        route,
        status,
        extra={
            "request_id": request_id,
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
        },
    )


def use_json(logger: logging.Logger) -> None:
    """Every handler of `logger` writes JSON lines (a stderr handler is added if it has none)."""
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    for handler in logger.handlers:
        if not isinstance(handler.formatter, RedactingJsonFormatter):
            handler.setFormatter(RedactingJsonFormatter())
