"""The audit chain's encoding and the walk that finds the first bad event."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gatekeeper.domain.audit import GENESIS, ChainedEvent, canonical_details, verify_chain

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def chain(length: int) -> list[ChainedEvent]:
    events: list[ChainedEvent] = []
    prev = GENESIS
    for seq in range(1, length + 1):
        event = ChainedEvent(
            seq=seq,
            occurred_at=T0 + timedelta(seconds=seq),
            actor="ana@example.com",
            action="signoff.recorded",
            subject=f"item {seq}",
            package="2026.11-r3",
            revision=1,
            client_address="127.0.0.1",
            user_agent="pytest",
            details=canonical_details({"n": seq}),
            prev_hash=prev,
        )
        event = replace(event, hash=event.computed_hash())
        events.append(event)
        prev = event.hash
    return events


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    events = chain(5)
    report = verify_chain(events)
    assert (report.ok, report.events, report.head) == (True, 5, events[-1].hash)
    assert verify_chain([]).head == GENESIS


def test_an_edited_event_is_found() -> None:
    events = chain(5)
    events[2] = replace(events[2], subject="something else")
    report = verify_chain(events)
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert "does not match its hash" in report.problem


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link() -> None:
    events = chain(5)
    forged = replace(events[2], subject="forged")
    events[2] = replace(forged, hash=forged.computed_hash())
    report = verify_chain(events)
    assert report.first_bad_seq == 4
    assert "does not link" in report.problem


def test_a_deleted_event_is_found() -> None:
    events = chain(5)
    del events[1]
    report = verify_chain(events)
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert "deleted or reordered" in report.problem


def test_swapped_events_are_found() -> None:
    events = chain(5)
    events[1], events[2] = events[2], events[1]
    assert verify_chain(events).first_bad_seq == 2


def test_truncation_is_found_with_an_outside_anchor() -> None:
    events = chain(5)
    anchor = events[-1].hash
    assert verify_chain(events, expect_head=anchor).ok
    assert verify_chain(events + chain(0), expect_head=events[2].hash).ok, "older anchors hold"
    report = verify_chain(events[:3], expect_head=anchor)
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert "removed from its end" in report.problem


def test_details_encoding_is_canonical() -> None:
    assert canonical_details({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert canonical_details(None) == "{}"


def signed_chain(length: int, unsigned_first: int = 0) -> list[ChainedEvent]:
    """A chain whose events carry a stand-in signature (the event's hash, reversed) from
    event `unsigned_first + 1` on."""
    return [
        e if e.seq <= unsigned_first else replace(e, signature=e.hash[::-1], key_id="k1")
        for e in chain(length)
    ]


def stand_in(event: ChainedEvent) -> bool:
    return event.signature == event.hash[::-1]


def test_every_signature_is_checked_and_older_unsigned_events_are_counted() -> None:
    report = verify_chain(signed_chain(5, unsigned_first=2), signature_valid=stand_in)
    assert (report.ok, report.unsigned) == (True, 2)
    assert verify_chain(signed_chain(3), signature_valid=stand_in).unsigned == 0


def test_a_bad_signature_is_the_first_bad_event() -> None:
    events = signed_chain(5)
    events[3] = replace(events[3], signature="forged")
    report = verify_chain(events, signature_valid=stand_in)
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert "signature does not verify with audit key k1" in report.problem
    events[3] = replace(events[3], key_id=None)
    assert "audit key (none)" in verify_chain(events, signature_valid=stand_in).problem


def test_an_unsigned_event_after_signed_ones_was_written_without_the_key() -> None:
    events = signed_chain(4)
    events.append(replace(chain(5)[4], prev_hash=events[-1].hash))
    events[4] = replace(events[4], hash=events[4].computed_hash())
    report = verify_chain(events, signature_valid=stand_in)
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert "has no signature although earlier events are signed" in report.problem
    assert verify_chain(events).ok, "the hashes alone cannot tell"
