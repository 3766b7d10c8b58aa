"""What every emailed link shares: a random nonce kept only as a hash, and one way to load it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from gatekeeper.domain.errors import LinkUnusable, TokenExpired, TokenInvalid
from gatekeeper.signing import TokenService


class HasNonce(Protocol):
    nonce_hash: str


LinkT = TypeVar("LinkT", bound=HasNonce)


def new_nonce() -> tuple[str, str]:
    """A fresh nonce for the token, and the hash the database keeps instead of it."""
    nonce = secrets.token_urlsafe(24)
    return nonce, nonce_hash(nonce)


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def token_for(tokens: TokenService, link_id: int, nonce: str) -> str:
    return tokens.dumps({"l": link_id, "n": nonce})


def load_link(
    session: Session,
    token: str,
    *,
    tokens: TokenService,
    model: type[LinkT],
    expired: str = "This link has expired.",
) -> LinkT:
    """The link row a token names: signature, age and nonce checked, in constant time."""
    try:
        payload: Any = tokens.loads(token)
    except TokenExpired:
        raise LinkUnusable("expired", expired) from None
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("l"), int)
        and isinstance(payload.get("n"), str)
    ):
        raise TokenInvalid("this link is not valid")
    link = session.get(model, payload["l"])
    if link is None or not hmac.compare_digest(link.nonce_hash, nonce_hash(payload["n"])):
        raise TokenInvalid("this link is not valid")
    return link
