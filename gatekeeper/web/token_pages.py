"""What every page reached through an emailed link shares: headers that keep its token out of
caches, referrers and search engines, and one way to say the link cannot be used."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, render_template
from flask.typing import ResponseReturnValue

from gatekeeper.domain.errors import LinkUnusable, TokenInvalid

# same-origin, not no-referrer: Flask-WTF's HTTPS referrer check needs the page's own origin.
TOKEN_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
}


def protect(bp: Blueprint) -> None:
    """Every response of `bp` carries the token-page headers."""

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
