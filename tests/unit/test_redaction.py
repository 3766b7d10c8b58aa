"""Log redaction masks an emailed-link token in every spelling a server would route or log."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from gatekeeper.domain.clock import FixedClock
from gatekeeper.redaction import redact
from gatekeeper.signing import TokenService
from tests.conftest import START, TEST_KEY

TOKEN = TokenService([TEST_KEY], "signoff", 3600, FixedClock(START)).dumps({"l": 7, "n": "x" * 32})
ENCODED = "".join(f"%{byte:02X}" for byte in TOKEN.encode())


@pytest.mark.parametrize(
    "spelling",
    [
        f"/s/{TOKEN}",
        f"/s/{TOKEN}==",
        f"/s/{TOKEN}/",
        f"/s/{TOKEN}?utm_source=mail",
        f"/s/{ENCODED}",
        f"/s/{quote(ENCODED)}",
        f"/s%2F{TOKEN}",
        f"/%73/{TOKEN}",
        f"/review/{TOKEN}",
        f"/report/{TOKEN}",
        f"/login/{TOKEN}",
        f"/login?next=%2Fs%2F{TOKEN}",
        f"/somewhere?token={TOKEN}",
    ],
)
def test_every_spelling_of_a_token_is_masked(spelling: str) -> None:
    line = f'127.0.0.1 - - "GET {spelling} HTTP/1.1" 200 512 "https://gk.example.com/s/{TOKEN}"'
    masked = redact(line)
    assert redact(masked) == masked, "masking twice changes nothing"
    assert TOKEN not in masked
    assert TOKEN[:20] not in masked
    assert "[token]" in masked
    assert masked.startswith('127.0.0.1 - - "GET /')


def test_what_is_not_a_token_is_kept() -> None:
    for line in (
        '"POST /s/resend HTTP/1.1" 200 -',
        '"GET /packages/2026.11-r3 HTTP/1.1" 200 -',
        '"GET /checklists/payments-api/7 HTTP/1.1" 200 -',
        "database unavailable on POST /login: OperationalError",
        "database unavailable on GET /s/[token]: OperationalError: database is locked",
    ):
        assert redact(line) == line


def test_decoding_never_splits_a_line() -> None:
    masked = redact("/s/resend%0D%0Afake: line%00")
    assert masked == "/s/resend\\x0d\\x0afake: line\\x00"
    assert "\n" not in masked
    assert "\r" not in masked
