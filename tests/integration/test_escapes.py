"""Escape analysis on a real database, against a small history computed by hand: per-item
counts, the never-fires flag at its boundary, gaps, change failure rate per month, classified
triage, and a query count that does not grow with the history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import (
    Application,
    ChecklistVersion,
    Finding,
    Package,
    PackageApplication,
    Signoff,
    SignoffRequest,
)
from gatekeeper.db.unit_of_work import unit_of_work
from gatekeeper.domain.clock import FixedClock
from gatekeeper.domain.errors import PermissionDenied, ValidationFailed
from gatekeeper.services import escapes, findings
from tests.support.governance import BOARD, approve, checklist_dir, sync

APP = "payments-api"
A = ("build", "artifacts-from-ci")
B = ("security", "dependency-scan")
SIGNER = "ana@example.com"


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


@pytest.fixture
def version(app: Flask, clock: FixedClock, tmp_path: Path) -> ChecklistVersion:
    sync(app, clock, checklist_dir(tmp_path))
    approve(clock, APP, 7)
    found = db.session.scalar(
        sa.select(ChecklistVersion).join(Application).where(Application.slug == APP)
    )
    assert found is not None
    refs = {f"{s}.{i}" for s, i in (A, B)}
    assert refs <= set(findings.triage_items_of_version(found)), "the sample changed"
    return found


def package(
    version: ChecklistVersion,
    key: str,
    released_at: datetime | None,
    decisions: dict[tuple[str, str], list[tuple[str, bool]]],
    *,
    removed: bool = False,
) -> int:
    """A package with `version`'s application and these item decisions (decision, stale)."""
    with unit_of_work(db.session) as session:
        pkg = Package(
            key=key,
            title=key,
            environment="production",
            assembled_by="release-manager@example.com",
            state="released" if released_at else "in_review",
            revision=2,
            created_at=at(1, 1),
            released_at=released_at,
        )
        session.add(pkg)
        session.flush()
        target = PackageApplication(
            package_id=pkg.id,
            application_id=version.application_id,
            version_label="1",
            checklist_version_id=version.id,
            removed_in_revision=2 if removed else None,
        )
        session.add(target)
        session.flush()
        for (section, item), made in decisions.items():
            for decision, stale in made:
                request = SignoffRequest(
                    package_id=pkg.id,
                    package_application_id=target.id,
                    kind="item",
                    section_id=section,
                    item_id=item,
                    signer=SIGNER,
                    revision=1,
                    state="signed",
                    created_at=at(1, 1),
                )
                session.add(request)
                session.flush()
                session.add(
                    Signoff(
                        package_id=pkg.id,
                        package_application_id=target.id,
                        request_id=request.id,
                        kind="item",
                        section_id=section,
                        item_id=item,
                        signer=SIGNER,
                        decision=decision,
                        revision=1,
                        signed_at=at(1, 1).replace(hour=18),
                        stale_since_revision=2 if stale else None,
                    )
                )
        return pkg.id


def finding(version: ChecklistVersion, package_id: int) -> int:
    with unit_of_work(db.session) as session:
        filed = Finding(
            application_id=version.application_id,
            package_id=package_id,
            checklist_version_id=version.id,
            what_happened="It broke",
            impact="Users waited",
            could_have_caught="A check",
            state="open",
            reported_at=at(3, 1),
        )
        session.add(filed)
        session.flush()
        return filed.id


def classify(finding_id: int, classification: str, clock: FixedClock, **kw: str) -> Finding:
    with unit_of_work(db.session) as session:
        return findings.triage(
            session, finding_id, classification=classification, actor=BOARD, clock=clock, **kw
        )


PASS, FAIL, NA = ("pass", False), ("fail", False), ("not_applicable", False)
STALE_FAIL, STALE_NA = ("fail", True), ("not_applicable", True)


@pytest.fixture
def history(version: ChecklistVersion, clock: FixedClock) -> dict[str, int]:
    """By hand, over released packages that shipped payments-api:
    A: R1 pass, R2 not applicable, R3 pass (and a stale N/A) -> evaluated 3, failed 0, N/A 1.
    B: R1 failed then passed after a new revision, R2 pass, R3 pass -> 3, failed 1, N/A 0.
    Not counted: a failure in a package never released, and in one the application left."""
    ids = {
        "R1": package(version, "R1", at(1, 10), {A: [PASS], B: [STALE_FAIL, PASS]}),
        "R2": package(version, "R2", at(1, 20), {A: [NA], B: [PASS]}),
        "R3": package(version, "R3", at(2, 5), {A: [PASS, STALE_NA], B: [PASS]}),
        "open": package(version, "OPEN", None, {A: [FAIL], B: [FAIL]}),
        "left": package(version, "LEFT", at(2, 6), {A: [FAIL], B: [FAIL]}, removed=True),
    }
    escaped = finding(version, ids["R1"])
    classify(escaped, "escaped_past", clock, item=".".join(A))
    gap = finding(version, ids["R3"])
    classify(gap, "uncovered", clock)
    other = finding(version, ids["R3"])
    classify(other, "not_a_checklist_matter", clock, rationale="A bank outage")
    return {**ids, "escaped": escaped, "gap": gap, "other": other}


