"""Use cases for checklist files: lint, sync new versions into the database, record reviews."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gatekeeper.checklist_format.validator import load_document_file, parse_checklist
from gatekeeper.db.models import (
    Application,
    ChecklistVersion,
    Finding,
    GovernanceReview,
    ScenarioProposal,
)
from gatekeeper.domain import governance
from gatekeeper.domain.checklist import (
    Checklist,
    ChecklistInvalid,
    Problem,
    canonical_json,
    content_digest,
)
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import Conflict, NotFound, ValidationFailed
from gatekeeper.domain.freeze import Calendar
from gatekeeper.services import audit, findings, freezes, integrity, proposals

CHECKLIST_SUFFIXES = (".yaml", ".yml")
FREEZES = "freezes"


@dataclass(frozen=True)
class FileResult:
    path: str
    checklist: Checklist | None
    problems: tuple[Problem, ...] = ()
    # The freeze calendar file (`kind: freezes`) is linted and synced beside the checklists.
    calendar: Calendar | None = None


@dataclass(frozen=True)
class SyncOutcome:
    application: str
    version: int
    status: str  # created | unchanged
    path: str
    authors: tuple[str, ...] = ()
    authorship_unknown: str | None = None  # why, when two reviewers must approve it
    kind: str = "checklist"  # or "freezes": the freeze calendar file


@dataclass
class LintReport:
    files: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.files) and all(not f.problems for f in self.files)

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files for p in f.problems]


def checklist_files(paths: Iterable[Path]) -> list[Path]:
    """Expand directories (recursively) to their YAML files; keep explicit files as given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.suffix in CHECKLIST_SUFFIXES and p.is_file())
            )
        else:
            found.append(path)
    return found


def lint_paths(paths: Iterable[Path]) -> LintReport:
    report = LintReport()
    for path in checklist_files(paths):
        try:
            found = load_document_file(path)
        except ChecklistInvalid as exc:
            report.files.append(FileResult(str(path), None, tuple(exc.problems)))
        else:
            if isinstance(found, Calendar):
                report.files.append(FileResult(str(path), None, calendar=found))
            else:
                report.files.append(FileResult(str(path), found))
    return report


def _latest_versions(
    session: Session, slugs: Sequence[str] | None, *, state: str | None = None
) -> dict[str, ChecklistVersion]:
    """The newest version of each application in `slugs` (all when None; in `state`, when
    given)."""
    newest_query = sa.select(
        ChecklistVersion.application_id, sa.func.max(ChecklistVersion.version).label("v")
    ).group_by(ChecklistVersion.application_id)
    if state is not None:
        newest_query = newest_query.where(ChecklistVersion.state == state)
    newest = newest_query.subquery()
    query = (
        sa.select(Application.slug, ChecklistVersion)
        .join(ChecklistVersion, ChecklistVersion.application_id == Application.id)
        .join(
            newest,
            sa.and_(
                newest.c.application_id == ChecklistVersion.application_id,
                newest.c.v == ChecklistVersion.version,
            ),
        )
    )
    if slugs is not None:
        query = query.where(Application.slug.in_(slugs))
    return dict(session.execute(query).all())


@dataclass(frozen=True)
class Baseline:
    """The last approved version of a checklist: where the change a new version makes starts."""

    version: int
    sha256: str
    source_yaml: str

    def matches(self, text: str) -> bool:
        """Whether `text` is this version: the same file, or the same content reformatted."""
        if text == self.source_yaml:
            return True
        try:
            checklist = parse_checklist(text.encode("utf-8"), f"version {self.version}")
        except ChecklistInvalid:
            return False
        return content_digest(checklist.to_canonical()) == self.sha256


@dataclass(frozen=True)
class Authorship:
    """Who wrote a checklist file's change since its baseline, as its history tells."""

    authors: frozenset[str] = frozenset()
    newest_author: str | None = None
    # Why what is synced is not all committed (not in git, uncommitted edits): an author
    # given to sync answers for that part.
    uncommitted: str = ""
    # Why part of the history could not be read (a shallow clone, ...): nobody answers for it.
    incomplete: str = ""


HistoryReader = Callable[[Path, Baseline | None], Authorship]


def no_history(_path: Path, _baseline: Baseline | None) -> Authorship:
    """For syncs that read no version control: only an author given to sync is known."""
    return Authorship(uncommitted="no version history was read")


