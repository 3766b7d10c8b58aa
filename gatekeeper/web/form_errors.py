"""The entries of a form's error summary: each field's first error, linked to its input."""

from __future__ import annotations

from collections.abc import Mapping

from flask_wtf import FlaskForm


def form_problems(form: FlaskForm, ids: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(input id, "Label: message") for every field with an error, in the form's order; `ids`
    maps a field's name to the id its template gives the input, when that is not the default.
    The CSRF token has no input to go to: its entry links nowhere."""
    found: list[tuple[str, str]] = []
    for field in form:
        if not field.errors:
            continue
        if field.name == "csrf_token":
            found.append(
                ("", "This form could not be verified. Reload the page and send it again.")
            )
            continue
        found.append(
            ((ids or {}).get(field.name, field.id), f"{field.label.text}: {field.errors[0]}")
        )
    return found
