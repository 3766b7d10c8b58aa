"""Staff sign-in with the organisation's identity provider: OpenID Connect's authorization code
flow with PKCE, through Authlib's Flask client.

The state, the nonce and the PKCE verifier stay in the signed session cookie (Authlib keeps
them there, keyed by the state); the database keeps the state's hash so the callback works
once. What a validated ID token lets in is decided by `services.sso`.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.flask_client import OAuth, OAuthError
from flask import Blueprint, Flask, current_app, redirect, render_template, request
from flask import session as cookie_session
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from gatekeeper.db.base import db
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.errors import LinkUnusable, TokenInvalid
from gatekeeper.domain.sso import SignInRefused
from gatekeeper.origin import request_origin
from gatekeeper.runtime import runtime
from gatekeeper.services import sso
from gatekeeper.settings import Settings
from gatekeeper.web import token_pages
from gatekeeper.web.access import StaffUser, safe_next
from gatekeeper.web.auth import NEXT_KEY, links_offered, start_staff_session
from gatekeeper.web.limits import starting_single_sign_on

log = logging.getLogger(__name__)
bp = Blueprint("oidc", __name__)
PROVIDER = "idp"
CALLBACK_PATH = "/login/oidc/callback"
# Seconds to wait for the provider's discovery, keys and token endpoints.
PROVIDER_TIMEOUT = 10

token_pages.protect(bp)


class ProviderMisconfigured(Exception):
    """The provider's discovery document cannot be used: another issuer, or endpoints missing
    or elsewhere."""


class Problem(Exception):
    """Why this sign-in cannot go on; `reason` picks the page's words."""

    def __init__(self, reason: str, status: int, message: str = "") -> None:
        super().__init__(reason)
        self.reason, self.status, self.message = reason, status, message


