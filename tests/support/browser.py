"""The end-to-end tests' real parts: the `gatekeeper demo` console script on loopback, Debian's
headless Chromium, and reading the demo mailbox the way a person does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.mail import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# CI sets E2E_REQUIRED: there a missing browser is a failure, not a skip.
if os.environ.get("E2E_REQUIRED") and not Path(CHROMIUM).exists():
    raise RuntimeError(f"E2E_REQUIRED is set but {CHROMIUM} is missing")
BROWSER_TESTS = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# The README installs into .venv and runs `.venv/bin/gatekeeper`: the script next to Python.
CONSOLE_SCRIPT = Path(sys.executable).parent / "gatekeeper"
MANAGER = "release-manager@example.com"


def outside_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without GATEKEEPER_* settings and without this virtualenv on
    PATH: what a newcomer's shell has after the README's first command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    venv_bin = str(CONSOLE_SCRIPT.parent)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Demo:
    base: str
    workdir: Path
    env: dict[str, str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8")


@contextmanager
def running_demo(workdir: Path, env: dict[str, str], port: int, smtp_port: int) -> Iterator[Demo]:
    """`gatekeeper demo --port P --smtp-port S` run in `workdir`, until its web app answers."""
    log = workdir / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "demo", "--port", str(port), "--smtp-port", str(smtp_port)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        demo = Demo(f"http://127.0.0.1:{port}", workdir, env, log)
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"{demo.base}/healthz", timeout=2):  # noqa: S310 - loopback
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        out.flush()
                        raise RuntimeError(demo.output()) from None
                    time.sleep(0.3)
            yield demo
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@contextmanager
def demo_server(workdir: Path, **settings: str) -> Iterator[dict[str, str]]:
    """`gatekeeper demo` on free ports with its own SQLite file and `settings`; yields the base
    URL (`base`), the console script (`gatekeeper`) and the GATEKEEPER_* environment."""
    port = free_port()
    env = outside_environment(
        GATEKEEPER_DATABASE_URL=f"sqlite:///{workdir / 'e2e.sqlite'}",
        GATEKEEPER_SECRET_KEYS="e" * 40,
        GATEKEEPER_BASE_URL=f"http://127.0.0.1:{port}",
        **settings,
    )
    with running_demo(workdir, env, port, free_port()) as demo:
        yield {"base": demo.base, "gatekeeper": str(CONSOLE_SCRIPT), **env}


@contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as engine:
        launched = engine.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass(frozen=True)
class Mail:
    subject: str
    to: str
    links: tuple[str, ...]


def mailbox(page: object, base: str) -> list[Mail]:
    """Every mail in the demo mailbox, newest first, as the page shows it."""
    page.goto(f"{base}/dev/mailbox/")  # type: ignore[attr-defined]
    found = []
    for article in page.locator("article.mail").all():  # type: ignore[attr-defined]
        to = re.search(r"to (\S+)", article.locator(".meta").inner_text())
        links = tuple(a.get_attribute("href") for a in article.locator("a.mail-link").all())
        found.append(Mail(article.locator("h2").inner_text(), to.group(1) if to else "", links))
    return found


def mail_links(page: object, base: str, subject_part: str, count: int) -> dict[str, str]:
    """Wait until `count` recipients got a mail whose subject contains `subject_part`; the
    newest such mail's first link for each of them."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for mail in mailbox(page, base):
            if subject_part in mail.subject and mail.links and mail.to not in found:
                found[mail.to] = mail.links[0]
        if len(found) >= count:
            return found
        time.sleep(0.5)
    raise AssertionError(f"only {sorted(found)} got '{subject_part}'")


def sign_in(page: object, base: str, email: str = MANAGER) -> None:
    """Sign in through /login and the newest sign-in link the demo mailbox shows for `email`."""

    def links() -> list[str]:
        return [
            m.links[0]
            for m in mailbox(page, base)
            if m.to == email and "sign-in link" in m.subject and m.links
        ]

    before = len(links())
    page.goto(f"{base}/login")  # type: ignore[attr-defined]
    page.get_by_test_id("login-email").fill(email)  # type: ignore[attr-defined]
    page.get_by_test_id("login-submit").click()  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=login-sent]")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while len(found := links()) <= before:
        assert time.monotonic() < deadline, f"no new sign-in link for {email} in the mailbox"
        time.sleep(0.5)
    page.goto(found[0])  # type: ignore[attr-defined]
    page.get_by_test_id("sign-in-confirm").click()  # type: ignore[attr-defined]
    page.wait_for_selector("[data-testid=signed-in-as]")  # type: ignore[attr-defined]
