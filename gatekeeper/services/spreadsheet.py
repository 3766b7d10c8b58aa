"""CSV that spreadsheets open safely: a cell that would run as a formula is quoted as text."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime

# A cell starting with one of these is a formula to a spreadsheet (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """The text of one cell: None is empty, times are ISO 8601, tuples are space-separated."""
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, tuple):
        text = " ".join(str(v) for v in value)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """Rows as CSV (RFC 4180 line ends), every cell made safe with `cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([cell(value) for value in row] for row in rows)
    return out.getvalue()
