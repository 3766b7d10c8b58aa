"""The built-in server's request log, with sign-off tokens cut out of the logged paths."""

from __future__ import annotations

import re
from typing import Any

from werkzeug.serving import WSGIRequestHandler

_TOKEN_PATH = re.compile(r"(/s/|/login/|/review/|/report/)(?!resend\b|oidc\b)[^\s/?\"]+")
# The single sign-on callback carries the provider's authorization code and the state.
_CALLBACK_QUERY = re.compile(r"(/login/oidc/callback\?)[^\s\"]*")


def redact(line: str) -> str:
    return _CALLBACK_QUERY.sub(r"\1[redacted]", _TOKEN_PATH.sub(r"\1[token]", line))


class RedactingRequestHandler(WSGIRequestHandler):
    """Tokens (sign-off and sign-in links) are credentials: the access log must never show one."""

    def log(self, type: str, message: str, *args: Any) -> None:
        super().log(type, redact(message % args) if args else redact(message))
