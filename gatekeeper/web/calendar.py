"""The freeze calendar page, each person's secret feed link, and the feed itself."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import calendar_feed
from gatekeeper.web.access import signed_in

bp = Blueprint("calendar", __name__, url_prefix="/calendar")
# Public: the key in the URL is the credential, as calendar applications cannot sign in.
feed_bp = Blueprint("calendar_feed", __name__)

# The feed link is shown once, on the answer to the POST that made it: never kept by a cache.
NO_STORE = {"Cache-Control": "no-store"}


def _page(feed_url: str | None = None) -> str:
    rt = runtime(current_app)
    version, windows = calendar_feed.overview(db.session, now=rt.clock.now())
    return render_template(
        "calendar/index.html",
        version=version,
        windows=windows,
        key=calendar_feed.key_state(db.session, signed_in().email),
        feed_url=feed_url,
    )


@bp.get("/")
def index() -> ResponseReturnValue:
    return _page()


@bp.post("/key")
def create_key() -> ResponseReturnValue:
    rt = runtime(current_app)
    with unit_of_work(db.session, origin=request_origin()) as session:
        key = calendar_feed.create_key(session, signed_in().email, clock=rt.clock)
    url = f"{rt.settings.base_url.rstrip('/')}{url_for('calendar_feed.feed', key=key)}"
    return _page(url), 201, NO_STORE


@bp.post("/key/revoke")
def revoke_key() -> ResponseReturnValue:
    with unit_of_work(db.session, origin=request_origin()) as session:
        revoked = calendar_feed.revoke_key(
            session, signed_in().email, clock=runtime(current_app).clock
        )
    flash(
        "Your calendar feed link is revoked: calendars holding it get nothing more."
        if revoked
        else "You had no calendar feed link.",
        "ok",
    )
    return redirect(url_for("calendar.index"))


@feed_bp.get("/calendar.ics")
def feed() -> ResponseReturnValue:
    body = calendar_feed.feed(
        db.session, request.args.get("key", ""), clock=runtime(current_app).clock
    )
    return Response(
        body,
        mimetype="text/calendar",
        headers={
            "Cache-Control": "private, no-store",
            "X-Robots-Tag": "noindex",
            "Content-Disposition": 'inline; filename="gatekeeper.ics"',
        },
    )
