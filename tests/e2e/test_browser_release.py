"""The whole release in a real browser: Debian's headless Chromium driven by Playwright.

The real server runs on loopback (`gatekeeper demo`, with its SMTP catcher and worker); every
email is read from the demo mailbox and every link followed in the browser.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import (
    BROWSER_TESTS,
    CONSOLE_SCRIPT,
    chromium,
    mail_links,
    outside_environment,
    running_demo,
    sign_in,
)
from tests.support.mail import free_port

pytest.importorskip("playwright.sync_api")
KEY = "2026.12-e2e"
KEY_USER = "settlement-lead@example.com"
PROBLEM = "The end-of-day report shows yesterday's refunds twice"
# Set to regenerate the README's screenshots (GATEKEEPER_SCREENSHOTS=docs/screenshots); the
# test writes them to a temporary folder otherwise, so a test run changes no tracked file.
SCREENSHOTS = "GATEKEEPER_SCREENSHOTS"

pytestmark = BROWSER_TESTS


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get(SCREENSHOTS)
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    workdir = tmp_path_factory.mktemp("e2e")
    port = free_port()
    env = outside_environment(
        GATEKEEPER_DATABASE_URL=f"sqlite:///{workdir / 'e2e.sqlite'}",
        GATEKEEPER_SECRET_KEYS="e" * 40,
        GATEKEEPER_BASE_URL=f"http://127.0.0.1:{port}",
    )
    with running_demo(workdir, env, port, free_port()) as demo:
        yield {"base": demo.base, "workdir": str(workdir), **env}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def gate_check(server: dict[str, str]) -> int:
    """`gatekeeper gate check` on the demo's database, from the demo's folder: development
    record and audit keys live in its instance/ folder, as they would on the demo's machine."""
    env = {k: v for k, v in server.items() if k.startswith("GATEKEEPER_")}
    env["PATH"] = os.environ.get("PATH", "")
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "gate", "check", KEY],
        env=env,
        cwd=server["workdir"],
        capture_output=True,
        check=False,
    ).returncode


def decide(
    page: object, link: str, *, problem: bool = False, screenshot: Path | None = None
) -> None:
    page.goto(link)  # type: ignore[attr-defined]
    page.wait_for_selector("form.signoff")  # type: ignore[attr-defined]
    for box in page.locator("input[type=checkbox][name*='-scenario-']").all():  # type: ignore[attr-defined]
        box.check()
    for choice in ("pass", "confirmed"):
        for radio in page.locator(f"input[type=radio][value={choice}]").all():  # type: ignore[attr-defined]
            radio.check()
    for evidence in page.locator("[name$='-evidence']").all():  # type: ignore[attr-defined]
        evidence.fill("https://ci.example.com/runs/e2e")
    if problem:
        page.locator("input[type=radio][value=problem]").first.check()  # type: ignore[attr-defined]
        page.locator("textarea[name$='-comment']").first.fill(PROBLEM)  # type: ignore[attr-defined]
    if screenshot:
        page.screenshot(path=str(screenshot), full_page=True)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Record my decisions").click()  # type: ignore[attr-defined]
    page.wait_for_selector("text=Thank you — recorded")  # type: ignore[attr-defined]


def test_release_from_sign_in_to_release(
    server: dict[str, str], browser: object, shots: Path
) -> None:
    base = server["base"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    sign_in(page, base)
    page.wait_for_selector("text=Dashboard")
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

    page.goto(f"{base}/packages/new")
    page.get_by_test_id("package-key").fill(KEY)
    page.get_by_test_id("package-title").fill("December release: refunds queue")
    page.get_by_test_id("package-environment").fill("production")
    page.get_by_test_id("pick-payments-api").check()
    page.get_by_test_id("version-payments-api").fill("7.5.0")
    page.get_by_test_id("summary-payments-api").fill("Refunds go through a queue")
    page.get_by_test_id("preview-plan").click()
    page.wait_for_selector("[data-testid=plan]")
    page.get_by_test_id("create-submit").click()
    page.wait_for_selector("[data-testid=gate-panel]")

    links = mail_links(page, base, f"({KEY} rev 1)", 9)
    signer_page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()  # type: ignore[attr-defined]
    for person, link in sorted(links.items()):
        if person == KEY_USER:
            decide(signer_page, link, problem=True, screenshot=shots / "key-user-page.png")
        else:
            decide(signer_page, link)
    assert gate_check(server) == 1, "a reported problem blocks the gate"

    page.goto(f"{base}/packages/{KEY}")
    page.get_by_test_id("edit-package").click()
    page.get_by_test_id("version-payments-api").fill("7.5.1")
    page.get_by_test_id("save-package").click()
    page.wait_for_selector("[data-testid=package-heading]")
    assert "revision 2" in page.get_by_test_id("package-heading").inner_text()

    links = mail_links(page, base, f"({KEY} rev 2)", 9)
    for link in links.values():
        decide(signer_page, link)
    assert gate_check(server) == 0, "every sign-off is in: the gate is open"

    page.goto(f"{base}/packages/{KEY}")
    page.wait_for_selector("text=Gate: open")
    page.screenshot(path=str(shots / "package-board.png"), full_page=True)
    page.get_by_test_id("release-package").click()
    page.wait_for_selector("text=released")
    assert "released" in page.content()