def sync_checklists(
    session: Session,
    directory: Path,
    *,
    clock: Clock,
    declared_authors: Sequence[str],
    history: HistoryReader = no_history,
) -> list[SyncOutcome]:
    """Store every new checklist version found in `directory`; all or nothing.

    Every author a version has is recorded: `declared_authors` (who runs the sync names
    them) and everyone `history` finds since the application's last approved version.
    """
    report = lint_paths([directory])
    if not report.files:
        raise ValidationFailed(f"no checklist files (*.yaml, *.yml) found in {directory}")
    if not report.ok:
        raise ChecklistInvalid(report.problems)
    by_application: dict[str, FileResult] = {}
    errors: list[str] = []
    calendars = [r for r in report.files if r.calendar is not None]
    if len(calendars) > 1:
        errors.append(
            f"{calendars[1].path}: the freeze calendar is also defined in {calendars[0].path}; "
            "keep one freeze calendar"
        )
    for result in report.files:
        if result.calendar is not None:
            continue
        assert result.checklist is not None
        slug = result.checklist.application
        if slug in by_application:
            errors.append(
                f"{result.path}: application {slug!r} is also defined in "
                f"{by_application[slug].path}; keep one file per application"
            )
        by_application[slug] = result
    latest = _latest_versions(session, list(by_application))
    outcomes: list[SyncOutcome] = []
    to_create: list[tuple[FileResult, _Authors]] = []
    declared = sorted({a.strip().lower() for a in declared_authors if a.strip()})
    approved = _latest_versions(session, list(by_application), state=governance.APPROVED)
    for slug, result in by_application.items():
        checklist = result.checklist
        assert checklist is not None
        digest = content_digest(checklist.to_canonical())
        stored = latest.get(slug)
        if stored is None or checklist.version > stored.version:
            base = approved.get(slug)
            found = history(
                Path(result.path),
                Baseline(base.version, base.sha256, base.source_yaml) if base else None,
            )
            authors = _Authors.of(found, declared)
            needed = governance.approvals_needed(authors.unknown is None)
            if needed > len(checklist.governance.reviewers):
                errors.append(
                    f"{result.path}: who wrote {slug} version {checklist.version} is unknown "
                    f"({authors.unknown}), so two reviewers must approve it, but its "
                    "governance.reviewers names only one reviewer; name its author with "
                    "--author EMAIL, or add a reviewer"
                )
            to_create.append((result, authors))
            outcomes.append(
                SyncOutcome(
                    slug,
                    checklist.version,
                    "created",
                    result.path,
                    authors.everyone,
                    authors.unknown,
                )
            )
        elif checklist.version < stored.version:
            errors.append(
                f"{result.path}: version {checklist.version} of {slug} is lower than the stored "
                f"version {stored.version}; versions only go up"
            )
        elif digest != stored.sha256:
            errors.append(
                f"{result.path}: {slug} version {checklist.version} is already stored with "
                f"different content; bump `version` to {checklist.version + 1}"
            )
        else:
            outcomes.append(SyncOutcome(slug, checklist.version, "unchanged", result.path))
    calendar_plan = (
        freezes.plan_sync(session, calendars[0].calendar, calendars[0].path)
        if calendars and calendars[0].calendar is not None
        else None
    )
    if calendar_plan is not None and calendar_plan.error is not None:
        errors.append(calendar_plan.error)
    if errors:
        raise Conflict("checklists not synced: " + "; ".join(errors), details=errors)
    now = clock.now()
    for result, authors in to_create:
        assert result.checklist is not None
        _store_version(session, result, latest.get(result.checklist.application), now, authors)
    outcomes.sort(key=lambda o: o.application)
    if calendar_plan is not None:
        if calendar_plan.status == "created":
            assert calendars[0].calendar is not None
            freezes.store_version(
                session,
                calendars[0].calendar,
                calendar_plan.path,
                author=declared[0] if declared else None,
                clock=clock,
            )
        outcomes.append(
            SyncOutcome(
                freezes.SUBJECT,
                calendar_plan.version,
                calendar_plan.status,
                calendar_plan.path,
                tuple(declared),
                kind=FREEZES,
            )
        )
    session.flush()
    return outcomes


