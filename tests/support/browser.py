"""What the browser tests share: the real server (`gatekeeper demo`) on a loopback port, and
Debian's headless Chromium, which is never downloaded."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# CI sets E2E_REQUIRED: there a missing browser is a failure, not a skip.
if os.environ.get("E2E_REQUIRED") and not Path(CHROMIUM).exists():
    raise RuntimeError(f"E2E_REQUIRED is set but {CHROMIUM} is missing")
BROWSER_TESTS = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
GATEKEEPER = str(Path(sys.executable).parent / "gatekeeper")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def demo_server(workdir: Path, **settings: str) -> Iterator[dict[str, str]]:
    """`gatekeeper demo` on a free port with its own SQLite file, mail catcher and `settings`;
    yields the base URL (`base`) and the GATEKEEPER_* environment it runs with."""
    port, smtp = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env.update(
        GATEKEEPER_DATABASE_URL=f"sqlite:///{workdir / 'e2e.sqlite'}",
        GATEKEEPER_SECRET_KEYS="e" * 40,
        GATEKEEPER_BASE_URL=f"http://127.0.0.1:{port}",
        **settings,
    )
    log = (workdir / "server.log").open("w")
    process = subprocess.Popen(
        [GATEKEEPER, "demo", "--port", str(port), "--smtp-port", str(smtp)],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 - loopback
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError((workdir / "server.log").read_text()) from None
                time.sleep(0.3)
        yield {"base": base, "gatekeeper": GATEKEEPER, **env}
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def chromium(playwright: Any) -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright's sync API module `playwright`."""
    with playwright.sync_playwright() as engine:
        launched = engine.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
