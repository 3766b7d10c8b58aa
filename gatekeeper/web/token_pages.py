"""What every page reached through an emailed link shares: headers that keep its token out of
caches, referrers and search engines, one way to say the link cannot be used, and one refusal
while someone else's staff session is open."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template
from flask.typing import ResponseReturnValue
from flask_limiter import RateLimitExceeded
from flask_login import current_user

from gatekeeper.domain.errors import LinkUnusable, TokenInvalid
from gatekeeper.web.limits import too_many_requests

# same-origin, not no-referrer: Flask-WTF's HTTPS referrer check needs the page's own origin.
TOKEN_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
}


def protect(bp: Blueprint) -> None:
    """Every response of `bp` carries the token-page headers; its rate limits answer with a
    readable 429."""
    bp.register_error_handler(RateLimitExceeded, too_many_requests)

    @bp.after_request
    def token_page_headers(response: Response) -> Response:
        response.headers.update(TOKEN_PAGE_HEADERS)
        return response


def unusable_page(
    template: str, error: LinkUnusable | TokenInvalid, **context: Any
) -> ResponseReturnValue:
    """410 with the reason (used, expired, superseded, …) for a real link; 404 for a forged one.
    `context` is what else the page shows (what was answered, what changed, what to do next)."""
    if isinstance(error, LinkUnusable):
        page = render_template(template, reason=error.reason, message=error.message, **context)
        return page, 410
    return render_template(template, reason="invalid", message=error.message, **context), 404


def refuse_other_session(bound: str) -> ResponseReturnValue | None:
    """403 while a staff session of someone other than `bound` is open; None otherwise.

    A link records its decision as the person it was sent to. A colleague it was forwarded to,
    signed in as themselves, would otherwise act as that person without any sign of it: they
    must sign out first (the page offers it), and a POST is refused the same way.
    """
    if not current_user.is_authenticated or current_user.email == bound.strip().lower():
        return None
    page = render_template("links/someone_else.html", signed_in_as=current_user.email, bound=bound)
    return page, 403
