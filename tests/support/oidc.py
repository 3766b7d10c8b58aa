"""A real OpenID provider on loopback (oidc-provider-mock in a thread), and a person's part at it.

The provider signs real ID tokens with its own key and serves discovery, keys, authorization
and token endpoints over HTTP. A thin WSGI layer in front records what Gatekeeper sent it and
can make it misbehave the way a wrong or hostile provider would.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import oidc_provider_mock
import requests
from werkzeug.serving import WSGIRequestHandler, make_server

CLIENT_ID = "gatekeeper-test"
CLIENT_SECRET = "provider-test-secret"
ROLE_MAP = "release-managers=release_manager,release-board=governance_reviewer,gk-admins=admin"


class QuietHandler(WSGIRequestHandler):
    """The provider's access log would only clutter test output."""

    def log_request(self, *args: Any) -> None:
        pass


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]


@dataclass
class Provider:
    """The provider, and the knobs a test turns."""

    app: Any
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    # Host header the token endpoint is reached with: its ID tokens then name that issuer.
    token_issuer_host: str | None = None
    # Host header discovery is reached with: the document then names that issuer.
    discovery_issuer_host: str | None = None
    # Fields of the discovery document replaced (None: left out).
    discovery_changes: dict[str, object] = field(default_factory=dict)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        self.seen.append(
            Seen(
                environ["REQUEST_METHOD"],
                path,
                parse_qs(environ.get("QUERY_STRING", "")),
                parse_qs(body.decode("latin-1")),
            )
        )
        if path == "/oauth2/token" and self.token_issuer_host:
            environ["HTTP_HOST"] = self.token_issuer_host
        if path.startswith("/.well-known/") and self.discovery_issuer_host:
            environ["HTTP_HOST"] = self.discovery_issuer_host
        if path == "/.well-known/openid-configuration" and self.discovery_changes:
            return self._changed_discovery(environ, start_response)
        return self.app(environ, start_response)

    def _changed_discovery(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> list[bytes]:
        answered: list[Any] = []
        body = b"".join(self.app(environ, lambda *args: answered.append(args)))
        document = {**json.loads(body), **self.discovery_changes}
        changed = json.dumps({k: v for k, v in document.items() if v is not None}).encode()
        status, headers = answered[0][0], answered[0][1]
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        start_response(status, [*headers, ("Content-Length", str(len(changed)))])
        return [changed]

    @property
    def other_issuer_host(self) -> str:
        """The same provider under another name: its tokens then name another issuer. (A
        loopback name: the provider insists on https for any other host.)"""
        return self.url.removeprefix("http://").replace("127.0.0.1", "localhost")

    def person(
        self,
        email: str,
        *,
        groups: Iterable[str] = (),
        name: str = "",
        sub: str | None = None,
        claims: Mapping[str, object] | None = None,
    ) -> str:
        """Store a person's claims at the provider (a None in `claims` leaves that claim out);
        return the subject to sign in as."""
        subject = sub or email
        body: dict[str, object] = {"email": email, "email_verified": True, "groups": list(groups)}
        if name:
            body["name"] = name
        body.update(claims or {})
        body = {claim: value for claim, value in body.items() if value is not None}
        answer = requests.put(f"{self.url}/users/{quote(subject, safe='')}", json=body, timeout=5)
        assert answer.status_code == 204, answer.text
        return subject

    def authorize(self, authorization_url: str, subject: str) -> str:
        """Sign in at the provider's page as `subject`; return where it sends the browser."""
        assert authorization_url.startswith(self.url + "/oauth2/authorize?"), authorization_url
        page = requests.get(authorization_url, timeout=5)
        assert page.status_code == 200, page.text
        answer = requests.post(
            authorization_url, data={"sub": subject}, allow_redirects=False, timeout=5
        )
        assert answer.status_code == 302, answer.text
        return str(answer.headers["Location"])

    def deny(self, authorization_url: str) -> str:
        answer = requests.post(
            authorization_url, data={"action": "deny"}, allow_redirects=False, timeout=5
        )
        assert answer.status_code == 302, answer.text
        return str(answer.headers["Location"])

    def token_requests(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/oauth2/token"]


@contextmanager
def running_provider(*, token_lifetime: timedelta = timedelta(hours=1)) -> Iterator[Provider]:
    """The provider on a free loopback port, for the length of the block. A negative
    `token_lifetime` makes every ID token expired on arrival."""
    provider = Provider(oidc_provider_mock.app(access_token_max_age=token_lifetime))
    server = make_server("127.0.0.1", 0, provider, threaded=True, request_handler=QuietHandler)
    provider.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def sso_environ(provider: Provider, **extra: str) -> dict[str, str]:
    """The settings that point Gatekeeper at `provider`."""
    return {
        "GATEKEEPER_OIDC_ISSUER": provider.url,
        "GATEKEEPER_OIDC_CLIENT_ID": CLIENT_ID,
        "GATEKEEPER_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "GATEKEEPER_OIDC_ROLE_MAP": ROLE_MAP,
        **extra,
    }


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path
