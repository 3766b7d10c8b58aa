"""Turning the per-client rate limits off for tests about something else (layout, faults), in
which one client opens the same pages far more often than a person would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gatekeeper.web.limits import limiter


@contextmanager
def no_rate_limits() -> Iterator[None]:
    """The limiter is one object for every app in the process: put it back as it was."""
    was = limiter.enabled
    limiter.enabled = False
    try:
        yield
    finally:
        limiter.enabled = was
