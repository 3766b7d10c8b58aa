"""The release population: its period, audit log and packages reconciled, duties as evaluated."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.audit import ChainReport
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.domain.gate import GateInput, SignoffRecord
from gatekeeper.domain.signoff import ITEM, KEY_USER, technical_signers

# The release mode: an emergency release was authorised by its emergency approvers, with
# everything but its required items deferred to a post-implementation review.
NORMAL = "normal"
EMERGENCY = "emergency"

# Roles an approval is given in.
ENGINEER = "engineer"
KEY_USER_ROLE = "key_user"
GOVERNANCE_REVIEWER = "governance_reviewer"
RELEASE_MANAGER = "release_manager"
ROLE_OF_KIND = {ITEM: ENGINEER, KEY_USER: KEY_USER_ROLE}

# Exception codes (stable; scripts may match on them).
AUDIT_CHAIN_BROKEN = "AUDIT_CHAIN_BROKEN"
RELEASE_EVENT_MISSING = "RELEASE_EVENT_MISSING"
RELEASED_PACKAGE_MISSING = "RELEASED_PACKAGE_MISSING"
RELEASE_RECORDS_DISAGREE = "RELEASE_RECORDS_DISAGREE"
DUPLICATE_RELEASE_EVENT = "DUPLICATE_RELEASE_EVENT"

# Separation-of-duties rules, as reported per package.
ASSEMBLER_EXCLUDED = "assembler_excluded"
KEY_USERS_NOT_TECHNICAL_SIGNERS = "key_users_not_technical_signers"
ONE_COUNT_PER_PERSON_PER_ITEM = "one_count_per_person_per_item"
ONLY_LISTED_SIGNERS = "only_listed_signers"

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Period:
    """Whole UTC days, both named days included: [first_day 00:00, day after last_day 00:00)."""

    first_day: date
    last_day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: the first instant after the period."""
        return datetime.combine(self.last_day + timedelta(days=1), time(), tzinfo=UTC)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def to_dict(self) -> dict[str, str]:
        return {
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "interval": f"[{self.start.isoformat()}, {self.end.isoformat()})",
        }


def _day(value: str, name: str) -> date:
    # Strict on purpose: date.fromisoformat also reads "20261101" and "2026-W45-1".
    if _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationFailed(f"{name} must be a date written YYYY-MM-DD, not {value!r}")


def period_of(first: str, last: str) -> Period:
    """The period from day `first` through day `last`, both included (ISO dates, UTC)."""
    first_day, last_day = _day(first, "from"), _day(last, "to")
    if last_day < first_day:
        raise ValidationFailed(f"to ({last}) is before from ({first})")
    if last_day == date.max:
        raise ValidationFailed(f"to must be before {date.max.isoformat()}")
    return Period(first_day, last_day)


@dataclass(frozen=True, slots=True)
class ReleaseEvent:
    """A `package.released` event of the audit log."""

    seq: int
    package: str | None
    occurred_at: datetime
    actor: str
    revision: int | None
    digest: str | None
    # Inside the part of the chain whose hashes were verified.
    verified: bool = True


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    """A package as the packages table holds it."""

    package: str
    state: str
    released_at: datetime | None
    released_by: str | None
    revision: int
    digest: str | None

    def released_in(self, period: Period) -> bool:
        return (
            self.state == lifecycle.RELEASED
            and self.released_at is not None
            and period.contains(self.released_at)
        )


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """Something an auditor must look at: the records do not tell one consistent story."""

    code: str
    message: str
    package: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "package": self.package,
            "message": self.message,
            "details": dict(self.details),
        }


def chain_discrepancy(report: ChainReport) -> Discrepancy | None:
    if report.ok:
        return None
    return Discrepancy(
        AUDIT_CHAIN_BROKEN,
        f"the audit chain is broken at event {report.first_bad_seq}: {report.problem}; events "
        "from there on are not verified",
        details={"first_bad_seq": report.first_bad_seq, "problem": report.problem},
    )


@dataclass(frozen=True, slots=True)
class Reconciled:
    """The population's package keys (from either source) and where the sources disagree."""

    keys: tuple[str, ...]
    discrepancies: tuple[Discrepancy, ...]


