"""The built-in server's request log, with emailed-link tokens cut out of the logged lines."""

from __future__ import annotations

from typing import Any

from werkzeug.serving import WSGIRequestHandler

from gatekeeper.redaction import redact

__all__ = ["RedactingRequestHandler", "redact"]


class RedactingRequestHandler(WSGIRequestHandler):
    """Tokens (sign-off and sign-in links) are credentials: the access log must never show one."""

    def log(self, type: str, message: str, *args: Any) -> None:
        super().log(type, redact(message % args) if args else redact(message))