def register(app: Flask) -> tuple[str, ...]:
    """Single sign-on routes and the Authlib client, when an issuer is configured; returns the
    origins a sign-in form leads to (the provider's)."""
    settings = runtime(app).settings
    if settings.oidc_issuer is None:
        return ()
    oauth = OAuth(app)
    oauth.register(
        PROVIDER,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        server_metadata_url=discovery_url(settings.oidc_issuer),
        client_kwargs={
            "scope": settings.oidc_scopes,
            "code_challenge_method": "S256",
            "default_timeout": PROVIDER_TIMEOUT,
        },
    )
    app.register_blueprint(bp)
    return (origin_of(settings.oidc_issuer),)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def discovery_url(issuer: str) -> str:
    """OpenID Connect Discovery 1.0 §4: the issuer without a trailing slash, then the path."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def provider() -> Any:
    return current_app.extensions["authlib.integrations.flask_client"].create_client(PROVIDER)


def settings() -> Settings:
    return runtime(current_app).settings


def sso_settings() -> sso.SsoSettings:
    s = settings()
    return sso.SsoSettings(
        issuer=str(s.oidc_issuer),
        role_claim=s.oidc_role_claim,
        role_map=s.oidc_role_map,
        require_verified_email=s.oidc_require_verified_email,
    )


def callback_url() -> str:
    # From the configured base URL, never the Host header: it must equal the redirect URI
    # registered at the provider.
    return settings().base_url + CALLBACK_PATH


@bp.errorhandler(Problem)
def problem_page(problem: Problem) -> ResponseReturnValue:
    page = render_template(
        "auth/sso_problem.html",
        reason=problem.reason,
        message=problem.message,
        next=safe_next(cookie_session.get(NEXT_KEY)),
        links=links_offered(),
    )
    return page, problem.status


def check_provider(client: Any) -> None:
    """Discovery §4.3: the document must name exactly the configured issuer (Authlib then
    checks every ID token's `iss` against it) and the endpoints the flow uses. The browser is
    sent to the authorization endpoint, which must be on the issuer's origin: the only one
    besides ours the pages' CSP lets a form lead to."""
    issuer = str(settings().oidc_issuer)
    metadata = client.load_server_metadata()
    if metadata.get("issuer") != issuer:
        raise ProviderMisconfigured(
            f"the discovery document names the issuer {metadata.get('issuer')!r}, "
            f"not GATEKEEPER_OIDC_ISSUER={issuer!r}"
        )
    missing = [
        k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not metadata.get(k)
    ]
    if missing:
        raise ProviderMisconfigured(f"the discovery document has no {', '.join(missing)}")
    if origin_of(metadata["authorization_endpoint"]) != origin_of(issuer):
        raise ProviderMisconfigured(
            f"the authorization endpoint {metadata['authorization_endpoint']!r} is not on the "
            f"issuer's origin {origin_of(issuer)!r}"
        )


@bp.post("/login/oidc")
@starting_single_sign_on
def start() -> ResponseReturnValue:
    """A POST with the sign-in page's CSRF token (CSRFProtect checks it), so no other site can
    start a sign-in in this browser."""
    client = provider()
    try:
        check_provider(client)
    except (requests.RequestException, ProviderMisconfigured) as error:
        log.warning("single sign-on unavailable: %s", error)
        raise Problem("unavailable", 503) from None
    begun = client.create_authorization_url(redirect_uri=callback_url())
    forget_earlier_attempts()
    client.save_authorize_data(redirect_uri=callback_url(), **begun)
    with unit_of_work(db.session, origin=request_origin()) as session:
        sso.begin_attempt(session, begun["state"], now=runtime(current_app).clock.now())
    cookie_session[NEXT_KEY] = safe_next(request.args.get("next"))
    return redirect(begun["url"])


def forget_earlier_attempts() -> None:
    """Only the newest sign-in of a browser can finish: Authlib would keep every state begun
    for an hour, and a session cookie grown past 4 KB is silently dropped by browsers."""
    for key in [k for k in cookie_session if k.startswith(f"_state_{PROVIDER}_")]:
        cookie_session.pop(key)


@bp.get(CALLBACK_PATH)
def callback() -> ResponseReturnValue:
    """A GET by protocol: it signs in only with a state this browser's session holds (no login
    CSRF), and only once (the state is claimed in the database before anything else)."""
    client = provider()
    state = request.args.get("state", "")
    if request.args.get("error"):
        # The provider said no: the person cancelled, or is not assigned to Gatekeeper there.
        log.info("identity provider answered %s", request.args.get("error", "")[:64])
        raise Problem("provider_refused", 403)
    if not state or client.framework.get_state_data(cookie_session, state) is None:
        raise Problem("not_started", 400)
    try:
        # Committed on its own, before the provider is asked: a claimed state stays used
        # whatever happens next.
        with unit_of_work(db.session, origin=request_origin()) as session:
            sso.claim_attempt(session, state, now=runtime(current_app).clock.now())
    except LinkUnusable as error:
        raise Problem(error.reason, 400, error.message) from None
    except TokenInvalid:
        raise Problem("not_started", 400) from None
    claims = validated_claims(client)
    with unit_of_work(db.session, origin=request_origin()) as session:
        result = sso.complete_sign_in(
            session, claims, settings=sso_settings(), clock=runtime(current_app).clock
        )
    if isinstance(result, SignInRefused):
        raise Problem(result.reason, 403, result.message)
    return start_staff_session(
        StaffUser(result.user_id, result.email, result.name, result.role, result.session_version)
    )


def validated_claims(client: Any) -> dict[str, Any]:
    """Exchange the code (with the PKCE verifier) and check the ID token: signature, issuer,
    audience, expiry and nonce. Its time claims come from the provider's clock and are checked
    against this machine's, with Authlib's two minutes of leeway."""
    s = settings()
    try:
        token = client.authorize_access_token(
            claims_options={
                "iss": {"essential": True, "value": s.oidc_issuer},
                "aud": {"essential": True, "value": s.oidc_client_id},
            }
        )
    except requests.RequestException as error:
        log.warning("identity provider unreachable at the callback: %s", type(error).__name__)
        raise Problem("unavailable", 503) from None
    except (OAuthError, JoseError, ValueError) as error:
        # The class names what failed (state, nonce, expiry, signature); never the token.
        log.warning("ID token refused: %s %s", type(error).__name__, getattr(error, "error", ""))
        raise Problem("unverified", 400) from None
    claims = token.get("userinfo")
    if not claims:
        log.warning("the identity provider answered without an ID token")
        raise Problem("unverified", 400)
    return dict(claims)
