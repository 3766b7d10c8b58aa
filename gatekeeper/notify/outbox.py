"""Queue emails as outbox rows inside the caller's transaction; render them from templates."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jinja2
from sqlalchemy.orm import Session

from gatekeeper.db.models import OutboxMessage

# C0 and C1 control characters (CR, LF, VT, FF, the file/group/record separators, NEL) and
# Unicode's line and paragraph separators: everything str.splitlines() breaks a line at, which
# is what the email package's header folding splits a value on.
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gatekeeper", "templates/email"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def header_safe(value: str) -> str:
    """Anything that reaches a mail header loses CR, LF, other line breaks and controls."""
    return _HEADER_UNSAFE.sub(" ", value).strip()


def render(template: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    env = _environment()
    subject = env.get_template(f"{template}/subject.txt").render(context)
    text = env.get_template(f"{template}/body.txt").render(context)
    html = env.get_template(f"{template}/body.html").render(context)
    return header_safe(subject)[:300].rstrip(), text, html


def queue_email(
    session: Session,
    *,
    to: str,
    template: str,
    context: Mapping[str, Any],
    now: datetime,
    link: tuple[str, int] | None = None,
) -> OutboxMessage:
    """Queue one email. `link` is (kind, id) of the emailed link it carries: if that link can
    no longer be used when the worker picks the row up, the email is moot and is not sent."""
    subject, text, html = render(template, context)
    message = OutboxMessage(
        template=template,
        to_address=header_safe(to),
        subject=subject,
        body_text=text,
        body_html=html,
        state="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        link_kind=link[0] if link else None,
        link_id=link[1] if link else None,
    )
    session.add(message)
    return message