def population_keys(
    period: Period, events: Iterable[ReleaseEvent], records: Iterable[ReleaseRecord]
) -> set[str]:
    """Keys released in the period according to the audit log or the packages table."""
    keys = {e.package for e in events if e.package is not None and period.contains(e.occurred_at)}
    keys.update(r.package for r in records if r.released_in(period))
    return keys


def reconcile(
    period: Period, events: Sequence[ReleaseEvent], records: Sequence[ReleaseRecord]
) -> Reconciled:
    """Derive the population from both sources and report each disagreement.

    `events` and `records` must include every release event and every package row of each key
    in the population, whenever they happened: a package released in the period whose event
    lies outside it is a disagreement, not a missing event.
    """
    keys = sorted(population_keys(period, events, records))
    by_key: dict[str, list[ReleaseEvent]] = {}
    for event in sorted(events, key=lambda e: e.seq):
        if event.package is not None:
            by_key.setdefault(event.package, []).append(event)
    record_of = {r.package: r for r in records}
    found: list[Discrepancy] = []
    for key in keys:
        found.extend(_compare(key, by_key.get(key, []), record_of.get(key)))
    return Reconciled(tuple(keys), tuple(found))


def _compare(
    key: str, events: list[ReleaseEvent], record: ReleaseRecord | None
) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    if len(events) > 1:
        found.append(
            Discrepancy(
                DUPLICATE_RELEASE_EVENT,
                f"the audit log records the release of {key} {len(events)} times",
                key,
                {"seqs": [e.seq for e in events]},
            )
        )
    if record is None or record.state != lifecycle.RELEASED:
        where = "no such package exists" if record is None else f"the package is {record.state}"
        found.extend(
            Discrepancy(
                RELEASED_PACKAGE_MISSING,
                f"audit event {e.seq} records the release of {key}, but {where}",
                key,
                {"seq": e.seq, "state": record.state if record else None},
            )
            for e in events
        )
        return found
    if not events:
        found.append(
            Discrepancy(
                RELEASE_EVENT_MISSING,
                f"{key} is released in the packages table (at {_iso(record.released_at)} by "
                f"{record.released_by}), but the audit log has no release event for it",
                key,
                {"released_at": _iso(record.released_at), "released_by": record.released_by},
            )
        )
        return found
    event = events[0]
    differences = {
        name: [logged, stored]
        for name, logged, stored in (
            ("released_at", _iso(event.occurred_at), _iso(record.released_at)),
            ("released_by", event.actor, record.released_by),
            ("revision", event.revision, record.revision),
            ("digest", event.digest, record.digest),
        )
        if logged != stored
    }
    if differences:
        found.append(
            Discrepancy(
                RELEASE_RECORDS_DISAGREE,
                f"audit event {event.seq} and the packages table disagree about the release of "
                f"{key}: {', '.join(differences)}",
                key,
                {"seq": event.seq, "differences (audit log, packages table)": differences},
            )
        )
    return found


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@dataclass(frozen=True, slots=True)
class DutyCheck:
    """One separation-of-duties rule as evaluated for a package: who it kept out, and any
    counted decision that breaks it (there must be none)."""

    rule: str
    passed: bool
    detail: str
    excluded: tuple[str, ...] = ()
    violations: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "passed": self.passed,
            "detail": self.detail,
            "excluded": list(self.excluded),
            "violations": list(self.violations),
        }


def requirement_of(record: SignoffRecord) -> str:
    return f"{record.section_id}.{record.item_id}" if record.kind == ITEM else "key-user validation"


def duty_checks(gate: GateInput, counted: Iterable[int]) -> tuple[DutyCheck, ...]:
    """The separation-of-duties rules applied to the decisions the gate counted (`counted`, the
    ids its evaluation reports), checked again here from the pinned checklists."""
    checklists = {p.application: p.checklist for p in gate.applications if p.checklist}
    records = [r for r in gate.signoffs if r.application in checklists]
    counted_ids = frozenset(counted)
    counting = [r for r in records if r.id in counted_ids]
    return (
        _assembler_excluded(gate.assembler, checklists, counting),
        _key_users_not_technical_signers(checklists, counting),
        _one_count_per_person(records, counting),
        _only_listed_signers(checklists, counting),
    )


