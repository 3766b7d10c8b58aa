"""The clock port and the error types adapters rely on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gatekeeper.domain.clock import FixedClock, SystemClock
from gatekeeper.domain.errors import LinkUnusable


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC


def test_fixed_clock_moves_only_when_told() -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    clock = FixedClock(start)
    assert clock.now() == start
    assert clock.now().tzinfo is UTC
    clock.advance(timedelta(minutes=5))
    assert clock.now() == start + timedelta(minutes=5)
    clock.set(datetime(2027, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2027


def test_fixed_clock_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        FixedClock(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


def test_link_unusable_knows_its_reasons() -> None:
    error = LinkUnusable("used", "You already answered.", details={"used_at": "x"})
    assert (error.reason, error.code, error.details) == ("used", "link_unusable", {"used_at": "x"})
    with pytest.raises(ValueError, match="unknown reason"):
        LinkUnusable("lost", "?")
