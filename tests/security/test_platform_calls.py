"""Calls to GitHub and GitLab carry a token (the App's installation token, the bot's private
token): they go through the webhooks' guard, so a redirect never carries it to another host
and a metadata address is never called, whatever the API answers or the setting names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from gatekeeper.notify import platforms

TOKEN = "glpat-secret-of-the-bot"


@pytest.fixture
def elsewhere() -> Iterator[HTTPServer]:
    """Another host a hostile or misconfigured API redirects to."""
    server = HTTPServer(host="127.0.0.1")
    server.start()
    server.expect_request("/stolen").respond_with_data("thanks")
    yield server
    server.clear()
    server.stop()


def settings_for(url: str) -> platforms.PlatformSettings:
    return platforms.PlatformSettings(
        secret_keys=("k" * 40,), gitlab_url=url, gitlab_token=TOKEN, timeout=5
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_the_token_stays_home(
    httpserver: HTTPServer, elsewhere: HTTPServer, status: int
) -> None:
    httpserver.expect_request("/api/v4/projects/acme/pay/deployments").respond_with_response(
        Response(status=status, headers={"Location": elsewhere.url_for("/stolen")})
    )
    answer = platforms.gitlab_blocked(
        settings_for(httpserver.url_for("").rstrip("/")), "acme/pay", "production"
    )
    assert isinstance(answer, platforms.Answer)
    assert answer.status == status
    assert "redirects are not followed" in answer.error
    assert elsewhere.log == [], "nothing reached the redirect's target"
    [(request, _)] = httpserver.log
    assert request.headers["PRIVATE-TOKEN"] == TOKEN


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254", "http://[fd00:ec2::254]", "http://169.254.10.1:8080", "file:///etc"],
)
def test_metadata_and_link_local_addresses_are_refused_for_good(url: str) -> None:
    answer = platforms.gitlab_blocked(settings_for(url), "acme/pay", "production")
    assert isinstance(answer, platforms.Answer)
    assert answer.status is None
    assert answer.error.startswith("refused: "), answer.error
    assert platforms._outcome(answer)[0] == "dead", "retrying cannot help"


def test_a_private_address_the_operator_set_is_called(httpserver: HTTPServer) -> None:
    """A self-managed GitLab on the office network (here: loopback) is what most run."""
    httpserver.expect_request("/api/v4/projects/acme/pay/deployments").respond_with_json(
        [{"id": 7, "status": "blocked"}, "not a deployment"]
    )
    found = platforms.gitlab_blocked(
        settings_for(httpserver.url_for("").rstrip("/")), "acme/pay", "production"
    )
    assert found == [{"id": 7, "status": "blocked"}]