@dataclass(frozen=True)
class _Authors:
    """What a new version records about who wrote it."""

    named: str | None  # the author to name: the first one given to sync, else the newest
    everyone: tuple[str, ...]
    unknown: str | None  # why part of the change has no known author; None if all are known

    @classmethod
    def of(cls, found: Authorship, declared: Sequence[str]) -> _Authors:
        if found.incomplete:
            unknown: str | None = found.incomplete
        elif found.uncommitted and not declared:
            unknown = f"{found.uncommitted}, and no author was given"
        else:
            unknown = None
        return cls(
            declared[0] if declared else found.newest_author,
            tuple(sorted(found.authors | set(declared))),
            unknown,
        )


def _store_version(
    session: Session,
    result: FileResult,
    previous: ChecklistVersion | None,
    now: datetime,
    authors: _Authors,
) -> None:
    checklist = result.checklist
    assert checklist is not None
    if previous is None:
        application = Application(slug=checklist.application, title=checklist.title, created_at=now)
        session.add(application)
    else:
        application = previous.application
        application.title = checklist.title
        # A pending version nobody reviewed yet is replaced by the newer one, not left dangling.
        session.execute(
            sa.update(ChecklistVersion)
            .where(
                ChecklistVersion.application_id == application.id,
                ChecklistVersion.state == governance.PENDING_REVIEW,
            )
            .values(
                state=governance.next_version_state(
                    governance.PENDING_REVIEW, governance.SUPERSEDE
                ),
                decided_at=now,
            )
        )
    doc = checklist.to_canonical()
    path = Path(result.path)
    stored = ChecklistVersion(
        application=application,
        version=checklist.version,
        sha256=content_digest(doc),
        content=canonical_json(doc),
        source_yaml=path.read_text(encoding="utf-8"),
        source_path=result.path,
        author=authors.named,
        authors=list(authors.everyone),
        authorship_unknown=authors.unknown,
        state=governance.PENDING_REVIEW,
        synced_at=now,
    )
    session.add(stored)
    audit.record(
        session,
        action="checklist.synced",
        actor=authors.named or audit.SYSTEM,
        subject=f"{checklist.application} v{checklist.version}",
        now=now,
        details={
            "sha256": stored.sha256,
            "path": result.path,
            "state": stored.state,
            "authors": stored.authors,
            "authorship_unknown": stored.authorship_unknown,
        },
    )


def latest_approved_checklists(session: Session) -> list[Checklist]:
    """Every application's latest approved checklist, in one query."""
    found = _latest_versions(session, None, state=governance.APPROVED)
    return [checklist_of(found[slug]) for slug in sorted(found)]


def checklist_of(version: ChecklistVersion) -> Checklist:
    return _parse_checklist(version.content)


@functools.lru_cache(maxsize=512)
def _parse_checklist(content: str) -> Checklist:
    # Versions are immutable, so a parsed checklist can be reused across requests.
    return Checklist.from_canonical(json.loads(content))


def get_version(session: Session, application: str, version: int) -> ChecklistVersion:
    found = session.scalar(
        sa.select(ChecklistVersion)
        .join(Application)
        .where(Application.slug == application, ChecklistVersion.version == version)
    )
    if found is None:
        raise NotFound(f"no checklist version {version} of {application!r} has been synced")
    return found


