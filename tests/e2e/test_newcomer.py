"""A newcomer's first hour: the README's first command on ports of their own, then every link
of every email in the demo mailbox, in Debian's headless Chromium.

The demo runs as the README runs it — the console script in .venv, not on PATH — in an empty
working directory with no GATEKEEPER_* variables, so its defaults are the ones under test."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import SAMPLES
from tests.support.browser import (
    BROWSER_TESTS,
    MANAGER,
    Demo,
    Mail,
    chromium,
    mailbox,
    outside_environment,
    running_demo,
    sign_in,
)
from tests.support.mail import free_port

pytest.importorskip("playwright.sync_api")

pytestmark = BROWSER_TESTS
DEFAULT_PORTS = (5000, 8025)
# Pages reached through an emailed token: anyone holding the link may open them.
TOKEN_PATHS = ("/s/", "/review/", "/report/", "/login/", "/emergency/")
# What the demo emails before anyone does anything (subjects as the mailbox shows them).
EXPECTED = (
    "Sign-off needed",
    "Review needed",
    "Released",
    "Finding F-1",
    "Emergency release needs your approval",
)
SIGN_IN = "sign-in link"


def free_non_default_port() -> int:
    port = free_port()
    return port if port not in DEFAULT_PORTS else free_non_default_port()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("newcomer")
    port, smtp_port = free_non_default_port(), free_non_default_port()
    with running_demo(workdir, outside_environment(), port, smtp_port) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def settled_mailbox(page: object, demo: Demo) -> list[Mail]:
    """The mailbox once the worker has delivered what the demo queued at start."""
    emailed = re.search(r"(\d+) people emailed their sign-off link", demo.output())
    assert emailed, demo.output()
    deadline = time.monotonic() + 60
    while True:
        mails = mailbox(page, demo.base)
        signoffs = sum("Sign-off needed" in m.subject for m in mails)
        if signoffs >= int(emailed.group(1)) and all(
            any(e in m.subject for m in mails) for e in EXPECTED
        ):
            return mails
        assert time.monotonic() < deadline, [m.subject for m in mails]
        time.sleep(1)


class Watched:
    """A browser context that records every failed response and console error it sees."""

    def __init__(self, browser: object) -> None:
        self.context = browser.new_context()  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.failures: list[str] = []
        self.page.on(
            "response",
            lambda r: self.failures.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        self.page.on(
            "console",
            lambda m: self.failures.append(f"console: {m.text}") if m.type == "error" else None,
        )


def test_a_newcomer_signs_in_and_every_emailed_link_works(demo: Demo, browser: object) -> None:
    assert (demo.workdir / "instance" / "gatekeeper.sqlite").is_file(), (
        "the demo keeps its state in instance/ of the directory it runs in"
    )
    out = demo.output()
    assert f"emailed links point at {demo.base}/" in out
    manager = Watched(browser)
    sign_in(manager.page, demo.base)
    assert "Dashboard" in manager.page.title()
    mails = settled_mailbox(manager.page, demo)
    staff = {MANAGER: manager}
    followed: set[str] = set()
    for mail in mails:
        if SIGN_IN in mail.subject:
            continue  # followed by sign_in itself, and used: a link works once
        for link in mail.links:
            assert urlsplit(link).netloc == urlsplit(demo.base).netloc, (mail.subject, link)
            if urlsplit(link).path.startswith(TOKEN_PATHS):
                viewer = Watched(browser)  # no account, nobody signed in: as the email's reader
            else:
                if mail.to not in staff:
                    staff[mail.to] = Watched(browser)
                    sign_in(staff[mail.to].page, demo.base, mail.to)
                viewer = staff[mail.to]
            response = viewer.page.goto(link)
            assert response is not None
            assert response.status == 200, (mail.subject, mail.to, link, response.status)
            assert urlsplit(viewer.page.url).netloc == urlsplit(demo.base).netloc
            assert viewer.page.locator("main").count() == 1
            assert not viewer.failures, (mail.subject, viewer.failures)
            followed.add(re.sub(r"^(/[a-z]+/(findings/)?).*", r"\1", urlsplit(link).path))
            if viewer not in staff.values():
                viewer.context.close()
    assert followed == {"/s/", "/review/", "/report/", "/review/findings/", "/emergency/"}, followed
    assert not [f for w in staff.values() for f in w.failures]


def test_the_command_the_demo_suggests_works_as_printed(demo: Demo) -> None:
    (command,) = re.findall(r"^try: (.+)$", demo.output(), flags=re.MULTILINE)
    ran = subprocess.run(
        shlex.split(command), cwd=demo.workdir, env=demo.env, capture_output=True, check=False
    )
    assert ran.returncode == 3, ran.stderr  # pending: the demo package waits on people
    assert "required sign-offs" in (ran.stdout + ran.stderr).decode()


def test_a_second_demo_on_the_same_port_says_how_to_choose_another(demo: Demo) -> None:
    port = urlsplit(demo.base).port
    assert port is not None
    (script,) = re.findall(r"^try: (\S+)", demo.output(), flags=re.MULTILINE)
    ran = subprocess.run(
        [script, "demo", "--port", str(port), "--smtp-port", str(free_non_default_port())],
        cwd=demo.workdir,
        env=demo.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert ran.returncode == 2, ran.stderr
    assert ran.stdout == ""
    assert f"the web port {port} on 127.0.0.1 is in use" in ran.stderr
    assert "--port" in ran.stderr


def test_the_readme_change_workflow_emails_a_review_link_for_the_demo_port(
    demo: Demo, browser: object
) -> None:
    samples = demo.workdir / "checklists"
    shutil.copytree(SAMPLES, samples)
    changed = samples / "payments-api.yaml"
    changed.write_text(
        changed.read_text(encoding="utf-8").replace("version: 7", "version: 8", 1), "utf-8"
    )
    (script,) = re.findall(r"^try: (\S+)", demo.output(), flags=re.MULTILINE)
    synced = subprocess.run(
        [script, "checklists", "sync", "--author", "you@example.com"],  # as the README says
        cwd=demo.workdir,
        env=demo.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert synced.returncode == 0, synced.stderr
    assert "payments-api: created version 8 (pending review)" in synced.stdout
    reader = Watched(browser)
    deadline = time.monotonic() + 30
    while not (found := [m for m in mailbox(reader.page, demo.base) if "v8" in m.subject]):
        assert time.monotonic() < deadline, "no review request for version 8"
        time.sleep(0.5)
    (link,) = found[0].links
    assert urlsplit(link).netloc == urlsplit(demo.base).netloc
    response = reader.page.goto(link)
    assert response is not None
    assert response.status == 200
    assert not reader.failures
