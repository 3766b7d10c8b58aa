"""Emailed-link tokens cut out of anything that is logged: paths, request lines, referrers."""

from __future__ import annotations

import re
from urllib.parse import unquote

# The pages whose path segment is a token (/s/resend is a form, not a token; a token already
# masked stays as it is, so that masking twice changes nothing).
_TOKEN_PATH = re.compile(
    r"/(s|login|review/findings|review|report)/"
    r"(?!(?:resend|oidc)(?![^/?#\s\"])|\[token\])[^/?#\s\"]+"
)
# The single sign-on callback carries the provider's authorization code and the state.
_CALLBACK_QUERY = re.compile(r"(/login/oidc/callback\?)[^\s\"]*")
# An itsdangerous token wherever it stands (a query string, a Referer header, a message):
# base64url payload, timestamp and signature joined by dots.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{4,12}\.[A-Za-z0-9_\-]{16,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Servers decode a path once before routing; a log may show it encoded several times over.
_MAX_DECODINGS = 4
MASK = "[token]"


def _decoded(text: str) -> str:
    for _ in range(_MAX_DECODINGS):
        decoded = unquote(text, errors="replace")
        if decoded == text:
            break
        text = decoded
    return text


def redact(text: str) -> str:
    """`text` with every token masked, whatever its spelling: percent-encoded, padded, with a
    trailing slash or a query string. Decoding can bring back line breaks and other control
    characters, which are escaped so that one request stays one log line."""
    paths = _TOKEN_PATH.sub(rf"/\1/{MASK}", _CALLBACK_QUERY.sub(r"\1[redacted]", _decoded(text)))
    masked = _TOKEN_SHAPE.sub(MASK, paths)
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", masked)
