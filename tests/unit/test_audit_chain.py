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
