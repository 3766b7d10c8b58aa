"""URL converters: every `<int:…>` in a route is a number the database can hold, else 404."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from gatekeeper.db.base import MAX_ID


class IdConverter(IntegerConverter):
    """Werkzeug's `int`, capped at what an INTEGER column holds: a larger id in a URL matches
    no route (404) instead of reaching PostgreSQL, which refuses it with an error (500)."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.max = MAX_ID if self.max is None else min(self.max, MAX_ID)


def register(app: Flask) -> None:
    """Replace `int` app-wide, before any route is added: a new route is capped without anyone
    having to remember it."""
    app.url_map.converters["int"] = IdConverter
