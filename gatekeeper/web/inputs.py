"""Refuse text no database can store (NUL, lone surrogates) before it reaches a query."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest


class UnstorableText(BadRequest):
    description = (
        "The request contains characters that cannot be stored (a NUL byte or invalid Unicode)."
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def reject_unstorable_text() -> None:
    """A before-request hook: PostgreSQL refuses NUL, and no driver encodes lone surrogates."""
    candidates: list[Any] = [request.path, *request.args.values()]
    if request.method in ("POST", "PUT", "PATCH"):
        candidates.extend(request.form.values())
        if request.is_json:
            try:
                candidates.append(request.get_json(silent=True))
            except RecursionError:
                return  # the JSON endpoint itself refuses it with the usual 422
    for text in (s for candidate in candidates for s in _strings(candidate)):
        if not storable(text):
            raise UnstorableText()