def review_version(
    session: Session,
    *,
    application: str,
    version: int,
    action: str,
    reviewer: str,
    consulted: str = "",
    notes: str = "",
    addresses: Sequence[str] = (),
    clock: Clock,
) -> GovernanceReview:
    """Record a governance review; approving the version already in use reaffirms it.

    A version whose authorship is partly unknown needs two reviewers' approvals: the first
    is recorded as a partial approval and the version stays pending review. Approving a new
    version addresses the unresolved findings of its application that it references:
    `addresses:` in its YAML plus any `addresses` chosen by the reviewer.
    """
    stored = get_version(session, application, version)
    if action == governance.APPROVE and stored.state == governance.APPROVED:
        action = governance.REAFFIRM
    if action == governance.REQUEST_CHANGES and not notes.strip():
        raise ValidationFailed("say what needs to change (notes) when requesting changes")
    checklist = checklist_of(stored)
    reviewer = reviewer.strip().lower()
    governance.check_review(
        checklist,
        reviewer=reviewer,
        authors=stored.authors,
        action=action,
        consulted=consulted,
    )
    outcome = governance.REVIEW_OUTCOME[action]
    needed = governance.approvals_needed(stored.authorship_unknown is None)
    if action == governance.APPROVE and stored.state == governance.PENDING_REVIEW and needed > 1:
        _lock_pending(session, stored)
        outcome = governance.approval_outcome(
            needed=needed,
            earlier_approvers=partial_approvers(session, stored),
            reviewer=reviewer,
        )
    now = clock.now()
    if outcome != governance.PARTIALLY_APPROVED:
        _decide(session, stored, action, now)
    review = GovernanceReview(
        checklist_version=stored,
        reviewer=reviewer,
        outcome=outcome,
        consulted=consulted.strip(),
        notes=notes.strip(),
        reviewed_at=now,
    )
    session.add(review)
    session.flush()
    integrity.seal_review(session, review, stored)
    addressed: list[Finding] = []
    adopted: Sequence[ScenarioProposal] = ()
    if outcome == governance.REVIEW_OUTCOME[governance.APPROVE]:
        addressed = findings.address_findings(
            session,
            stored,
            [*checklist.addresses, *addresses],
            actor=review.reviewer,
            now=now,
        )
        adopted = proposals.adopt_proposals(
            session,
            stored,
            checklist,
            [*checklist.addresses, *addresses],
            actor=review.reviewer,
            now=now,
        )
    details: dict[str, Any] = {
        "sha256": stored.sha256,
        "state": stored.state,
        "consulted": review.consulted,
        "notes": review.notes,
    }
    if addressed:
        details["addressed_findings"] = [f.ref for f in addressed]
    if adopted:
        details["adopted_proposals"] = [p.ref for p in adopted]
    audit.record(
        session,
        action=f"checklist.{review.outcome}",
        actor=review.reviewer,
        subject=f"{application} v{version}",
        now=now,
        details=details,
    )
    return review


def partial_approvers(session: Session, version: ChecklistVersion) -> list[str]:
    """Who gave `version` the first of the two approvals it needs, while it is pending."""
    return list(
        session.scalars(
            sa.select(GovernanceReview.reviewer).where(
                GovernanceReview.checklist_version_id == version.id,
                GovernanceReview.outcome == governance.PARTIALLY_APPROVED,
            )
        )
    )


def _reviewed_meanwhile(stored: ChecklistVersion) -> Conflict:
    return Conflict(
        f"version {stored.version} of {stored.application.slug} was reviewed by someone else "
        "just now; reload"
    )


def _lock_pending(session: Session, stored: ChecklistVersion) -> None:
    """Lock the pending version while its approvals are counted: two first approvals arriving
    together must see each other (PostgreSQL; SQLite serialises write transactions)."""
    session.refresh(stored, with_for_update=True)
    if stored.state != governance.PENDING_REVIEW:
        raise _reviewed_meanwhile(stored)


def _decide(session: Session, stored: ChecklistVersion, action: str, now: datetime) -> None:
    """Move the version's state with a conditional UPDATE: of two reviewers deciding at once,
    exactly one wins."""
    before = stored.state
    after = governance.next_version_state(before, action)
    decided: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(ChecklistVersion)
        .where(ChecklistVersion.id == stored.id, ChecklistVersion.state == before)
        .values(state=after, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if decided.rowcount != 1:
        raise _reviewed_meanwhile(stored)
    stored.state, stored.decided_at = after, now


@dataclass(frozen=True)
class CatalogueEntry:
    application: Application
    versions: list[ChecklistVersion]

    @property
    def approved(self) -> ChecklistVersion | None:
        approved = [v for v in self.versions if v.state == governance.APPROVED]
        return approved[-1] if approved else None


def catalogue(session: Session) -> list[CatalogueEntry]:
    applications = session.scalars(sa.select(Application).order_by(Application.slug)).all()
    versions = session.scalars(
        sa.select(ChecklistVersion).order_by(
            ChecklistVersion.application_id, ChecklistVersion.version
        )
    ).all()
    grouped: dict[int, list[ChecklistVersion]] = {}
    for v in versions:
        grouped.setdefault(v.application_id, []).append(v)
    return [CatalogueEntry(a, grouped.get(a.id, [])) for a in applications]


def catalogue_entry(session: Session, slug: str) -> CatalogueEntry | None:
    application = session.scalar(sa.select(Application).where(Application.slug == slug))
    if application is None:
        return None
    versions = session.scalars(
        sa.select(ChecklistVersion)
        .where(ChecklistVersion.application_id == application.id)
        .order_by(ChecklistVersion.version)
    ).all()
    return CatalogueEntry(application, list(versions))
