"""Every page a signer or a manager opens, in a real browser at 390 px: it fits without
horizontal scrolling, nothing overlaps, axe-core finds no serious or critical violation, and
forms with errors lead to them.

The real app serves on loopback from a thread, on a database seeded with every state a page can
be in (tests/support/pages.py); Debian's headless Chromium, driven by Playwright, opens them.
axe-core comes from the npm registry into the untracked test-artifacts/ (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import make_server

from gatekeeper.db.base import db
from gatekeeper.domain.clock import FixedClock
from gatekeeper.runtime import runtime
from gatekeeper.web.serving import RedactingRequestHandler
from tests.conftest import START, dispose, make_app
from tests.support.limits import no_rate_limits
from tests.support.pages import ADMIN, Pages, seed, sign_in_link

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "test-artifacts" / "node_modules" / "axe-core" / "axe.min.js"
REQUIRED = bool(os.environ.get("E2E_REQUIRED"))
# CI sets E2E_REQUIRED: there a missing browser or axe-core is a failure, not a skip.
if REQUIRED and not Path(CHROMIUM).exists():
    raise RuntimeError(f"E2E_REQUIRED is set but {CHROMIUM} is missing")
playwright = pytest.importorskip("playwright.sync_api")
WIDTH = 390

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]

# What may not overlap: text blocks and controls that are not inside one another.
BLOCKS = (
    "main h1, main h2, main h3, main h4, main p, main li, main dt, main dd, main label, "
    "main button, main .badge, main .progress-wrap, main td, main th, main caption, main legend, "
    "main summary, main input, main textarea, main select, main a.button, main pre, "
    "header .brand, header nav a, header .who > span, header button"
)
OVERLAPS = """(selector) => {
  const shown = [...document.querySelectorAll(selector)].filter((e) => {
    const r = e.getBoundingClientRect();
    return r.width >= 2 && r.height >= 2 && e.checkVisibility({visibilityProperty: true})
      && !e.closest(".visually-hidden");
  });
  const name = (e) => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`
    + ` "${e.textContent.trim().replace(/\\s+/g, " ").slice(0, 40)}"`;
  const found = [];
  for (let i = 0; i < shown.length; i++) {
    const a = shown[i].getBoundingClientRect();
    for (let j = i + 1; j < shown.length; j++) {
      if (shown[i].contains(shown[j]) || shown[j].contains(shown[i])) continue;
      const b = shown[j].getBoundingClientRect();
      const x = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const y = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (x > 1 && y > 1) found.push(`${name(shown[i])} overlaps ${name(shown[j])}`);
    }
  }
  return found.slice(0, 5);
}"""
TOO_WIDE = """(width) => {
  const wide = [...document.body.querySelectorAll("*")].filter(
    (e) => e.getBoundingClientRect().right > width + 0.5
      && ![...e.children].some((c) => c.getBoundingClientRect().right > width + 0.5));
  return wide.slice(0, 3).map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`
    + ` ${Math.round(e.getBoundingClientRect().right)}px`);
}"""
# Text squeezed into a sliver (a column left with no room) fits the page but cannot be read.
SQUEEZED = """(selector) => [...document.querySelectorAll(selector)].filter((e) => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.width < 90 && e.textContent.trim().length > 24
      && e.checkVisibility({visibilityProperty: true}) && !e.closest(".visually-hidden");
  }).slice(0, 3).map((e) => `${e.tagName.toLowerCase()}.${[...e.classList].join(".")}`
    + ` ${Math.round(e.getBoundingClientRect().width)}px wide:`
    + ` "${e.textContent.trim().slice(0, 30)}"`)