def _with_violations(detail: str, violations: Sequence[int]) -> str:
    if not violations:
        return detail
    return f"{detail}; yet {len(violations)} decision(s) against the rule counted"


def _assembler_excluded(
    assembler: str, checklists: Mapping[str, Checklist], counting: Sequence[SignoffRecord]
) -> DutyCheck:
    listed = [
        f"{application}: {section.id}.{item.id}"
        for application, checklist in sorted(checklists.items())
        for section, item in checklist.items()
        if assembler in item.signers
    ] + [
        f"{application}: key-user validation"
        for application, checklist in sorted(checklists.items())
        if assembler in checklist.user_validation.emails
    ]
    violations = tuple(r.id for r in counting if r.signer == assembler)
    detail = (
        f"{assembler} assembled the package and was kept out of the {len(listed)} "
        "requirement(s) listing them"
        if listed
        else f"{assembler} assembled the package and is not listed as a signer in it"
    )
    return DutyCheck(
        ASSEMBLER_EXCLUDED,
        not violations,
        _with_violations(detail, violations),
        tuple(listed),
        violations,
    )


def _key_users_not_technical_signers(
    checklists: Mapping[str, Checklist], counting: Sequence[SignoffRecord]
) -> DutyCheck:
    engineers = {app: technical_signers(c) for app, c in checklists.items()}
    both = tuple(
        f"{application}: {user}"
        for application, checklist in sorted(checklists.items())
        for user in checklist.user_validation.emails
        if user in engineers[application]
    )
    violations = tuple(
        r.id for r in counting if r.kind == KEY_USER and r.signer in engineers[r.application]
    )
    detail = (
        f"{len(both)} key user(s) also sign technical items of the same application and were "
        "kept out of validating it"
        if both
        else "no key user signs technical items of the same application"
    )
    return DutyCheck(
        KEY_USERS_NOT_TECHNICAL_SIGNERS,
        not violations,
        _with_violations(detail, violations),
        both,
        violations,
    )


def _one_count_per_person(
    records: Sequence[SignoffRecord], counting: Sequence[SignoffRecord]
) -> DutyCheck:
    def key(r: SignoffRecord) -> tuple[str, str, str]:
        return (r.application, requirement_of(r), r.signer)

    decided: dict[tuple[str, str, str], int] = {}
    for record in records:
        decided[key(record)] = decided.get(key(record), 0) + 1
    counts: dict[tuple[str, str, str], list[int]] = {}
    for record in counting:
        counts.setdefault(key(record), []).append(record.id)
    violations = tuple(sorted(i for ids in counts.values() if len(ids) > 1 for i in ids))
    superseded = tuple(
        f"{application}: {requirement}: {who}"
        for (application, requirement, who), n in sorted(decided.items())
        if n > 1
    )
    detail = (
        f"{len(counts)} person-requirement pair(s) counted; "
        f"{sum(n - 1 for n in decided.values())} earlier decision(s) were superseded by the same "
        "person's later one"
    )
    return DutyCheck(
        ONE_COUNT_PER_PERSON_PER_ITEM,
        not violations,
        _with_violations(detail, violations),
        superseded,
        violations,
    )


def _only_listed_signers(
    checklists: Mapping[str, Checklist], counting: Sequence[SignoffRecord]
) -> DutyCheck:
    items = {
        (application, section.id, item.id): item.signers
        for application, checklist in checklists.items()
        for section, item in checklist.items()
    }

    def listed(r: SignoffRecord) -> bool:
        if r.kind == KEY_USER:
            return r.signer in checklists[r.application].user_validation.emails
        return r.signer in items.get((r.application, r.section_id or "", r.item_id or ""), ())

    violations = tuple(r.id for r in counting if not listed(r))
    detail = (
        f"{len(counting)} counted decision(s) checked against the signers and key users the "
        "pinned checklists name"
    )
    return DutyCheck(
        ONLY_LISTED_SIGNERS,
        not violations,
        _with_violations(detail, violations),
        (),
        violations,
    )
