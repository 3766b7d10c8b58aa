"""The gate: a pure function from a package revision and its sign-offs to open/pending/blocked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from gatekeeper.domain import absence as absence_rules
from gatekeeper.domain import confirmation as confirmation_rules
from gatekeeper.domain import freeze, learning
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.checklist import DEFAULT_REVIEW_WITHIN_HOURS, Checklist, Emergency, Item
from gatekeeper.domain.signoff import (
    DECISIONS,
    FAIL,
    ITEM,
    KEY_USER,
    POSITIVE,
    PROBLEM,
    barred_deputies,
    stand_ins,
    technical_signers,
)

OPEN = "open"
PENDING = "pending"
BLOCKED = "blocked"
# Shown (CLI, badge) instead of "open" for a released package whose gate still holds; never a
# `status`, which scripts compare with "open".
RELEASED = "released"

BLOCK_OVERDUE = "block"
WARN_OVERDUE = "warn"

# Blocker codes: stable, scripts match on them.
PACKAGE_NOT_SUBMITTED = "PACKAGE_NOT_SUBMITTED"
PACKAGE_CANCELLED = "PACKAGE_CANCELLED"
PACKAGE_EMPTY = "PACKAGE_EMPTY"
NO_APPROVED_CHECKLIST = "NO_APPROVED_CHECKLIST"
CHECKLIST_NOT_APPROVED = "CHECKLIST_NOT_APPROVED"
REVIEW_OVERDUE = "REVIEW_OVERDUE"
ITEM_PENDING = "ITEM_PENDING"
ITEM_FAILED = "ITEM_FAILED"
QUORUM_UNREACHABLE = "QUORUM_UNREACHABLE"
USER_VALIDATION_PENDING = "USER_VALIDATION_PENDING"
USER_PROBLEM_REPORTED = "USER_PROBLEM_REPORTED"
USER_QUORUM_UNREACHABLE = "USER_QUORUM_UNREACHABLE"
# A sign-off or governance review whose record MAC does not verify: written or changed by
# someone without the record keys. It never counts, and it blocks until someone looks.
TAMPERING_DETECTED = "TAMPERING_DETECTED"
# Someone whose sign-off is still needed is away and nobody may sign in their place.
SIGNER_AWAY = "SIGNER_AWAY"
# A freeze window or a business blackout in force now (see freeze_blockers).
FREEZE_WINDOW = "FREEZE_WINDOW"

# An emergency release of another package that shipped one of this package's applications,
# whose post-implementation review is past due.
POST_IMPLEMENTATION_REVIEW_OVERDUE = "POST_IMPLEMENTATION_REVIEW_OVERDUE"
# An emergency was declared and its approvers have not all answered yet.
EMERGENCY_APPROVAL_PENDING = "EMERGENCY_APPROVAL_PENDING"

BLOCKING_CODES = (
    TAMPERING_DETECTED,
    SIGNER_AWAY,
    FREEZE_WINDOW,
    POST_IMPLEMENTATION_REVIEW_OVERDUE,
    PACKAGE_CANCELLED,
    PACKAGE_EMPTY,
    NO_APPROVED_CHECKLIST,
    CHECKLIST_NOT_APPROVED,
    REVIEW_OVERDUE,
    ITEM_FAILED,
    QUORUM_UNREACHABLE,
    USER_PROBLEM_REPORTED,
    USER_QUORUM_UNREACHABLE,
)
WAITING_CODES = (
    PACKAGE_NOT_SUBMITTED,
    ITEM_PENDING,
    USER_VALIDATION_PENDING,
    EMERGENCY_APPROVAL_PENDING,
)
NORMAL = "normal"
EMERGENCY = "emergency"
# What an emergency postpones to the post-implementation review: waiting on people. A recorded
# failure or a problem report still blocks, as does everything else.
DEFERRABLE_CODES = frozenset(
    {ITEM_PENDING, USER_VALIDATION_PENDING, QUORUM_UNREACHABLE, USER_QUORUM_UNREACHABLE}
)
# Blockers an emergency turns into warnings (a freeze window, when there is one).
EMERGENCY_DOWNGRADED_CODES: frozenset[str] = frozenset({FREEZE_WINDOW})
# Warning codes (never change the status): REVIEW_OVERDUE under the "warn" policy, and
# post-release findings nobody has triaged for longer than the configured age.
OPEN_FINDING = "OPEN_FINDING"
# A learning review of the application, or one of its action items, past its due date.
LEARNING_REVIEW_OVERDUE = "LEARNING_REVIEW_OVERDUE"
ACTION_ITEM_OVERDUE = "ACTION_ITEM_OVERDUE"
# The package's planned release date falls in a freeze window or a blackout.
FREEZE_AHEAD = "FREEZE_AHEAD"
WARNING_CODES = (OPEN_FINDING, LEARNING_REVIEW_OVERDUE, ACTION_ITEM_OVERDUE, FREEZE_AHEAD)
DEFAULT_FINDING_WARN_AFTER = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class OpenFinding:
    """A post-release finding on an application's checklist still waiting for triage."""

    ref: str
    reported_at: datetime


