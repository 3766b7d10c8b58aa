"""Read models for the staff UI: the dashboard and the package board, in constant queries."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application, Package, PackageApplication, PackageRevision, Signoff
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain import plan as plan_rules
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.errors import NotFound
from gatekeeper.services import audit, gates, plans
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.packages import ApplicationSpec

STATE_ORDER = (lifecycle.IN_REVIEW, lifecycle.DRAFT, lifecycle.RELEASED, lifecycle.CANCELLED)
RECENT_FINAL = 25  # released and cancelled packages shown on the dashboard


@dataclass(frozen=True)
class PackageSummary:
    id: int
    key: str
    title: str
    environment: str
    planned_for: date | None
    assembled_by: str
    state: str
    revision: int
    created_at: datetime
    submitted_at: datetime | None
    released_at: datetime | None
    released_by: str | None
    release_digest: str | None
    release_notes: str
    cancelled_at: datetime | None

    @classmethod
    def of(cls, p: Package) -> PackageSummary:
        return cls(
            p.id,
            p.key,
            p.title,
            p.environment,
            p.planned_for,
            p.assembled_by,
            p.state,
            p.revision,
            p.created_at,
            p.submitted_at,
            p.released_at,
            p.released_by,
            p.release_digest,
            p.release_notes,
            p.cancelled_at,
        )


def display_status(state: str, gate: gate_rules.GateResult) -> str:
    """What the UI badge says: the gate status, or the final state once there is one."""
    if state in lifecycle.FINAL_STATES:
        return state
    if state == lifecycle.DRAFT:
        return lifecycle.DRAFT
    return gate.status


def overdue_items(
    package: PackageSummary, gate: gate_rules.GateResult, *, now: datetime, after: timedelta
) -> tuple[str, ...]:
    """Late things worth a release manager's attention: people, reviews, the planned date."""
    if package.state in lifecycle.FINAL_STATES:
        return ()
    found: list[str] = []
    if package.planned_for is not None and package.planned_for < now.date():
        found.append(f"planned for {package.planned_for.isoformat()} and not released yet")
    late: dict[str, tuple[datetime, int]] = {}
    for blocker in (*gate.blockers, *gate.warnings):
        if blocker.code == gate_rules.REVIEW_OVERDUE:
            found.append(blocker.message)
        elif (
            blocker.code in (gate_rules.ITEM_PENDING, gate_rules.USER_VALIDATION_PENDING)
            and blocker.since is not None
            and now - blocker.since >= after
        ):
            for person in blocker.waiting_on:
                since, count = late.get(person, (blocker.since, 0))
                late[person] = (min(since, blocker.since), count + 1)
    for person, (since, count) in sorted(late.items()):
        found.append(
            f"{person}: {count} request(s) unanswered since {since.strftime('%Y-%m-%d %H:%M')} UTC"
        )
    return tuple(found)


@dataclass(frozen=True)
class DashboardRow:
    package: PackageSummary
    status: str
    gate: gate_rules.GateResult
    overdue: tuple[str, ...]


@dataclass(frozen=True)
class DashboardGroup:
    state: str
    rows: tuple[DashboardRow, ...]


def dashboard(
    session: Session,
    *,
    assembled_by: str | None,
    now: datetime,
    overdue_policy: str,
    overdue_after: timedelta,
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
) -> list[DashboardGroup]:
    """Packages by state (only `assembled_by`'s when given), each with its gate: seven queries."""
    scope = [] if assembled_by is None else [Package.assembled_by == assembled_by]
    active = session.scalars(
        sa.select(Package.id).where(
            Package.state.in_((lifecycle.DRAFT, lifecycle.IN_REVIEW)), *scope
        )
    ).all()
    final = session.scalars(
        sa.select(Package.id)
        .where(Package.state.in_(lifecycle.FINAL_STATES), *scope)
        .order_by(sa.func.coalesce(Package.released_at, Package.cancelled_at).desc(), Package.id)
        .limit(RECENT_FINAL)
    ).all()
    material = gates.load_material(session, [*active, *final])
    rows: dict[str, list[DashboardRow]] = {state: [] for state in STATE_ORDER}
    for package_id, package in material.packages.items():
        summary = PackageSummary.of(package)
        gate = gate_rules.evaluate(
            gates.gate_input_from(
                material,
                package_id,
                now=now,
                overdue_policy=overdue_policy,
                finding_warn_after=finding_warn_after,
            )
        )
        rows[package.state].append(
            DashboardRow(
                summary,
                display_status(package.state, gate),
                gate,
                overdue_items(summary, gate, now=now, after=overdue_after),
            )
        )
    rows[lifecycle.IN_REVIEW].sort(key=lambda r: (r.package.planned_for or date.max, r.package.key))
    rows[lifecycle.DRAFT].sort(key=lambda r: r.package.created_at, reverse=True)
    for state in lifecycle.FINAL_STATES:
        rows[state].sort(
            key=lambda r: r.package.released_at or r.package.cancelled_at or r.package.created_at,
            reverse=True,
        )
    return [DashboardGroup(state, tuple(rows[state])) for state in STATE_ORDER]


