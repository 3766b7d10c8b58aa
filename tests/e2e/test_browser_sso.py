"""Single sign-on in a real browser: Debian's headless Chromium, the real server (`gatekeeper
demo` with single sign-on on) and a real OpenID provider, all on loopback.

The person signs in on the provider's own page; the callback lands on the page they asked for
with the role their groups map to, and a group changed at the provider changes the role at
the next sign-in. Every request that would leave the machine is blocked and counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.browser import BROWSER_TESTS, chromium, demo_server
from tests.support.oidc import Provider, running_provider, sso_environ

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TESTS
ANA = "ana.lima@example.com"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with running_provider() as running:
        yield running


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider
) -> Iterator[dict[str, str]]:
    with demo_server(tmp_path_factory.mktemp("e2e-sso"), **sso_environ(provider)) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


def sign_in_at_the_provider(page: object, provider: Provider, subject: str) -> None:
    page.get_by_test_id("sso-start").click()  # type: ignore[attr-defined]
    page.wait_for_url(lambda url: url.startswith(f"{provider.url}/oauth2/authorize?"))  # type: ignore[attr-defined]
    page.fill("input[name=sub]", subject)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Authorize").click()  # type: ignore[attr-defined]


def test_sign_in_through_the_identity_provider_with_the_role_from_groups(
    server: dict[str, str], browser: object, provider: Provider
) -> None:
    base = server["base"]
    subject = provider.person(ANA, name="Ana Lima", groups=["release-managers", "staff"])
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    off_machine: list[tuple[str, str]] = []

    def loopback_only(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if urlsplit(request.url).hostname == "127.0.0.1":
            route.continue_()  # type: ignore[attr-defined]
        else:
            off_machine.append((request.resource_type, request.url))
            route.abort()  # type: ignore[attr-defined]

    context.route("**/*", loopback_only)
    page = context.new_page()

    page.goto(f"{base}/checklists")
    page.wait_for_url(lambda url: url.startswith(f"{base}/login?next="))
    assert page.get_by_test_id("login-form").is_visible(), "admins' way in when the IdP is down"
    sign_in_at_the_provider(page, provider, subject)
    page.wait_for_url(f"{base}/checklists")
    who = page.get_by_test_id("signed-in-as").inner_text()
    assert "Ana Lima" in who
    assert "Release manager" in who
    page.goto(f"{base}/")
    assert page.get_by_test_id("nav-new-package").is_visible(), "a release manager assembles"
    assert page.get_by_test_id("nav-governance").count() == 0

    page.get_by_test_id("sign-out").click()
    page.wait_for_url(f"{base}/login")
    provider.person(ANA, name="Ana Lima", groups=["release-board"])
    sign_in_at_the_provider(page, provider, subject)
    page.wait_for_url(f"{base}/")
    assert "Governance reviewer" in page.get_by_test_id("signed-in-as").inner_text()
    assert page.get_by_test_id("nav-governance").is_visible()
    assert page.get_by_test_id("nav-new-package").count() == 0

    page.get_by_test_id("sign-out").click()
    provider.person(ANA, name="Ana Lima", groups=["staff"])
    sign_in_at_the_provider(page, provider, subject)
    page.wait_for_selector("[data-testid=sso-problem][data-reason=no_role]")
    assert "no Gatekeeper role" in page.content()
    page.goto(f"{base}/")
    page.wait_for_url(lambda url: url.startswith(f"{base}/login?next="))
    context.close()
    # Only the test provider's own page reaches out (for its stylesheet); Gatekeeper never.
    assert {kind for kind, _ in off_machine} <= {"stylesheet"}, off_machine
