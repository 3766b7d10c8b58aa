"""Signed tokens: purpose salts, key rotation, max_age on every load, badge signatures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import TokenExpired, TokenInvalid
from gatekeeper.signing import TokenService, badge_signature, badge_signature_valid

OLD, NEW = "o" * 40, "n" * 40
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def service(
    keys: list[str], purpose: str = "signoff", clock: FixedClock | None = None
) -> TokenService:
    return TokenService(keys, purpose, 3600, clock or FixedClock(NOW))


def test_round_trip_and_purpose_isolation() -> None:
    token = service([NEW]).dumps({"r": 1, "n": "abc"})
    assert service([NEW]).loads(token) == {"r": 1, "n": "abc"}
    with pytest.raises(TokenInvalid):
        service([NEW], "review").loads(token)


def _flip_last(token: str) -> str:
    # Not the very last character: its low bits are base64 padding and may decode the same.
    return token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]


def _flip_payload(token: str) -> str:
    return ("B" if token[0] != "B" else "C") + token[1:]


@pytest.mark.parametrize(
    "mutate",
    [_flip_last, _flip_payload, lambda t: t[:-1], lambda t: t[: len(t) // 2], lambda t: ""],
    ids=["same-length-signature", "same-length-payload", "truncated-1", "truncated-half", "empty"],
)
def test_tampered_tokens_are_invalid(mutate: Callable[[str], str]) -> None:
    token = service([NEW]).dumps({"r": 1})
    with pytest.raises(TokenInvalid):
        service([NEW]).loads(mutate(token))


def test_key_rotation_accepts_old_keys_while_listed() -> None:
    token = service([OLD]).dumps({"r": 1})
    assert service([OLD, NEW]).loads(token) == {"r": 1}
    with pytest.raises(TokenInvalid):
        service([NEW]).loads(token)
    newer = service([OLD, NEW]).dumps({"r": 2})
    assert service([NEW]).loads(newer) == {"r": 2}


def test_max_age_is_enforced_on_every_load_at_the_boundary() -> None:
    clock = FixedClock(NOW)
    tokens = service([NEW], clock=clock)
    token = tokens.dumps({"r": 1})
    clock.advance(timedelta(seconds=3600))
    assert tokens.loads(token) == {"r": 1}
    clock.advance(timedelta(seconds=1))
    with pytest.raises(TokenExpired):
        tokens.loads(token)


def test_future_dated_tokens_are_refused() -> None:
    clock = FixedClock(NOW)
    token = service([NEW], clock=FixedClock(NOW + timedelta(hours=2))).dumps({"r": 1})
    with pytest.raises(TokenInvalid):
        service([NEW], clock=clock).loads(token)


def test_tokens_must_expire_and_need_a_key() -> None:
    with pytest.raises(ValueError, match="expire"):
        TokenService([NEW], "x", 0, FixedClock(NOW))
    with pytest.raises(ValueError, match="secret key"):
        TokenService([], "x", 10, FixedClock(NOW))


def test_badge_signatures() -> None:
    signature = badge_signature([NEW], "2026.11-r3")
    assert badge_signature_valid([OLD, NEW], "2026.11-r3", signature)
    assert not badge_signature_valid([NEW], "2026.11-r4", signature)
    assert not badge_signature_valid([OLD], "2026.11-r3", signature)


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respelled(token: str) -> list[str]:
    """Other strings that base64 decoding turns into the same signature as `token`'s."""
    signature = token.rpartition(".")[2]
    spare_bits = len(signature) * 6 % 8
    last = BASE64URL.index(token[-1])
    # The last character's low bits are not part of the signature: its neighbours decode alike.
    alike = next(
        c for i, c in enumerate(BASE64URL) if i >> spare_bits == last >> spare_bits and i != last
    )
    return [
        token + "==",
        token + "=",
        token + "~",
        token[:-3] + "*" + token[-3:],
        token + "é",
        token[:-1] + alike,
    ]


def test_a_token_has_one_spelling() -> None:
    tokens = service([NEW])
    token = tokens.dumps({"r": 1, "n": "abc"})
    assert tokens.loads(token) == {"r": 1, "n": "abc"}
    for spelling in _respelled(token):
        with pytest.raises(TokenInvalid):
            tokens.loads(spelling)


def test_a_badge_signature_has_one_spelling() -> None:
    signature = badge_signature([NEW], "2026.11-r3")
    assert badge_signature_valid([NEW], "2026.11-r3", signature)
    for spelling in (signature + "==", signature + "~", signature[:-3] + "*" + signature[-3:]):
        assert not badge_signature_valid([NEW], "2026.11-r3", spelling)