# --- the package board ---------------------------------------------------------------------


@dataclass(frozen=True)
class SignoffEntry:
    signer: str
    decision: str
    signed_at: datetime
    evidence: str
    comment: str
    revision: int
    carried: bool  # given at an earlier revision and still counting
    scenarios_confirmed: tuple[int, ...]
    on_behalf_of: str | None = None  # a deputy's sign-off: whose place it took

    @property
    def evidence_is_link(self) -> bool:
        return self.evidence.startswith(("https://", "http://"))


@dataclass(frozen=True)
class ItemRow:
    item_id: str
    text: str
    evidence_kind: str
    signers: tuple[str, ...]
    needed: int
    state: str  # signed | pending | failed | unreachable
    signoffs: tuple[SignoffEntry, ...]
    waiting_on: tuple[str, ...]


@dataclass(frozen=True)
class SectionBlock:
    id: str
    title: str
    items: tuple[ItemRow, ...]


@dataclass(frozen=True)
class KeyUserRow:
    email: str
    name: str
    role: str
    signoff: SignoffEntry | None
    waiting: bool
    excluded: bool  # also signs technical items, or assembled the package


@dataclass(frozen=True)
class ApplicationBoard:
    slug: str
    title: str
    version_label: str
    change_summary: str
    checklist_version: int | None
    changed_in_revision: int
    progress: gate_rules.ApplicationProgress | None
    sections: tuple[SectionBlock, ...]
    key_users: tuple[KeyUserRow, ...]
    scenarios: tuple[str, ...]
    validation_state: str
    validation_needed: int


@dataclass(frozen=True)
class RevisionEntry:
    revision: int
    actor: str
    created_at: datetime
    lines: tuple[str, ...]
    carried_forward: tuple[tuple[str, int], ...]  # (application, sign-offs carried)
    signed: bool = True  # False: an edit of the title or planned date, no new revision


@dataclass(frozen=True)
class Board:
    package: PackageSummary
    status: str
    gate: gate_rules.GateResult
    applications: tuple[ApplicationBoard, ...]
    revisions: tuple[RevisionEntry, ...]
    plan: plan_rules.Plan | None
    overdue: tuple[str, ...]
    timeline: audit.Timeline


# The package page shows the newest events; the timeline page and the evidence pack show all.
TIMELINE_ON_BOARD = 15


ITEM_STATES = {
    gate_rules.ITEM_FAILED: "failed",
    gate_rules.QUORUM_UNREACHABLE: "unreachable",
    gate_rules.ITEM_PENDING: "pending",
}
VALIDATION_STATES = {
    gate_rules.USER_PROBLEM_REPORTED: "problem",
    gate_rules.USER_QUORUM_UNREACHABLE: "unreachable",
    gate_rules.USER_VALIDATION_PENDING: "pending",
}


def _state(codes: Iterable[str], states: dict[str, str], default: str) -> str:
    present = set(codes)
    return next((name for code, name in states.items() if code in present), default)


def _entry(signoff: Signoff, revision: int) -> SignoffEntry:
    return SignoffEntry(
        signer=signoff.signer,
        decision=signoff.decision,
        signed_at=signoff.signed_at,
        evidence=signoff.evidence,
        comment=signoff.comment,
        revision=signoff.revision,
        carried=signoff.revision < revision,
        scenarios_confirmed=tuple(int(i) for i in signoff.scenarios_confirmed.split(",") if i),
        on_behalf_of=signoff.on_behalf_of,
    )


def _latest_by_signer(signoffs: Iterable[Signoff]) -> dict[str, Signoff]:
    """The decision standing in each person's place: theirs, or their deputy's."""
    latest: dict[str, Signoff] = {}
    for s in signoffs:
        place = s.on_behalf_of or s.signer
        held = latest.get(place)
        if held is None or (s.signed_at, s.id) > (held.signed_at, held.id):
            latest[place] = s
    return latest


