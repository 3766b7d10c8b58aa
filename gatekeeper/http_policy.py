"""What every HTTP answer carries, whichever layer writes it: Flask (web/) or the WSGI fast
path for gate polls (api/gate_polls.py). Standard library only."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'{form_targets}; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
# app.extensions key: origins besides this one that a form may lead to. Browsers apply
# form-action to the redirects after a submission too, and "Sign in with …" is a POST answered
# by a redirect to the identity provider (web/oidc.py names them).
FORM_TARGETS = "gatekeeper.form_targets"

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def security_headers(form_targets: Iterable[str]) -> list[tuple[str, str]]:
    targets = "".join(f" {origin}" for origin in form_targets)
    return [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY.format(form_targets=targets)),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
    ]


def request_id(offered: str) -> str:
    """An incoming id is kept when it is a plain short word (what proxies and load balancers
    send); anything else is replaced by a fresh one."""
    return offered if _SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
