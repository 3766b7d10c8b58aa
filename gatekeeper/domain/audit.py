"""The audit chain: canonical encoding of an event, its hash, and the walk that finds tampering."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    """Everything that goes into an event's hash, in the form it is stored."""

    seq: int
    occurred_at: datetime
    actor: str
    action: str
    subject: str
    package: str | None
    revision: int | None
    client_address: str | None
    user_agent: str | None
    details: str
    prev_hash: str
    hash: str = ""
    # Not part of the hash: an Ed25519 signature over it (checked by the caller's verifier).
    signature: str | None = None
    key_id: str | None = None

    def canonical(self) -> bytes:
        return canonical_event(
            {
                "seq": self.seq,
                "occurred_at": self.occurred_at.isoformat(timespec="microseconds"),
                "actor": self.actor,
                "action": self.action,
                "subject": self.subject,
                "package": self.package,
                "revision": self.revision,
                "client_address": self.client_address,
                "user_agent": self.user_agent,
                "details": self.details,
                "prev_hash": self.prev_hash,
            }
        )

    def computed_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()


def canonical_event(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_details(details: Mapping[str, Any] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    events: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""
    # Events older than audit signing (they must all come before the first signed one).
    unsigned: int = 0


def verify_chain(
    events: Iterable[ChainedEvent],
    *,
    expect_head: str | None = None,
    signature_valid: Callable[[ChainedEvent], bool] | None = None,
) -> ChainReport:
    """Walk events in storage order; report the first sequence number that breaks the chain.

    `expect_head` is an anchor kept outside the database (a CI log, a release email): the chain
    must still contain it, which is how removing events from the end is detected.

    With `signature_valid`, every event must also carry a valid signature, except events older
    than signing itself: those are accepted only before the first signed event, whose hash
    covers them all. Without it only the hashes are checked (what a hash chain alone proves:
    nothing against someone who recomputes them).
    """
    expected_seq, prev, count, unsigned = 1, GENESIS, 0, 0
    anchored = expect_head is None
    signed_seen = False
    for event in events:
        count += 1
        if event.seq != expected_seq:
            return ChainReport(
                False,
                count,
                prev,
                expected_seq,
                f"expected event {expected_seq}, found {event.seq} (deleted or reordered)",
                unsigned,
            )
        if event.prev_hash != prev:
            return ChainReport(
                False, count, prev, event.seq, "does not link to the event before it", unsigned
            )
        if event.computed_hash() != event.hash:
            return ChainReport(
                False, count, prev, event.seq, "content does not match its hash", unsigned
            )
        if signature_valid is not None:
            problem = _signature_problem(event, signature_valid, signed_seen)
            if problem:
                return ChainReport(False, count, prev, event.seq, problem, unsigned)
            signed_seen = signed_seen or event.signature is not None
            unsigned += event.signature is None
        prev, expected_seq = event.hash, expected_seq + 1
        anchored = anchored or event.hash == expect_head
    if not anchored:
        return ChainReport(
            False,
            count,
            prev,
            expected_seq,
            "the expected head is not in the chain: events were removed from its end",
            unsigned,
        )
    return ChainReport(True, count, prev, unsigned=unsigned)


def _signature_problem(
    event: ChainedEvent, signature_valid: Callable[[ChainedEvent], bool], signed_seen: bool
) -> str:
    if event.signature is None:
        if signed_seen:
            return "has no signature although earlier events are signed (written without the key)"
        return ""
    if not signature_valid(event):
        return (
            f"its signature does not verify with audit key {event.key_id or '(none)'} "
            "(forged, edited, or signed with a key that is not configured)"
        )
    return ""
