"""Signed tokens: one salt per purpose, a list of keys for rotation, max_age on every load."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from itsdangerous import (
    BadData,
    BadSignature,
    SignatureExpired,
    Signer,
    TimestampSigner,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_decode, base64_encode

from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import TokenExpired, TokenInvalid

BADGE_SALT = "gatekeeper.badge"


def is_canonical(signed: str) -> bool:
    """Whether `signed` is spelled exactly as itsdangerous writes it.

    Its base64 decoding forgives padding (`==`), characters outside the alphabet and the spare
    bits of the last character, so many strings carry the same signature. The signature is
    re-encoded and compared: one token has one spelling, and anything else is not a link.
    """
    _, dot, signature = signed.rpartition(".")
    if not dot or not signed.isascii():
        return False
    try:
        return base64_encode(base64_decode(signature)).decode() == signature
    except BadData:
        return False


class TokenService:
    """Sign and verify tokens for one purpose; the only way the code loads a token."""

    def __init__(
        self, secret_keys: Sequence[str], purpose: str, max_age_seconds: int, clock: Clock
    ) -> None:
        if not secret_keys:
            raise ValueError("at least one secret key is needed")
        if max_age_seconds <= 0:
            raise ValueError("tokens must expire")

        class ClockedSigner(TimestampSigner):
            # Timestamps come from the injected clock, so signing and expiry agree with it.
            def get_timestamp(self) -> int:
                return int(clock.now().timestamp())

        # itsdangerous signs with the last key and accepts any key in the list.
        self._serializer = URLSafeTimedSerializer(
            list(secret_keys), salt=f"gatekeeper.{purpose}", signer=ClockedSigner
        )
        self._clock = clock
        self.max_age_seconds = max_age_seconds

    def dumps(self, payload: Any) -> str:
        token: str = self._serializer.dumps(payload)
        return token

    def loads(self, token: str) -> Any:
        """Verify spelling, signature and age; every load passes max_age, there is no other
        way in."""
        if not is_canonical(token):
            raise TokenInvalid("this link is not valid")
        try:
            return self._serializer.loads(token, max_age=self.max_age_seconds)
        except SignatureExpired as exc:
            signed = exc.date_signed
            if signed is not None and signed > self._clock.now():
                raise TokenInvalid("this link is not valid") from None
            raise TokenExpired("this link has expired") from None
        except (BadSignature, BadData):
            raise TokenInvalid("this link is not valid") from None


def badge_signature(secret_keys: Sequence[str], key: str) -> str:
    # Badges live for years in wiki pages, so they are signed but not timed; they reveal only
    # the gate status of one package.
    return Signer(list(secret_keys), salt=BADGE_SALT).get_signature(key).decode()


def badge_signature_valid(secret_keys: Sequence[str], key: str, signature: str) -> bool:
    if not is_canonical(f"{key}.{signature}"):
        return False
    try:
        Signer(list(secret_keys), salt=BADGE_SALT).unsign(f"{key}.{signature}")
    except BadSignature:
        return False
    return True
