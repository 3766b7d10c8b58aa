"""The operators' settings: log format, and who may scrape /metrics."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from gatekeeper.settings import SettingsError, load_settings


def test_defaults_keep_text_logs_and_metrics_closed(tmp_path: Path) -> None:
    settings = load_settings({}, tmp_path)
    assert settings.log_format == "text"
    assert settings.metrics_token is None
    assert settings.metrics_allow == ()


def test_metrics_allowlist_takes_addresses_and_networks(tmp_path: Path) -> None:
    settings = load_settings(
        {"GATEKEEPER_METRICS_ALLOW": "127.0.0.1, 10.0.8.0/24,::1", "GATEKEEPER_LOG_FORMAT": "json"},
        tmp_path,
    )
    assert settings.metrics_allow == (
        ip_network("127.0.0.1/32"),
        ip_network("10.0.8.0/24"),
        ip_network("::1/128"),
    )
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("name", "raw", "says"),
    [
        ("GATEKEEPER_METRICS_TOKEN", "short", "at least 32 characters"),
        ("GATEKEEPER_METRICS_ALLOW", "10.0.0.0/8,intranet", "'intranet' is not an address"),
        ("GATEKEEPER_METRICS_ALLOW", " , ", "is empty"),
        ("GATEKEEPER_LOG_FORMAT", "logfmt", "must be one of: text, json"),
    ],
)
def test_bad_values_stop_the_start(tmp_path: Path, name: str, raw: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        load_settings({name: raw}, tmp_path)