@dataclass(frozen=True, slots=True)
class OpenReview:
    """The post-implementation review of an emergency release (of another package) that
    shipped the application, not complete yet."""

    package: str
    due_at: datetime
    waiting_on: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmergencyState:
    """An emergency declared on the package, the approvals given, and after release its
    post-implementation review."""

    declared_by: str
    declared_at: datetime
    reason: str
    approvals: tuple[tuple[str, datetime], ...] = ()
    review_due_at: datetime | None = None
    review_waiting_on: tuple[str, ...] = ()
    review_completed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "declared_by": self.declared_by,
            "declared_at": self.declared_at.isoformat(),
            "reason": self.reason,
            "approvals": [
                {"approver": who, "approved_at": when.isoformat()} for who, when in self.approvals
            ],
            "review": None
            if self.review_due_at is None
            else {
                "due_at": self.review_due_at.isoformat(),
                "waiting_on": list(self.review_waiting_on),
                "completed_at": self.review_completed_at.isoformat()
                if self.review_completed_at
                else None,
            },
        }


@dataclass(frozen=True, slots=True)
class PinnedApplication:
    """One application of the package as the gate sees it at this revision."""

    application: str
    version_label: str
    checklist: Checklist | None
    checklist_sha256: str | None = None
    # Signers read the change summary as part of what they sign: it is in the digest.
    change_summary: str = ""
    checklist_approved: bool = True
    review_due_at: datetime | None = None
    reviewers: tuple[str, ...] = ()
    changed_in_revision: int = 1
    requested_at: datetime | None = None
    open_findings: tuple[OpenFinding, ...] = ()
    # Open learning reviews and action items of the application, due or not yet.
    learning_due: tuple[learning.Overdue, ...] = ()
    open_reviews: tuple[OpenReview, ...] = ()


@dataclass(frozen=True, slots=True)
class SignoffRecord:
    """A decision as recorded; the gate decides whether it still counts."""

    id: int
    application: str
    kind: str
    signer: str
    decision: str
    revision: int
    signed_at: datetime
    section_id: str | None = None
    item_id: str | None = None
    comment: str = ""
    # The service layer's verdict on the record's MAC: an unverified record never counts.
    verified: bool = True
    # Set when a deputy signed: the away person whose place the record takes.
    on_behalf_of: str | None = None

    @property
    def principal(self) -> str:
        """Whose sign-off this is: the person themselves, or the one a deputy signed for."""
        return self.on_behalf_of or self.signer


@dataclass(frozen=True, slots=True)
class TamperedRecord:
    """A record other than a sign-off (a governance review) whose MAC does not verify."""

    kind: str
    id: int
    signer: str
    application: str


@dataclass(frozen=True, slots=True)
class Release:
    """When and by whom a package was released, and the gate digest it was released at."""

    released_at: datetime
    released_by: str
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "released_at": self.released_at.isoformat(),
            "released_by": self.released_by,
            "digest": self.digest,
        }


@dataclass(frozen=True, slots=True)
class GateInput:
    package: str
    revision: int
    state: str
    assembler: str
    applications: tuple[PinnedApplication, ...]
    signoffs: tuple[SignoffRecord, ...]
    now: datetime
    overdue_policy: str = BLOCK_OVERDUE
    # Where the release goes is part of what every signer signs.
    environment: str = ""
    finding_warn_after: timedelta = DEFAULT_FINDING_WARN_AFTER
    release: Release | None = None
    # Key users' post-release answers: (application, key user, works|problem).
    confirmations: tuple[tuple[str, str, str], ...] = ()
    tampered: tuple[TamperedRecord, ...] = ()
    # Whether the package still holds exactly the sign-offs and applications its record seal
    # names: a row deleted, added or marked stale outside Gatekeeper breaks it for good.
    records_sealed: bool = True
    # How the audit chain fails to continue from the newest head this host saw ("went back
    # from event 9 to event 4"): the database was restored or rewritten; None when it does.
    chain_break: str | None = None
    absences: tuple[absence_rules.Absence, ...] = ()
    # The approved freeze calendar's windows and the pinned checklists' blackouts.
    freezes: tuple[freeze.Window, ...] = ()
    planned_for: date | None = None
    emergency: EmergencyState | None = None


@dataclass(frozen=True, slots=True)
class FreezeRef:
    """The window a FREEZE_WINDOW or FREEZE_AHEAD names, and the occurrence meant."""

    id: str
    title: str
    reason: str
    owner: str
    starts: datetime
    ends: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "reason": self.reason,
            "owner": self.owner,
            "starts": self.starts.isoformat(),
            "ends": self.ends.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Blocker:
    code: str
    message: str
    application: str | None = None
    section: str | None = None
    item: str | None = None
    waiting_on: tuple[str, ...] = ()
    since: datetime | None = None
    freeze: FreezeRef | None = None

    @property
    def blocks(self) -> bool:
        return self.code in BLOCKING_CODES

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "code": self.code,
            "application": self.application,
            "section": self.section,
            "item": self.item,
            "waiting_on": list(self.waiting_on),
            "since": self.since.isoformat() if self.since else None,
            "message": self.message,
        }
        if self.freeze is not None:
            found["freeze"] = self.freeze.to_dict()
        return found


