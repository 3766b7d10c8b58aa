"""The demo mail catcher's mailbox page (development only: absent when no catcher runs)."""

from __future__ import annotations

import re

from flask import Blueprint, current_app, render_template
from flask.typing import ResponseReturnValue

from gatekeeper.domain.errors import NotFound
from gatekeeper.notify.catcher import MailCatcher

bp = Blueprint("mailbox", __name__, url_prefix="/dev/mailbox")
CATCHER_KEY = "gatekeeper.mail_catcher"
_LINK = re.compile(r"https?://[^\s<>\"']+")


def attach(app_extensions: dict[str, object], catcher: MailCatcher) -> None:
    app_extensions[CATCHER_KEY] = catcher


def _catcher() -> MailCatcher:
    catcher = current_app.extensions.get(CATCHER_KEY)
    if not isinstance(catcher, MailCatcher):
        raise NotFound("the mailbox exists only while `gatekeeper demo` runs its mail catcher")
    return catcher


@bp.get("/")
def index() -> ResponseReturnValue:
    messages = _catcher().messages()
    return render_template(
        "mailbox/index.html",
        messages=messages,
        links={m.number: _LINK.findall(m.text) for m in messages},
    )
