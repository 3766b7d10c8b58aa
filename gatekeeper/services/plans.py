"""Assembling a package: which applications can go in, and what submitting will ask of whom."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application, ChecklistVersion, Package
from gatekeeper.db.queries import active_applications
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import governance
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain import plan as plan_rules
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import NotFound
from gatekeeper.services import freezes, packages, signoffs
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.packages import ApplicationSpec


@dataclass(frozen=True)
class ApprovedApplication:
    """An application that can be put in a package: it has an approved checklist version."""

    slug: str
    title: str
    checklist_version: int | None  # None: already in the package, no approved version now


def _latest_approved(
    session: Session, slugs: Sequence[str] | None = None
) -> list[tuple[Application, ChecklistVersion]]:
    newest = (
        sa.select(ChecklistVersion.application_id, sa.func.max(ChecklistVersion.version).label("v"))
        .where(ChecklistVersion.state == governance.APPROVED)
        .group_by(ChecklistVersion.application_id)
        .subquery()
    )
    query = (
        sa.select(Application, ChecklistVersion)
        .join(ChecklistVersion, ChecklistVersion.application_id == Application.id)
        .join(
            newest,
            sa.and_(
                newest.c.application_id == ChecklistVersion.application_id,
                newest.c.v == ChecklistVersion.version,
            ),
        )
        .order_by(Application.slug)
    )
    if slugs is not None:
        query = query.where(Application.slug.in_(list(slugs)))
    return [(a, v) for a, v in session.execute(query).all()]


def approved_applications(session: Session) -> list[ApprovedApplication]:
    """Applications with an approved checklist, in one query."""
    return [ApprovedApplication(a.slug, a.title, v.version) for a, v in _latest_approved(session)]


def plan_for(
    session: Session,
    specs: Sequence[ApplicationSpec],
    *,
    assembler: str,
    environment: str = "",
    planned_for: date | None = None,
    clock: Clock | None = None,
) -> plan_rules.Plan:
    """What submitting these applications now would request, from the latest approved versions;
    with the planned date, the freeze windows and blackouts it falls in."""
    found = {a.slug: v for a, v in _latest_approved(session, [s.application for s in specs])}
    picked = [
        plan_rules.PlannedApplication(
            s.application,
            s.version,
            checklist_of(found[s.application]) if s.application in found else None,
        )
        for s in specs
    ]
    plan = plan_rules.plan_submission(picked, assembler=assembler.strip().lower())
    if planned_for is None or clock is None:
        return plan
    ahead = gate_rules.freeze_warnings(
        gate_rules.GateInput(
            package="",
            revision=0,
            state=lifecycle.DRAFT,
            assembler=assembler,
            applications=tuple(
                gate_rules.PinnedApplication(p.application, p.version_label, p.checklist)
                for p in picked
            ),
            signoffs=(),
            now=clock.now(),
            environment=environment,
            freezes=freezes.gate_windows(
                freezes.approved_calendar(session), [p.checklist for p in picked]
            ),
            planned_for=planned_for,
        )
    )
    return replace(plan, problems=(*plan.problems, *(w.message for w in ahead)))


@dataclass(frozen=True)
class EditView:
    """A package as its edit form starts: header fields and the applications in it now."""

    key: str
    title: str
    environment: str
    planned_for: date | None
    state: str
    revision: int
    applications: dict[str, ApplicationSpec]


def package_for_edit(session: Session, key: str, *, assembled_by: str | None) -> EditView:
    """The package to edit, if within reach (NotFound otherwise) and still editable."""
    query = sa.select(Package).where(Package.key == key)
    if assembled_by is not None:
        query = query.where(Package.assembled_by == assembled_by)
    package = session.scalar(query)
    if package is None:
        raise NotFound(f"no package {key!r}")
    lifecycle.next_state(package.state, lifecycle.EDIT)
    return EditView(
        package.key,
        package.title,
        package.environment,
        package.planned_for,
        package.state,
        package.revision,
        {
            application.slug: ApplicationSpec(
                application.slug, target.version_label, target.change_summary
            )
            for target, application in active_applications(session, package.id)
        },
    )


def editable_applications(session: Session, current: EditView) -> list[ApprovedApplication]:
    """What the edit form offers: approved applications, plus those already in the package."""
    offered = {a.slug: a for a in approved_applications(session)}
    for slug in current.applications:
        offered.setdefault(slug, ApprovedApplication(slug, slug, None))
    return [offered[slug] for slug in sorted(offered)]


def assemble_package(
    session: Session,
    spec: packages.PackageSpec,
    *,
    assembler: str,
    submit: bool,
    clock: Clock,
    links: signoffs.LinkSettings,
) -> Package:
    """Create the package as a draft and, when asked, submit it at once (one transaction)."""
    package = packages.create_package(session, spec, assembler=assembler, clock=clock)
    if submit:
        signoffs.submit_for_signoff(session, package.key, actor=assembler, clock=clock, links=links)
    return package