@dataclass(frozen=True, slots=True)
class ApplicationProgress:
    application: str
    version_label: str
    checklist_version: int | None
    changed_in_revision: int
    signed: int
    required: int
    carried_forward: int


@dataclass(frozen=True, slots=True)
class GateResult:
    package: str
    revision: int
    status: str
    signed: int
    required: int
    blockers: tuple[Blocker, ...]
    warnings: tuple[Blocker, ...]
    applications: tuple[ApplicationProgress, ...]
    counted: tuple[int, ...] = field(default=())
    digest: str = ""
    state: str = lifecycle.IN_REVIEW  # the package's lifecycle state
    release: Release | None = None
    confirmation: confirmation_rules.Outcome | None = None
    # Waiting an emergency postponed to the post-implementation review.
    deferred: tuple[Blocker, ...] = ()
    emergency: EmergencyState | None = None

    @property
    def mode(self) -> str:
        return EMERGENCY if self.emergency is not None else NORMAL

    @property
    def outcome(self) -> str | None:
        """confirmed, problems_reported or unconfirmed; None while key users may answer."""
        return self.confirmation.state if self.confirmation else None

    @property
    def waiting_on(self) -> tuple[str, ...]:
        return tuple(sorted({p for b in self.blockers for p in b.waiting_on}))

    @property
    def shown_status(self) -> str:
        """What people are shown: "released" while a released package's gate holds."""
        return RELEASED if self.state == lifecycle.RELEASED and self.status == OPEN else self.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": self.package,
            "revision": self.revision,
            "state": self.state,
            "release": self.release.to_dict() if self.release else None,
            "outcome": self.outcome,
            "confirmation": self.confirmation.to_dict() if self.confirmation else None,
            "digest": self.digest,
            "status": self.status,
            "mode": self.mode,
            "emergency": self.emergency.to_dict() if self.emergency else None,
            "deferred": [d.to_dict() for d in self.deferred],
            "progress": {"signed": self.signed, "required": self.required},
            "waiting_on": list(self.waiting_on),
            "blockers": [b.to_dict() for b in self.blockers],
            "warnings": [w.to_dict() for w in self.warnings],
            "applications": [
                {
                    "application": a.application,
                    "version": a.version_label,
                    "checklist_version": a.checklist_version,
                    "changed_in_revision": a.changed_in_revision,
                    "signed": a.signed,
                    "required": a.required,
                    "carried_forward": a.carried_forward,
                }
                for a in self.applications
            ],
        }


@dataclass
class _Tally:
    signed: int = 0
    required: int = 0
    carried: int = 0
    counted: list[int] = field(default_factory=list)


def _latest_per_signer(records: Iterable[SignoffRecord]) -> dict[str, SignoffRecord]:
    """A person counts once per requirement: the most recent decision in their place (theirs
    or their deputy's) stands."""
    latest: dict[str, SignoffRecord] = {}
    for record in records:
        held = latest.get(record.principal)
        if held is None or (record.signed_at, record.id) > (held.signed_at, held.id):
            latest[record.principal] = record
    return latest


@dataclass(frozen=True, slots=True)
class _StandIns:
    """Who may take an eligible person's place in one requirement while they are away."""

    checklist: Checklist
    gate: GateInput
    barred: frozenset[str]

    def allowed(self, person: str, eligible: tuple[str, ...]) -> tuple[str, ...]:
        return stand_ins(
            self.checklist,
            person=person,
            assembler=self.gate.assembler,
            barred=self.barred,
            eligible=eligible,
        )

    def counts(self, record: SignoffRecord, eligible: tuple[str, ...]) -> bool:
        return record.on_behalf_of is None or record.signer in self.allowed(
            record.on_behalf_of, eligible
        )


def _away_blocker(
    pinned: PinnedApplication, stand_ins: _StandIns, person: str, until: datetime
) -> Blocker:
    checklist = stand_ins.checklist
    named = checklist.deputies_of(person)
    where = f"checklist {pinned.application} v{checklist.version}"
    return Blocker(
        code=SIGNER_AWAY,
        application=pinned.application,
        waiting_on=(person,),
        message=(
            f"{person} is away until {until.date().isoformat()} and {where} names no deputy"
            if not named
            else f"{person} is away until {until.date().isoformat()} and no deputy named in "
            f"{where} can sign in their place now ({', '.join(named)})"
        ),
    )