def stats(window: int) -> dict[str, escapes.ItemStats]:
    return {s.ref: s for s in escapes.item_stats(db.session, window=window) if s.application == APP}


def test_item_counts_match_the_hand_computed_history(history: dict[str, int]) -> None:
    got = stats(20)
    a, b = got[".".join(A)], got[".".join(B)]
    assert (a.evaluated, a.failed, a.not_applicable, a.escaped) == (3, 0, 1, 1)
    assert (b.evaluated, b.failed, b.not_applicable, b.escaped) == (3, 1, 0, 0)
    assert a.text
    assert not a.retired
    untouched = [s for s in got.values() if s.ref not in {".".join(A), ".".join(B)}]
    assert untouched
    assert all(s.evaluated == 0 and not s.never_fires for s in untouched)


@pytest.mark.parametrize(
    ("window", "a_flagged", "b_flagged"),
    [
        (2, True, True),  # B's failure (R1) is older than its last 2 releases
        (3, True, False),  # exactly 3 evaluations: A flagged; B failed inside the window
        (4, False, False),  # fewer evaluations than the window: nobody judged yet
    ],
)
def test_never_fires_at_the_boundary(
    history: dict[str, int], window: int, a_flagged: bool, b_flagged: bool
) -> None:
    got = stats(window)
    assert (got[".".join(A)].never_fires, got[".".join(B)].never_fires) == (a_flagged, b_flagged)


def test_uncovered_findings_are_gaps_until_addressed(history: dict[str, int]) -> None:
    assert [g.finding_id for g in escapes.gaps(db.session)] == [history["gap"]]


def test_change_failure_rate_per_month(history: dict[str, int]) -> None:
    rates = {(r.application, r.month): r for r in escapes.change_failure_rates(db.session)}
    january, february = rates[(APP, "2026-01")], rates[(APP, "2026-02")]
    # Two findings on R3 count it once; LEFT did not ship the application; OPEN never released.
    assert (january.released, january.failed, january.rate) == (2, 1, 0.5)
    assert (february.released, february.failed, february.rate) == (1, 1, 1.0)
    csv_text = escapes.rates_csv(rates.values())
    assert f"{APP},2026-01,2,1,0.500\r\n" in csv_text


def test_findings_by_class_and_lead_time(history: dict[str, int]) -> None:
    assert escapes.findings_by_class(db.session) == {
        "escaped past an item": 1,
        "uncovered (a gap)": 1,
        "not a checklist matter": 1,
    }
    (lead,) = [t for t in escapes.lead_times(db.session) if t.application == APP]
    assert (lead.decisions, lead.median_hours) == (12, 6.0)


@contextmanager
def counted() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: object) -> None:
        # Only the reads: SQLite's engine opens its transactions with a statement of its own.
        if str(args[2]).lstrip().upper().startswith("SELECT"):
            seen.append(str(args[2]))

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def test_query_count_does_not_grow_with_history(
    history: dict[str, int], version: ChecklistVersion, clock: FixedClock
) -> None:
    def run() -> int:
        db.session.rollback()
        with counted() as seen:
            escapes.item_stats(db.session, window=3)
            escapes.gaps(db.session)
            escapes.change_failure_rates(db.session)
            escapes.lead_times(db.session)
            escapes.findings_by_class(db.session)
        return len(seen)

    before = run()
    for n in range(5):
        released = package(version, f"MORE{n}", at(3, n + 1), {A: [FAIL], B: [NA]})
        classify(finding(version, released), "escaped_past", clock, item=".".join(B))
    after = run()
    assert after == before == 7, (after, before)
    assert stats(3)[".".join(B)].escaped == 5


def test_an_escape_names_an_item_of_the_version_in_force(
    version: ChecklistVersion, clock: FixedClock
) -> None:
    released = package(version, "R9", at(1, 9), {A: [PASS]})
    filed = finding(version, released)
    with pytest.raises(ValidationFailed, match="name the checklist item"):
        classify(filed, "escaped_past", clock)
    with pytest.raises(ValidationFailed, match="not an item of the checklist version"):
        classify(filed, "escaped_past", clock, item="build.no-such-item")
    with pytest.raises(ValidationFailed, match="not a checklist matter"):
        classify(filed, "not_a_checklist_matter", clock)
    with (
        pytest.raises(PermissionDenied, match="not a governance reviewer"),
        unit_of_work(db.session) as session,
    ):
        findings.triage_as_reviewer(
            session, f"F-{filed}", classification="uncovered", reviewer=SIGNER, clock=clock
        )
    done = classify(filed, "uncovered", clock, item=".".join(A))
    assert (done.state, done.classification, done.escaped_item_id) == (
        "accepted",
        "uncovered",
        None,
    )
