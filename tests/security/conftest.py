"""Fixtures of the security suite; the helpers behind them live in tests/support."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from gatekeeper.domain.clock import FixedClock
from tests.support.access import build_world


@pytest.fixture
def world(app: Flask, clock: FixedClock) -> dict[str, Any]:
    """Staff of every role, two packages of one release manager, a dead letter, a finding."""
    return build_world(clock)