def _evaluate_requirement(
    *,
    gate: GateInput,
    pinned: PinnedApplication,
    gate_revision: int,
    eligible: tuple[str, ...],
    needed: int,
    listed: int,
    records: list[SignoffRecord],
    tally: _Tally,
    blockers: list[Blocker],
    section: str | None,
    item: Item | None,
    stand_ins: _StandIns,
    reported_away: set[str],
) -> None:
    app = pinned.application
    decided = _latest_per_signer(
        r for r in records if r.principal in eligible and stand_ins.counts(r, eligible)
    )
    # A decision only counts when it is one its kind can make (a key user cannot "pass").
    allowed = DECISIONS[ITEM if item is not None else KEY_USER]
    positive = [r for r in decided.values() if r.decision in POSITIVE and r.decision in allowed]
    negative = [r for r in decided.values() if r.decision in (FAIL, PROBLEM)]
    # A human counts once per requirement, whether signing for themselves or as a deputy.
    signed_by = {r.signer for r in positive}
    tally.required += needed
    tally.signed += min(len(signed_by), needed)
    # Carried forward: still counting although given at an earlier revision of the package.
    carried = {r.signer for r in positive if r.revision < gate_revision}
    tally.carried += min(len(carried), needed)
    tally.counted.extend(r.id for r in decided.values())
    what = f"item {item.id!r}" if item else "user validation"
    for record in sorted(negative, key=lambda r: r.signer):
        is_item = item is not None
        blockers.append(
            Blocker(
                code=ITEM_FAILED if is_item else USER_PROBLEM_REPORTED,
                application=app,
                section=section,
                item=item.id if item else None,
                since=record.signed_at,
                message=(
                    f"{record.signer} failed {what} of {app}: {record.comment}"
                    if is_item
                    else f"{record.signer} reported a problem with {app}: {record.comment}"
                ),
            )
        )
    if len(signed_by) >= needed:
        return
    if len(eligible) < needed:
        blockers.append(
            Blocker(
                code=QUORUM_UNREACHABLE if item else USER_QUORUM_UNREACHABLE,
                application=app,
                section=section,
                item=item.id if item else None,
                message=(
                    f"{what} of {app} needs {needed} sign-off(s) but only {len(eligible)} of its "
                    f"{listed} listed signer(s) may sign (separation of duties)"
                ),
            )
        )
        return
    waiting_on: set[str] = set()
    reachable = len(signed_by)
    stuck: list[tuple[str, datetime]] = []
    for person in sorted(s for s in eligible if s not in decided):
        until = absence_rules.away_until(gate.absences, person, gate.now)
        if until is None:
            waiting_on.add(person)
            reachable += 1
            continue
        deputies = [
            d
            for d in stand_ins.allowed(person, eligible)
            if d not in signed_by and absence_rules.away_until(gate.absences, d, gate.now) is None
        ]
        if deputies:
            waiting_on.update(deputies)
            reachable += 1
        else:
            stuck.append((person, until))
    # An away person without a deputy blocks only when the others cannot make up the quorum.
    if reachable < needed:
        for person, until in stuck:
            if person not in reported_away:
                reported_away.add(person)
                blockers.append(_away_blocker(pinned, stand_ins, person, until))
    waiting = tuple(sorted(waiting_on))
    if (negative or stuck) and not waiting:
        return
    blockers.append(
        Blocker(
            code=ITEM_PENDING if item else USER_VALIDATION_PENDING,
            application=app,
            section=section,
            item=item.id if item else None,
            waiting_on=waiting,
            since=pinned.requested_at,
            message=(
                f"{what} of {app}: {len(signed_by)} of {needed} required sign-offs, "
                f"waiting on {', '.join(waiting)}"
            ),
        )
    )


def _warn_of_findings(gate: GateInput, pinned: PinnedApplication, warnings: list[Blocker]) -> None:
    """A finding left untriaged longer than the configured age is a warning, never a blocker:
    it asks the checklist's reviewers to act, it does not stop this release."""
    for finding in sorted(pinned.open_findings, key=lambda f: (f.reported_at, f.ref)):
        if gate.now < finding.reported_at + gate.finding_warn_after:
            continue
        days = (gate.now - finding.reported_at).days
        warnings.append(
            Blocker(
                code=OPEN_FINDING,
                application=pinned.application,
                waiting_on=pinned.reviewers,
                since=finding.reported_at,
                message=(
                    f"finding {finding.ref} on {pinned.application}'s checklist was reported "
                    f"{finding.reported_at.date().isoformat()} and is still open after {days} "
                    f"day(s); governance reviewers: {', '.join(pinned.reviewers) or 'none'}"
                ),
            )
        )


def _warn_of_learning(gate: GateInput, pinned: PinnedApplication, warnings: list[Blocker]) -> None:
    """An overdue learning review or action item warns every new package of the application:
    the fix of the last failure is late, the release may still go."""
    if gate.state == lifecycle.RELEASED:
        return
    for due in sorted(pinned.learning_due, key=lambda d: (d.due_at, d.ref)):
        if gate.now < due.due_at:
            continue
        review = due.kind == "review"
        what = f"learning review {due.ref}" if review else f"action item {due.title!r} ({due.ref})"
        warnings.append(
            Blocker(
                code=LEARNING_REVIEW_OVERDUE if review else ACTION_ITEM_OVERDUE,
                application=pinned.application,
                waiting_on=(due.owner,),
                since=due.due_at,
                message=(
                    f"{what} of {pinned.application} was due "
                    f"{due.due_at.isoformat(timespec='minutes')}; owner: {due.owner}"
                ),
            )
        )