def _application_board(
    row: gates.PinnedRow,
    package: Package,
    signoffs: Sequence[Signoff],
    blockers: Sequence[gate_rules.Blocker],
    progress: gate_rules.ApplicationProgress | None,
) -> ApplicationBoard:
    target = row.target
    checklist = checklist_of(row.version) if row.version is not None else None
    # Only sign-offs given since the application last changed count (as in the gate).
    current = [
        s
        for s in signoffs
        if s.stale_since_revision is None
        and target.changed_in_revision <= s.revision <= package.revision
    ]
    codes: dict[tuple[str | None, str | None], list[str]] = {}
    waiting: dict[tuple[str | None, str | None], tuple[str, ...]] = {}
    for blocker in blockers:
        codes.setdefault((blocker.section, blocker.item), []).append(blocker.code)
        if blocker.waiting_on:
            waiting[(blocker.section, blocker.item)] = blocker.waiting_on
    sections: list[SectionBlock] = []
    key_users: list[KeyUserRow] = []
    scenarios: tuple[str, ...] = ()
    validation_needed = 0
    if checklist is not None:
        for section in checklist.sections:
            items = []
            for item in section.items:
                where = (section.id, item.id)
                decided = _latest_by_signer(
                    s
                    for s in current
                    if s.kind == signoff_rules.ITEM and (s.section_id, s.item_id) == where
                )
                items.append(
                    ItemRow(
                        item_id=item.id,
                        text=item.text,
                        evidence_kind=item.evidence,
                        signers=item.signers,
                        needed=item.required,
                        state=_state(codes.get(where, ()), ITEM_STATES, "signed"),
                        signoffs=tuple(
                            _entry(s, package.revision)
                            for s in sorted(decided.values(), key=lambda s: s.signer)
                        ),
                        waiting_on=waiting.get(where, ()),
                    )
                )
            sections.append(SectionBlock(section.id, section.title, tuple(items)))
        validated = _latest_by_signer(s for s in current if s.kind == signoff_rules.KEY_USER)
        engineers = signoff_rules.technical_signers(checklist)
        pending_users = waiting.get((None, None), ())
        for key_user in checklist.user_validation.key_users:
            decided_by = validated.get(key_user.email)
            key_users.append(
                KeyUserRow(
                    email=key_user.email,
                    name=key_user.name,
                    role=key_user.role,
                    signoff=_entry(decided_by, package.revision) if decided_by else None,
                    waiting=key_user.email in pending_users,
                    excluded=key_user.email in engineers or key_user.email == package.assembled_by,
                )
            )
        scenarios = checklist.user_validation.scenarios
        validation_needed = checklist.user_validation.required
    return ApplicationBoard(
        slug=row.slug,
        title=row.title,
        version_label=target.version_label,
        change_summary=target.change_summary,
        checklist_version=checklist.version if checklist else None,
        changed_in_revision=target.changed_in_revision,
        progress=progress,
        sections=tuple(sections),
        key_users=tuple(key_users),
        scenarios=scenarios,
        validation_state=_state(codes.get((None, None), ()), VALIDATION_STATES, "confirmed"),
        validation_needed=validation_needed,
    )


DETAIL_NAMES = {"title": "title", "planned_for": "planned date"}


def _pair(value: object) -> tuple[object, object] | None:
    return (value[0], value[1]) if isinstance(value, list) and len(value) == 2 else None


def change_lines(changes: dict[str, object]) -> list[str]:
    """A revision's recorded changes in words (the package page and the evidence pack)."""
    lines: list[str] = []
    submitted = changes.get("submitted")
    if isinstance(submitted, list):
        lines.append("Submitted for sign-off with " + ", ".join(str(s) for s in submitted))
    moved = _pair(changes.get("environment"))
    if moved is not None:
        lines.append(
            f"environment {moved[0]} → {moved[1]}: the whole release changed, every sign-off "
            "was asked again"
        )
    changed = changes.get("changed")
    if isinstance(changed, dict):
        for slug, what in sorted(changed.items()):
            if not isinstance(what, dict):
                continue
            version = _pair(what.get("version"))
            if "added" in what:
                lines.append(f"{slug} {what['added']} added")
            elif "removed" in what:
                lines.append(f"{slug} {what['removed']} removed")
            elif "change_summary" in what:
                lines.append(f"{slug}: change summary edited")
            elif version is not None:
                lines.append(
                    f"{slug}: change summary edited (version {version[1]})"
                    if version[0] == version[1]
                    else f"{slug}: version {version[0]} → {version[1]}"
                )
    details = changes.get("details")
    if isinstance(details, dict):
        for field, name in DETAIL_NAMES.items():
            edit = _pair(details.get(field))
            if edit is not None:
                lines.append(
                    f"{name} {edit[0] or '(none)'} → {edit[1] or '(none)'} (not part of what "
                    "is signed)"
                )
    return lines


@dataclass(frozen=True)
class CountedSignoff:
    """What deciding whether a sign-off carried forward past a revision needs to know."""

    application: str | None
    revision: int
    stale_since_revision: int | None


