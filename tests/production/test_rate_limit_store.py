"""The shipped gunicorn config refuses per-process rate limits with several workers in
production: each worker would count alone. Redis shared by hosts: tests/production/test_runbook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_KEY, clean_environ
from tests.support.keys import production_keys
from tests.support.mail import free_port


def start(tmp_path: Path, **environ: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gunicorn", "-c", "python:gatekeeper.gunicorn_config"]
    return subprocess.run(
        [*command, "--bind", f"127.0.0.1:{free_port()}"],
        env=clean_environ(PYTHONPATH=str(REPO), XDG_RUNTIME_DIR=str(tmp_path), **environ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("storage", [None, "memory://"])
def test_memory_storage_with_two_workers_is_refused_in_production(
    tmp_path: Path, storage: str | None
) -> None:
    environ = {
        "GATEKEEPER_ENV": "production",
        "GATEKEEPER_SECRET_KEYS": TEST_KEY,
        **production_keys(tmp_path),
    }
    if storage:
        environ["GATEKEEPER_RATE_LIMIT_STORAGE"] = storage
    refused = start(tmp_path, WEB_CONCURRENCY="2", **environ)
    assert refused.returncode != 0
    assert "each worker would count rate limits on its own" in refused.stderr + refused.stdout
    assert "redis://" in refused.stderr + refused.stdout