def _evaluate_application(
    gate: GateInput,
    pinned: PinnedApplication,
    records: list[SignoffRecord],
    blockers: list[Blocker],
    warnings: list[Blocker],
) -> tuple[ApplicationProgress, list[int]]:
    app = pinned.application
    checklist = pinned.checklist
    tally = _Tally()
    _warn_of_findings(gate, pinned, warnings)
    _warn_of_learning(gate, pinned, warnings)
    _block_on_overdue_reviews(gate, pinned, blockers)
    if checklist is None:
        blockers.append(
            Blocker(
                code=NO_APPROVED_CHECKLIST,
                application=app,
                message=f"{app} has no approved checklist version; a governance reviewer must "
                "approve one, then edit the package to pin it",
            )
        )
        return ApplicationProgress(
            app, pinned.version_label, None, pinned.changed_in_revision, 0, 0, 0
        ), []
    if not pinned.checklist_approved:
        blockers.append(
            Blocker(
                code=CHECKLIST_NOT_APPROVED,
                application=app,
                waiting_on=pinned.reviewers,
                message=f"checklist version {checklist.version} of {app} is not approved",
            )
        )
    if pinned.review_due_at is not None and gate.now >= pinned.review_due_at:
        overdue = Blocker(
            code=REVIEW_OVERDUE,
            application=app,
            waiting_on=pinned.reviewers,
            since=pinned.review_due_at,
            message=(
                f"the governance review of {app}'s checklist was due "
                f"{pinned.review_due_at.date().isoformat()}; reviewers: "
                f"{', '.join(pinned.reviewers)}"
            ),
        )
        # Fail closed: only an explicit "warn" policy lets an overdue review through, or a
        # release already made (it was not overdue then; re-deploying it ships nothing new).
        warns = gate.overdue_policy == WARN_OVERDUE or gate.state == lifecycle.RELEASED
        (warnings if warns else blockers).append(overdue)
    # Only sign-offs given since this application last changed still count: a sign-off is
    # carried forward across revisions that left its application untouched.
    current = [r for r in records if pinned.changed_in_revision <= r.revision <= gate.revision]
    by_item: dict[tuple[str | None, str | None], list[SignoffRecord]] = {}
    key_user_records: list[SignoffRecord] = []
    for record in current:
        if record.kind == ITEM:
            by_item.setdefault((record.section_id, record.item_id), []).append(record)
        elif record.kind == KEY_USER:
            key_user_records.append(record)
    engineers = technical_signers(checklist)
    key_users = checklist.user_validation.emails
    eligible_users = tuple(u for u in key_users if u != gate.assembler and u not in engineers)
    item_stand_ins = _StandIns(checklist, gate, barred_deputies(checklist, ITEM))
    user_stand_ins = _StandIns(checklist, gate, barred_deputies(checklist, KEY_USER))
    reported_away: set[str] = set()
    for section, item in checklist.items():
        eligible = tuple(s for s in item.signers if s != gate.assembler)
        _evaluate_requirement(
            gate=gate,
            pinned=pinned,
            gate_revision=gate.revision,
            eligible=eligible,
            needed=item.required,
            listed=len(item.signers),
            records=by_item.get((section.id, item.id), []),
            tally=tally,
            blockers=blockers,
            section=section.id,
            item=item,
            stand_ins=item_stand_ins,
            reported_away=reported_away,
        )
    _evaluate_requirement(
        gate=gate,
        pinned=pinned,
        gate_revision=gate.revision,
        eligible=eligible_users,
        needed=checklist.user_validation.required,
        listed=len(key_users),
        records=key_user_records,
        tally=tally,
        blockers=blockers,
        section=None,
        item=None,
        stand_ins=user_stand_ins,
        reported_away=reported_away,
    )
    progress = ApplicationProgress(
        app,
        pinned.version_label,
        checklist.version,
        pinned.changed_in_revision,
        tally.signed,
        tally.required,
        tally.carried,
    )
    return progress, tally.counted