def revision_entry(
    revision: int,
    actor: str,
    created_at: datetime,
    changes: object,
    signoffs: Iterable[CountedSignoff],
    *,
    signed: bool = True,
) -> RevisionEntry:
    """One revision in words: what changed, and how many sign-offs each untouched application
    carried forward. `changes` is the revision's stored JSON, parsed; `signed` is false for an
    edit of the title or planned date (no new revision)."""
    if not isinstance(changes, dict):
        changes = {}
    carried_apps = changes.get("carried_forward", [])
    carried: list[tuple[str, int]] = []
    counted = list(signoffs)
    if isinstance(carried_apps, list):
        for slug in carried_apps:
            count = sum(
                1
                for s in counted
                if s.application == slug
                and s.revision < revision
                and (s.stale_since_revision is None or s.stale_since_revision > revision)
            )
            carried.append((str(slug), count))
    return RevisionEntry(
        revision, actor, created_at, tuple(change_lines(changes)), tuple(carried), signed
    )


def _revisions(
    revisions: Sequence[PackageRevision],
    signoffs: Sequence[Signoff],
    slug_by_target: dict[int, str],
) -> tuple[RevisionEntry, ...]:
    counted = [
        CountedSignoff(
            slug_by_target.get(s.package_application_id), s.revision, s.stale_since_revision
        )
        for s in signoffs
    ]
    entries: list[RevisionEntry] = []
    for revision in revisions:
        try:
            changes = json.loads(revision.changes)
        except ValueError:
            changes = {}
        entries.append(
            revision_entry(
                revision.revision,
                revision.actor,
                revision.created_at,
                changes,
                counted,
                signed=revision.signed,
            )
        )
    return tuple(entries)


def find_package_id(session: Session, key: str, *, assembled_by: str | None) -> int:
    """The package's id if it is within reach (any, or only `assembled_by`'s); else NotFound."""
    query = sa.select(Package.id).where(Package.key == key)
    if assembled_by is not None:
        query = query.where(Package.assembled_by == assembled_by)
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"no package {key!r}")
    return found


def package_board(
    session: Session,
    key: str,
    *,
    assembled_by: str | None,
    now: datetime,
    overdue_policy: str,
    overdue_after: timedelta,
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
) -> Board:
    """Everything the package page shows, in a fixed number of queries whatever its size."""
    package_id = find_package_id(session, key, assembled_by=assembled_by)
    material = gates.load_material(session, [package_id], include_stale=True)
    package = material.packages[package_id]
    summary = PackageSummary.of(package)
    gate = gate_rules.evaluate(
        gates.gate_input_from(
            material,
            package_id,
            now=now,
            overdue_policy=overdue_policy,
            finding_warn_after=finding_warn_after,
        )
    )
    signoffs = material.signoffs.get(package_id, [])
    rows = material.applications.get(package_id, [])
    progress = {p.application: p for p in gate.applications}
    blockers_by_app: dict[str | None, list[gate_rules.Blocker]] = {}
    for blocker in gate.blockers:
        blockers_by_app.setdefault(blocker.application, []).append(blocker)
    applications = tuple(
        _application_board(
            row,
            package,
            [s for s in signoffs if s.package_application_id == row.target.id],
            blockers_by_app.get(row.slug, []),
            progress.get(row.slug),
        )
        for row in rows
    )
    revisions = session.scalars(
        sa.select(PackageRevision)
        .where(PackageRevision.package_id == package_id)
        .order_by(PackageRevision.revision, PackageRevision.id)
    ).all()
    slug_by_target: dict[int, str] = dict(
        session.execute(
            sa.select(PackageApplication.id, Application.slug)
            .join(Application, Application.id == PackageApplication.application_id)
            .where(PackageApplication.package_id == package_id)
        ).all()
    )
    plan = None
    if package.state == lifecycle.DRAFT:
        plan = plans.plan_for(
            session,
            [ApplicationSpec(r.slug, r.target.version_label) for r in rows],
            assembler=package.assembled_by,
        )
    return Board(
        package=summary,
        status=display_status(package.state, gate),
        gate=gate,
        applications=applications,
        revisions=_revisions(revisions, signoffs, slug_by_target),
        plan=plan,
        overdue=overdue_items(summary, gate, now=now, after=overdue_after),
        timeline=audit.package_timeline(session, key, limit=TIMELINE_ON_BOARD),
    )


def package_timeline(session: Session, key: str, *, assembled_by: str | None) -> audit.Timeline:
    """The package's whole audit timeline, newest first, if the package is within reach."""
    find_package_id(session, key, assembled_by=assembled_by)
    return audit.package_timeline(session, key, limit=None)
