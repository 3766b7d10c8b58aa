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

from gatekeeper.checklist_format.validator import load_checklist_file
from gatekeeper.db.models import Application, ChecklistVersion, Finding, GovernanceReview
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
from gatekeeper.services import audit, findings

CHECKLIST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class FileResult:
    path: str
    checklist: Checklist | None
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class SyncOutcome:
    application: str
    version: int
    status: str  # created | unchanged
    path: str


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
            report.files.append(FileResult(str(path), load_checklist_file(path)))
        except ChecklistInvalid as exc:
            report.files.append(FileResult(str(path), None, tuple(exc.problems)))
    return report


def _latest_versions(session: Session, slugs: Sequence[str]) -> dict[str, ChecklistVersion]:
    newest = (
        sa.select(ChecklistVersion.application_id, sa.func.max(ChecklistVersion.version).label("v"))
        .group_by(ChecklistVersion.application_id)
        .subquery()
    )
    rows = session.execute(
        sa.select(Application.slug, ChecklistVersion)
        .join(ChecklistVersion, ChecklistVersion.application_id == Application.id)
        .join(
            newest,
            sa.and_(
                newest.c.application_id == ChecklistVersion.application_id,
                newest.c.v == ChecklistVersion.version,
            ),
        )
        .where(Application.slug.in_(slugs))
    ).all()
    return dict(rows)


def sync_checklists(
    session: Session,
    directory: Path,
    *,
    clock: Clock,
    author_of: Callable[[Path], str | None] = lambda _path: None,
) -> list[SyncOutcome]:
    """Store every new checklist version found in `directory`; all or nothing."""
    report = lint_paths([directory])
    if not report.files:
        raise ValidationFailed(f"no checklist files (*.yaml, *.yml) found in {directory}")
    if not report.ok:
        raise ChecklistInvalid(report.problems)
    by_application: dict[str, FileResult] = {}
    errors: list[str] = []
    for result in report.files:
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
    to_create: list[FileResult] = []
    for slug, result in by_application.items():
        checklist = result.checklist
        assert checklist is not None
        digest = content_digest(checklist.to_canonical())
        stored = latest.get(slug)
        if stored is None or checklist.version > stored.version:
            to_create.append(result)
            outcomes.append(SyncOutcome(slug, checklist.version, "created", result.path))
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
    if errors:
        raise Conflict("checklists not synced: " + "; ".join(errors), details=errors)
    now = clock.now()
    for result in to_create:
        assert result.checklist is not None
        _store_version(session, result, latest.get(result.checklist.application), now, author_of)
    session.flush()
    return sorted(outcomes, key=lambda o: o.application)


def _store_version(
    session: Session,
    result: FileResult,
    previous: ChecklistVersion | None,
    now: datetime,
    author_of: Callable[[Path], str | None],
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
    author = author_of(path)
    stored = ChecklistVersion(
        application=application,
        version=checklist.version,
        sha256=content_digest(doc),
        content=canonical_json(doc),
        source_yaml=path.read_text(encoding="utf-8"),
        source_path=result.path,
        author=author,
        state=governance.PENDING_REVIEW,
        synced_at=now,
    )
    session.add(stored)
    audit.record(
        session,
        action="checklist.synced",
        actor=author or audit.SYSTEM,
        subject=f"{checklist.application} v{checklist.version}",
        now=now,
        details={"sha256": stored.sha256, "path": result.path, "state": stored.state},
    )


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

    Approving a new version addresses the unresolved findings of its application that it
    references: `addresses:` in its YAML plus any `addresses` chosen by the reviewer.
    """
    stored = get_version(session, application, version)
    if action == governance.APPROVE and stored.state == governance.APPROVED:
        action = governance.REAFFIRM
    if action == governance.REQUEST_CHANGES and not notes.strip():
        raise ValidationFailed("say what needs to change (notes) when requesting changes")
    checklist = checklist_of(stored)
    governance.check_review(
        checklist,
        reviewer=reviewer,
        author=stored.author,
        action=action,
        consulted=consulted,
    )
    now = clock.now()
    before = stored.state
    after = governance.next_version_state(before, action)
    # A conditional UPDATE: of two reviewers deciding at once, exactly one wins.
    decided: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(ChecklistVersion)
        .where(ChecklistVersion.id == stored.id, ChecklistVersion.state == before)
        .values(state=after, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if decided.rowcount != 1:
        raise Conflict(
            f"version {version} of {application} was reviewed by someone else just now; reload"
        )
    stored.state, stored.decided_at = after, now
    review = GovernanceReview(
        checklist_version=stored,
        reviewer=reviewer.strip().lower(),
        outcome=governance.REVIEW_OUTCOME[action],
        consulted=consulted.strip(),
        notes=notes.strip(),
        reviewed_at=now,
    )
    session.add(review)
    session.flush()
    addressed: list[Finding] = []
    if action == governance.APPROVE:
        addressed = findings.address_findings(
            session,
            stored,
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
    audit.record(
        session,
        action=f"checklist.{review.outcome}",
        actor=review.reviewer,
        subject=f"{application} v{version}",
        now=now,
        details=details,
    )
    return review


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