def evaluate(gate: GateInput) -> GateResult:
    """Decide open, pending or blocked; every missing piece is a blocker naming who and what."""
    blockers: list[Blocker] = []
    warnings: list[Blocker] = []
    if gate.state == lifecycle.CANCELLED:
        blockers.append(Blocker(PACKAGE_CANCELLED, f"package {gate.package} was cancelled"))
    elif gate.state == lifecycle.DRAFT:
        blockers.append(
            Blocker(
                PACKAGE_NOT_SUBMITTED,
                f"package {gate.package} is a draft; submit it to request sign-offs",
                waiting_on=(gate.assembler,),
            )
        )
    if not gate.applications:
        blockers.append(Blocker(PACKAGE_EMPTY, f"package {gate.package} has no applications"))
    records_by_app: dict[str, list[SignoffRecord]] = {}
    # The post-implementation review's sign-offs, given after an emergency release, do not
    # change the gate it was released at.
    cutoff = gate.release.released_at if gate.release and gate.emergency else None
    for record in gate.signoffs:
        if record.verified and (cutoff is None or record.signed_at <= cutoff):
            records_by_app.setdefault(record.application, []).append(record)
    blockers.extend(_tampering(gate))
    blockers.extend(freeze_blockers(gate))
    warnings.extend(freeze_warnings(gate))
    progress: list[ApplicationProgress] = []
    counted: list[int] = []
    # A draft pins nothing yet: judging its applications would report missing checklists
    # that submitting is about to pin.
    evaluated = () if gate.state == lifecycle.DRAFT else gate.applications
    deferred: list[Blocker] = []
    for pinned in sorted(evaluated, key=lambda a: a.application):
        found: list[Blocker] = []
        app_progress, app_counted = _evaluate_application(
            gate, pinned, records_by_app.get(pinned.application, []), found, warnings
        )
        if gate.emergency is not None and pinned.checklist is not None:
            found, postponed = _emergency_split(gate, gate.emergency, pinned.checklist, found)
            deferred.extend(postponed)
        blockers.extend(found)
        progress.append(app_progress)
        counted.extend(app_counted)
    if gate.emergency is not None:
        warnings.extend(b for b in blockers if b.code in EMERGENCY_DOWNGRADED_CODES)
        blockers = [b for b in blockers if b.code not in EMERGENCY_DOWNGRADED_CODES]
    if any(b.blocks for b in blockers):
        status = BLOCKED
    elif blockers:
        status = PENDING
    else:
        status = OPEN
    blockers.sort(key=lambda b: (not b.blocks, b.application or "", b.section or "", b.item or ""))
    result = GateResult(
        package=gate.package,
        revision=gate.revision,
        status=status,
        signed=sum(p.signed for p in progress),
        required=sum(p.required for p in progress),
        blockers=tuple(blockers),
        warnings=tuple(warnings),
        applications=tuple(progress),
        counted=tuple(sorted(counted)),
        state=gate.state,
        release=gate.release,
        confirmation=_confirmation(gate),
        deferred=tuple(deferred),
        emergency=gate.emergency,
    )
    return _with_digest(gate, result)


def _emergency_split(
    gate: GateInput, state: EmergencyState, checklist: Checklist, found: list[Blocker]
) -> tuple[list[Blocker], list[Blocker]]:
    """In an emergency, waiting on anything but the required items is deferred, and the
    emergency approvers' quorum is required instead."""
    section = checklist.emergency or Emergency(approvers=())
    required = set(section.required_items)
    # Someone away with no deputy holds an emergency up only if they sign a required item: the
    # rest of what they would sign is asked in the post-implementation review.
    required_signers = {
        signer
        for s, item in checklist.items()
        if f"{s.id}.{item.id}" in required
        for signer in item.signers
    }
    kept: list[Blocker] = []
    deferred: list[Blocker] = []
    for blocker in found:
        if blocker.code == SIGNER_AWAY:
            postponed = not required_signers.intersection(blocker.waiting_on)
        else:
            postponed = blocker.code in DEFERRABLE_CODES and (
                f"{blocker.section}.{blocker.item}" not in required
            )
        (deferred if postponed else kept).append(blocker)
    app = checklist.application
    # Separation of duties: whoever declared the emergency, or assembled the package, cannot
    # also authorise it.
    eligible = tuple(a for a in section.approvers if a not in (state.declared_by, gate.assembler))
    approved = {who for who, _ in state.approvals if who in eligible}
    if len(approved) >= section.quorum:
        return kept, deferred
    if len(eligible) < section.quorum:
        kept.append(
            Blocker(
                code=QUORUM_UNREACHABLE,
                application=app,
                message=(
                    f"an emergency release of {app} needs {section.quorum} approval(s) but only "
                    f"{len(eligible)} of its {len(section.approvers)} emergency approver(s) may "
                    "approve (the declarer and the assembler cannot)"
                ),
            )
        )
        return kept, deferred
    waiting = tuple(sorted(a for a in eligible if a not in approved))
    kept.append(
        Blocker(
            code=EMERGENCY_APPROVAL_PENDING,
            application=app,
            waiting_on=waiting,
            since=state.declared_at,
            message=(
                f"emergency release of {app}: {len(approved)} of {section.quorum} required "
                f"approvals, waiting on {', '.join(waiting)}"
            ),
        )
    )
    return kept, deferred


