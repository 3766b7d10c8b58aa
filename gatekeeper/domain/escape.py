"""Escape analysis: which checklist items catch things, and how often releases fail users."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median

DEFAULT_NEVER_FIRES_RELEASES = 20


def never_fires(recent_evaluations: int, recent_failures: int, window: int) -> bool:
    """An item never fires when the last `window` releases that evaluated it all let it pass.
    An item evaluated fewer times has not had the chance to be judged: it is not flagged."""
    return recent_evaluations >= window and recent_failures == 0


def failure_rate(failed: int, released: int) -> float | None:
    """Released packages with a finding reported against them over released packages; None
    when nothing was released (no rate, rather than a rate of zero)."""
    return failed / released if released else None


def median_hours(durations_seconds: Sequence[float]) -> float | None:
    """The median of the durations, in hours; None for none."""
    return median(durations_seconds) / 3600 if durations_seconds else None
