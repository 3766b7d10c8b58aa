"""Rate limits for endpoints that anyone can call: asking for links, and the pages links open.

Counted per client address (and, for link pages, per token too) in the limiter's storage:
`GATEKEEPER_RATE_LIMIT_STORAGE`, per process by default. What must hold across processes (how
many links one recipient is sent) is counted in the database by the services instead.

Every other request skips Flask-Limiter altogether (there are no default limits): CI polling
the gate, /healthz and the staff pages pay nothing for it. Limits are therefore applied only
through the decorators below, which record the views they limit.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_qualified_name, get_remote_address

F = TypeVar("F", bound=Callable[..., object])

# No X-RateLimit/Retry-After headers on every response: Flask-Limiter would also overwrite the
# Retry-After of a 503 ("database busy, retry in 2 s") with its own window. too_many_requests
# below says when to come back, on the 429 only.
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=False)
_LIMITED_VIEWS: set[str] = set()


def limited(decorator: Callable[[F], F]) -> Callable[[F], F]:
    """A Flask-Limiter decorator that also records the view, so that its requests are limited."""

    def apply(view: F) -> F:
        _LIMITED_VIEWS.add(get_qualified_name(view))
        return decorator(view)

    return apply


def is_limited(view: Callable[..., object]) -> bool:
    return get_qualified_name(view) in _LIMITED_VIEWS


@limiter.request_filter
def _no_limit_applies() -> bool:
    view = current_app.view_functions.get(request.endpoint or "")
    return view is None or not is_limited(view)


TOO_MANY = (
    "Too many requests from here in a short time. Nothing was changed; wait a minute, then "
    "try again."
)
# Asking for a sign-in link or a fresh sign-off link (each sends an email).
ASKING_FOR_LINKS = "5 per minute; 20 per hour"
# One link's pages (GET and POST together): a person opens a link a few times, a mail scanner
# once or twice; a script opening it without end is cut off.
PER_LINK = "20 per minute; 100 per hour"
# Every link page together, from one client address (offices share one address).
LINK_PAGES_PER_CLIENT = "60 per minute; 600 per hour"


def _token_key() -> str:
    # The storage may be a shared Redis: it keeps a hash of the token, never the credential.
    token = str((request.view_args or {}).get("token", ""))
    return hashlib.sha256(token.encode()).hexdigest()


asking_for_links = limited(
    limiter.limit(ASKING_FOR_LINKS, methods=["POST"], error_message=TOO_MANY)
)
# Generous: behind a proxy every colleague shares one client address, and a start of single
# sign-on costs one small row (deleted a day after it expires).
starting_single_sign_on = limited(limiter.limit("60 per minute"))
_per_link = limited(
    limiter.shared_limit(PER_LINK, scope="link-token", key_func=_token_key, error_message=TOO_MANY)
)
_per_client = limited(
    limiter.shared_limit(LINK_PAGES_PER_CLIENT, scope="link-pages", error_message=TOO_MANY)
)


def link_page(view: F) -> F:
    """Limit a page reached through an emailed link: per token and per client address."""
    return _per_client(_per_link(view))


def too_many_requests(error: RateLimitExceeded) -> ResponseReturnValue:
    """429 as a page a person can read, with a Retry-After saying when the window resets."""
    current = limiter.current_limit
    # The limiter counts in wall-clock time (not the app's Clock), so its reset time does too.
    wait = max(1, current.reset_at - int(time.time())) if current is not None else 60
    page = render_template("error.html", status=429, message=TOO_MANY)
    return page, 429, {"Retry-After": str(wait)}