def _block_on_overdue_reviews(
    gate: GateInput, pinned: PinnedApplication, blockers: list[Blocker]
) -> None:
    """An emergency release's review past due blocks every new package of its applications:
    the shortcut was taken, the checks it skipped are still owed."""
    if gate.state == lifecycle.RELEASED:
        return
    for review in sorted(pinned.open_reviews, key=lambda r: (r.due_at, r.package)):
        if gate.now < review.due_at:
            continue
        blockers.append(
            Blocker(
                code=POST_IMPLEMENTATION_REVIEW_OVERDUE,
                application=pinned.application,
                waiting_on=review.waiting_on,
                since=review.due_at,
                message=(
                    f"the post-implementation review of emergency release {review.package} "
                    f"(which shipped {pinned.application}) was due "
                    f"{review.due_at.isoformat(timespec='minutes')}; still waiting on "
                    f"{', '.join(review.waiting_on) or 'nobody who may still answer'}"
                ),
            )
        )


def _windows(gate: GateInput) -> list[confirmation_rules.Window]:
    if gate.state != lifecycle.RELEASED or gate.release is None:
        return []
    released_at = gate.release.released_at
    found = (
        confirmation_rules.window_of(p.application, p.checklist, released_at)
        for p in gate.applications
        if p.checklist is not None
    )
    return [w for w in found if w is not None]


def _confirmation(gate: GateInput) -> confirmation_rules.Outcome | None:
    """A released package's outcome, from its key users' answers after go-live."""
    answers = {(app, user): answer for app, user, answer in gate.confirmations}
    return confirmation_rules.outcome(_windows(gate), answers, gate.now)


def _tampering(gate: GateInput) -> list[Blocker]:
    """One blocker per record whose MAC does not verify, naming the record."""
    found = [
        Blocker(
            code=TAMPERING_DETECTED,
            application=r.application,
            section=r.section_id,
            item=r.item_id,
            message=(
                f"sign-off {r.id} ({r.kind}) by {r.signer} on {r.application} does not carry "
                "a valid record MAC: it was written or changed outside Gatekeeper and is not "
                "counted"
            ),
        )
        for r in gate.signoffs
        if not r.verified
    ]
    found.extend(
        Blocker(
            code=TAMPERING_DETECTED,
            application=t.application,
            message=(
                f"{t.kind.replace('_', ' ')} {t.id} by {t.signer} on {t.application} does not "
                "carry a valid record MAC: it was written or changed outside Gatekeeper and is "
                "not counted"
            ),
        )
        for t in gate.tampered
    )
    if not gate.records_sealed:
        found.append(
            Blocker(
                code=TAMPERING_DETECTED,
                message=(
                    f"the record seal of {gate.package} does not match the sign-offs and "
                    "applications it holds: one was deleted, added or changed outside "
                    "Gatekeeper (the audit trail shows what was recorded); the gate stays shut"
                ),
            )
        )
    if gate.chain_break is not None:
        found.append(
            Blocker(
                code=TAMPERING_DETECTED,
                message=(
                    f"the audit chain {gate.chain_break}: the database was restored from an "
                    "older copy or rewritten outside Gatekeeper, so what it holds may be "
                    "undone decisions; the gate stays shut until an operator runs "
                    "`gatekeeper audit accept-restore`"
                ),
            )
        )
    return found


def _windows_applying(gate: GateInput) -> list[freeze.Window]:
    """The windows that hold this package back: none once it is released or cancelled."""
    if gate.state in (lifecycle.RELEASED, lifecycle.CANCELLED):
        return []
    shipped = tuple(a.application for a in gate.applications)
    return [w for w in gate.freezes if w.applies(gate.environment, shipped)]


def _freeze_ref(window: freeze.Window, occurrence: freeze.Occurrence) -> FreezeRef:
    spec = window.spec
    return FreezeRef(
        spec.id, spec.title, spec.reason, window.owner, occurrence.starts, occurrence.ends
    )


def _blackout_application(window: freeze.Window) -> str | None:
    return None if window.owner == freeze.CALENDAR else window.owner


def _freeze_entry(
    code: str, window: freeze.Window, occurrence: freeze.Occurrence, message: str
) -> Blocker:
    return Blocker(
        code=code,
        application=_blackout_application(window),
        since=occurrence.starts,
        freeze=_freeze_ref(window, occurrence),
        message=f"{message}: {window.spec.reason}",
    )


def freeze_blockers(gate: GateInput) -> list[Blocker]:
    """FREEZE_WINDOW: one blocker per applicable window in force now, naming the window, its
    reason and when it ends. Every FREEZE_WINDOW blocker is made here and only here."""
    found: list[Blocker] = []
    for window in _windows_applying(gate):
        occurrence = window.schedule.in_force(gate.now)
        if occurrence is not None:
            until = occurrence.ends.isoformat(timespec="minutes")
            message = f"{window.label} is in force until {until}"
            found.append(_freeze_entry(FREEZE_WINDOW, window, occurrence, message))
    return found


def _planned_occurrence(gate: GateInput, window: freeze.Window) -> freeze.Occurrence | None:
    """The occurrence of `window` on the planned release day (read in the window's time zone),
    while it has not ended."""
    if gate.planned_for is None:
        return None
    starts, ends = freeze.day_bounds(gate.planned_for, window.schedule.zone)
    occurrence = window.schedule.overlapping(starts, ends)
    if occurrence is None or gate.now >= occurrence.ends:
        return None
    return occurrence