"""
SERIOUS = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.filter((v) => ["serious", "critical"].includes(v.impact))
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target).join(" ")}`);
}"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pages, Flask]]:
    workdir = tmp_path_factory.mktemp("pages")
    app = make_app(f"sqlite:///{workdir / 'pages.sqlite'}", workdir / "instance", FixedClock(START))
    with app.app_context():
        upgrade()
        clock = runtime(app).clock
        assert isinstance(clock, FixedClock)
        pages = seed(app, clock, workdir)
        db.session.remove()
    server = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=RedactingRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # One browser opens every link page many times a minute from one address: the limits
        # on link pages (tests/security/test_link_flooding.py) would answer 429.
        with no_rate_limits():
            yield f"http://127.0.0.1:{server.server_port}", pages, app
    finally:
        server.shutdown()
        thread.join(10)
        dispose(app)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as engine:
        launched = engine.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


def phone(browser: Any, **options: Any) -> Any:
    return browser.new_context(viewport={"width": WIDTH, "height": 844}, **options)


def signed_in(context: Any, base: str, app: Flask) -> Any:
    """A page of `context` signed in as the admin, who sees every staff page."""
    with app.app_context():
        link = sign_in_link(app, ADMIN)
    page = context.new_page()
    page.goto(base + link)
    page.get_by_test_id("sign-in-confirm").click()
    page.wait_for_selector("[data-testid=signed-in-as]")
    return page


@pytest.fixture(scope="module")
def phones(browser: Any, site: tuple[str, Pages, Flask]) -> Iterator[dict[str, Any]]:
    """Signed-in and anonymous pages, as the site sends them (CSP on) and for axe (CSP off:
    Playwright injects axe as an inline script, which the site's CSP rightly refuses)."""
    base, _, app = site
    contexts = [phone(browser), phone(browser, bypass_csp=True)]
    staff, staff_axe = (signed_in(c, base, app) for c in contexts)
    anonymous = phone(browser).new_page()
    anonymous_axe = phone(browser, bypass_csp=True).new_page()
    yield {
        "staff": staff,
        "staff_axe": staff_axe,
        "public": anonymous,
        "public_axe": anonymous_axe,
    }
    for page in (staff, staff_axe, anonymous, anonymous_axe):
        page.context.close()


def every_page(pages: Pages) -> list[tuple[str, str, str]]:
    return [
        *((f"staff: {name}", "staff", path) for name, path in pages.staff.items()),
        *((name, "public", path) for name, path in pages.public.items()),
    ]


def layout_problems(page: Any) -> list[str]:
    """What is wrong with the page now open: too wide, overlapping, or squeezed text."""
    found = []
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > WIDTH:
        found.append(f"{width}px wide: {page.evaluate(TOO_WIDE, WIDTH)}")
    found.extend(page.evaluate(OVERLAPS, BLOCKS))
    found.extend(page.evaluate(SQUEEZED, BLOCKS))
    return found


def axe_problems(page: Any) -> list[str]:
    """Serious and critical axe-core violations of the page now open (a bypass_csp page)."""
    if not AXE.exists():
        if REQUIRED:
            pytest.fail(f"E2E_REQUIRED is set but {AXE} is missing (npm install axe-core)")
        pytest.skip("axe-core is not installed in test-artifacts/ (npm install axe-core)")
    page.add_script_tag(path=str(AXE))
    found: list[str] = page.evaluate(SERIOUS)
    return found


def test_every_page_fits_390px_and_nothing_overlaps(
    site: tuple[str, Pages, Flask], phones: dict[str, Any]
) -> None:
    base, pages, _ = site
    problems: list[str] = []
    errors: list[str] = []
    for page in (phones["staff"], phones["public"]):
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    for name, who, path in every_page(pages):
        page = phones[who]
        errors.clear()
        page.goto(base + path)
        problems.extend(f"{name}: {line}" for line in layout_problems(page))
        problems.extend(f"{name}: {line}" for line in errors if "Content Security" in line)
    assert not problems, "\n".join(problems)


def test_no_page_has_a_serious_accessibility_violation(
    site: tuple[str, Pages, Flask], phones: dict[str, Any]
) -> None:
    base, pages, _ = site
    problems = []
    for name, who, path in every_page(pages):
        page = phones[f"{who}_axe"]
        page.goto(base + path)
        problems.extend(f"{name}: {line}" for line in axe_problems(page))
    assert not problems, "\n".join(problems)


def test_pages_reached_by_sending_a_form_fit_and_are_accessible(
    site: tuple[str, Pages, Flask], phones: dict[str, Any]
) -> None:
    """ "Check your email" after asking to sign in or for a fresh link, and the plan preview."""
    base, _, _ = site
    problems = []
    for suffix in ("", "_axe"):
        public, staff = phones[f"public{suffix}"], phones[f"staff{suffix}"]
        public.goto(f"{base}/login")
        public.get_by_test_id("login-email").fill("someone@example.com")
        public.get_by_test_id("login-submit").click()
        public.wait_for_selector("[data-testid=login-sent]")
        seen = [("sign-in sent", public)]
        public2 = public.context.new_page()
        public2.goto(f"{base}/s/resend")
        public2.locator("#email").fill("someone@example.com")
        public2.locator("#package").fill("2026.11-pages")
        public2.get_by_role("button", name="Send").click()
        public2.wait_for_selector("[role=status]")
        seen.append(("resend sent", public2))
        staff.goto(f"{base}/packages/new")
        staff.get_by_test_id("package-key").fill("2026.12-preview")
        staff.get_by_test_id("package-title").fill("December release: a refund rounding fix")
        staff.get_by_test_id("pick-payments-api").check()
        staff.get_by_test_id("version-payments-api").fill("7.6.0")
        staff.get_by_test_id("preview-plan").click()
        staff.wait_for_selector("[data-testid=plan]")
        seen.append(("assemble with the plan", staff))
        for name, page in seen:
            problems.extend(f"{name}: {p}" for p in layout_problems(page))
            if suffix:
                problems.extend(f"{name}: {p}" for p in axe_problems(page))
        public2.close()
    assert not problems, "\n".join(problems)


FOCUSED = "document.activeElement.id || document.activeElement.dataset.testid || ''"
# The summary is focused by `autofocus`, which browsers apply at their next rendering step,
# after the element is in the page: wait for it (bounded) rather than read it at once.
AUTOFOCUS_WAIT_MS = 2000


def focus_settles_on(page: Any, wanted: str) -> bool:
    try:
        page.wait_for_function(f"() => ({FOCUSED}) === {wanted!r}", timeout=AUTOFOCUS_WAIT_MS)
    except playwright.TimeoutError:
        return False
    return True


SUBMIT = {
    "sign-off engineer": "Record my decisions",
    "sign-off key user": "Record my decisions",
    "review": "Record my review",
    "report": "Send the report",
}


def test_a_form_sent_with_errors_leads_to_each_of_them(
    site: tuple[str, Pages, Flask], phones: dict[str, Any]
) -> None:
    """Sent empty, each form comes back with its error summary focused; each link in it moves
    focus to its field; radios and checkboxes are at least 24 px; the page stays readable."""
    base, pages, _ = site
    problems = []
    for name, path in pages.forms.items():
        for page in (phones["public"], phones["public_axe"]):
            page.goto(base + path)
            page.get_by_role("button", name=SUBMIT[name]).click()
            page.wait_for_selector("[data-testid=error-summary]")
            if page is phones["public_axe"]:
                problems.extend(f"{name}, with errors: {p}" for p in layout_problems(page))
                problems.extend(f"{name}, with errors: {p}" for p in axe_problems(page))
                continue
            if not focus_settles_on(page, "error-summary"):
                problems.append(f"{name}: focus is on {page.evaluate(FOCUSED)!r}, not the summary")
            links = page.locator("[data-testid=error-summary] a")
            for index in range(links.count()):
                target = links.nth(index).get_attribute("href") or ""
                links.nth(index).click()
                if page.evaluate(FOCUSED) != target.removeprefix("#"):
                    problems.append(f"{name}: {target} leaves focus on {page.evaluate(FOCUSED)!r}")
            for box in page.locator("input[type=radio], input[type=checkbox]").all():
                size = box.bounding_box()
                if size and (size["width"] < 24 or size["height"] < 24):
                    problems.append(f"{name}: a {size['width']}x{size['height']} px control")
    assert not problems, "\n".join(problems)


def fill_and_send(page: Any, name: str) -> None:
    for box in page.locator("input[type=checkbox][name*='-scenario-']").all():
        box.check()
    for choice in ("pass", "confirmed", "approve"):
        for radio in page.locator(f"input[type=radio][value={choice}]:not([disabled])").all():
            radio.check()
    for evidence in page.locator("[name$='-evidence']").all():
        evidence.fill("https://ci.example.com/runs/pages")
    for text in page.locator("textarea#consulted, textarea#what_happened, textarea#impact").all():
        text.fill("Dana and Malik, on a call")
    if page.locator("#could_have_caught").count():
        page.locator("#could_have_caught").fill("A scenario with a large refund")
        page.locator("#application").select_option("payments-api")
    page.get_by_role("button", name=SUBMIT[name]).click()


def test_done_pages_fit_and_are_accessible(
    site: tuple[str, Pages, Flask], phones: dict[str, Any]
) -> None:
    """After the forms: each thank-you page (this uses up the links, so it runs last)."""
    base, pages, _ = site
    page = phones["public_axe"]
    problems = []
    for name, path in pages.forms.items():
        page.goto(base + path)
        fill_and_send(page, name)
        page.wait_for_selector(".notice.done")
        problems.extend(f"{name}, done: {p}" for p in layout_problems(page))
        problems.extend(f"{name}, done: {p}" for p in axe_problems(page))
    assert not problems, "\n".join(problems)