def freeze_warnings(gate: GateInput) -> list[Blocker]:
    """FREEZE_AHEAD: the planned release date falls in a window; warned as soon as the package
    is assembled, so the date can move before anyone signs."""
    found: list[Blocker] = []
    for window in _windows_applying(gate):
        occurrence = _planned_occurrence(gate, window)
        if occurrence is None:
            continue
        assert gate.planned_for is not None  # an occurrence was found on it
        message = (
            f"the planned release date {gate.planned_for.isoformat()} falls in {window.label}, "
            f"from {occurrence.starts.isoformat(timespec='minutes')} "
            f"to {occurrence.ends.isoformat(timespec='minutes')}"
        )
        found.append(_freeze_entry(FREEZE_AHEAD, window, occurrence, message))
    return found


def _freeze_moments(gate: GateInput) -> list[datetime]:
    """Each applicable window's next boundary: the end of the occurrence in force, the next
    start, and the end of the occurrence on the planned day."""
    moments: list[datetime] = []
    for window in _windows_applying(gate):
        occurrence = window.schedule.in_force(gate.now)
        if occurrence is not None:
            moments.append(occurrence.ends)
        upcoming = window.schedule.next_start(gate.now)
        if upcoming is not None:
            moments.append(upcoming)
        planned = _planned_occurrence(gate, window)
        if planned is not None:
            moments.append(planned.ends)
    return moments


def stable_until(gate: GateInput) -> datetime | None:
    """The first instant after `gate.now` at which the clock alone could change what
    `evaluate(gate)` returns: a governance review falling due, an open finding becoming old
    enough to warn, a finding warning's day count going up, a learning review or action item
    falling due, someone leaving or coming back (an absence's start or end), another
    package's post-implementation review falling overdue, a released package's confirmation
    window closing, or a freeze window or blackout starting or ending. None when the result does not
    depend on the clock at all. Callers may reuse an evaluation for any `now` in
    [gate.now, stable_until) as long as nothing else in the input changed."""
    moments: list[datetime] = []
    for pinned in gate.applications:
        if pinned.review_due_at is not None and gate.now < pinned.review_due_at:
            moments.append(pinned.review_due_at)
        for finding in pinned.open_findings:
            warns_from = finding.reported_at + gate.finding_warn_after
            if gate.now < warns_from:
                moments.append(warns_from)
            else:
                days = (gate.now - finding.reported_at).days
                moments.append(finding.reported_at + timedelta(days=days + 1))
        if gate.state != lifecycle.RELEASED:
            moments.extend(d.due_at for d in pinned.learning_due if gate.now < d.due_at)
            moments.extend(r.due_at for r in pinned.open_reviews if gate.now < r.due_at)
    moments.extend(w.closes_at for w in _windows(gate) if gate.now < w.closes_at)
    moments.extend(absence_rules.boundaries(gate.absences, gate.now))
    moments.extend(_freeze_moments(gate))
    return min(moments, default=None)


def _with_digest(gate: GateInput, result: GateResult) -> GateResult:
    """A digest of exactly what was evaluated, and of everything a signer is shown as signed:
    any new sign-off, edit of a signed field or review changes it."""
    counted = set(result.counted)
    material = {
        "package": gate.package,
        "revision": gate.revision,
        "state": gate.state,
        "environment": gate.environment,
        "applications": [
            [
                a.application,
                a.version_label,
                a.change_summary,
                a.checklist_sha256,
                a.checklist_approved,
            ]
            for a in sorted(gate.applications, key=lambda a: a.application)
        ],
        "signoffs": sorted(
            [r.id, r.decision, r.revision] for r in gate.signoffs if r.id in counted
        ),
        "status": result.status,
        "blockers": [b.code for b in result.blockers],
    }
    # Only in an emergency: the digest of every normal gate stays what it was.
    if gate.emergency is not None:
        material["emergency"] = {
            "declared_by": gate.emergency.declared_by,
            "reason": gate.emergency.reason,
            "approvals": sorted(who for who, _ in gate.emergency.approvals),
        }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":")).encode()
    return replace(result, digest="sha256:" + hashlib.sha256(encoded).hexdigest())


def review_outstanding(gate: GateInput) -> tuple[Blocker, ...]:
    """What the post-implementation review of an emergency release still waits for: what the
    normal gate would wait for, counting every sign-off given so far, before or after release."""
    normal = replace(gate, state=lifecycle.IN_REVIEW, emergency=None, release=None)
    return tuple(b for b in evaluate(normal).blockers if b.code in DEFERRABLE_CODES)


def review_due(released_at: datetime, checklists: Iterable[Checklist]) -> datetime:
    """When an emergency release's review is due: the shortest `review_within_hours` of its
    applications."""
    hours = min(
        (c.emergency.review_within_hours for c in checklists if c.emergency is not None),
        default=DEFAULT_REVIEW_WITHIN_HOURS,
    )
    return released_at + timedelta(hours=hours)
