"""The gate of many packages at once: a fixed number of queries however many packages there are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    Application,
    ChecklistVersion,
    ConfirmationLink,
    Emergency,
    EmergencyApproval,
    GovernanceReview,
    Package,
    PackageApplication,
    Signoff,
)
from gatekeeper.domain import freeze, governance, learning
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.absence import Absence
from gatekeeper.domain.checklist import Checklist
from gatekeeper.services import (
    absences,
    findings,
    freezes,
    head_cache,
    integrity,
    learning_reviews,
    package_seals,
    webhooks,
)
from gatekeeper.services.checklists import checklist_of


@dataclass(frozen=True)
class PinnedRow:
    """One active application of a package, with its pinned checklist version (if any)."""

    target: PackageApplication
    slug: str
    title: str
    version: ChecklistVersion | None


@dataclass
class GateMaterial:
    """Everything the gate reads for a set of packages, loaded in five queries, and the keys
    that tell which of its sign-offs and reviews are authentic."""

    records: integrity.RecordKeys
    packages: dict[int, Package] = field(default_factory=dict)
    applications: dict[int, list[PinnedRow]] = field(default_factory=dict)
    # Only governance reviews whose record MAC verifies count (services/integrity).
    last_reviews: dict[int, datetime] = field(default_factory=dict)
    approved_versions: set[int] = field(default_factory=set)
    tampered_reviews: dict[int, list[GovernanceReview]] = field(default_factory=dict)
    open_findings: dict[int, tuple[gate_rules.OpenFinding, ...]] = field(default_factory=dict)
    learning_due: dict[int, tuple[learning.Overdue, ...]] = field(default_factory=dict)
    signoffs: dict[int, list[Signoff]] = field(default_factory=dict)
    # Whether each package still holds what its record seal names (services/package_seals).
    sealed: dict[int, bool] = field(default_factory=dict)
    # How the audit chain fails to continue from the head this host witnessed (head_witness);
    # None when it does.
    chain_break: str | None = None
    confirmations: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)
    absences: tuple[Absence, ...] = ()
    calendar: freeze.Calendar | None = None
    emergencies: dict[int, gate_rules.EmergencyState] = field(default_factory=dict)
    # Per application id: (package id, review) of emergency releases whose review is open.
    open_reviews: dict[int, list[tuple[int, gate_rules.OpenReview]]] = field(default_factory=dict)


def load_material(
    session: Session,
    package_ids: Sequence[int],
    *,
    include_stale: bool = False,
    preloaded: Sequence[Package] = (),
) -> GateMaterial:
    """Packages, their active applications and pinned checklists, the latest governance reviews,
    the untriaged post-release findings and the sign-offs (only those still counting unless
    `include_stale`), in five queries."""
    material = GateMaterial(integrity.keyring_of(session).records)
    if not package_ids:
        return material
    ids = list(package_ids)
    material.packages = {p.id: p for p in preloaded if p.id in ids}
    missing = [i for i in ids if i not in material.packages]
    if missing:
        for package in session.scalars(sa.select(Package).where(Package.id.in_(missing))):
            material.packages[package.id] = package
    rows = session.execute(
        sa.select(PackageApplication, Application.slug, Application.title, ChecklistVersion)
        .join(Application, Application.id == PackageApplication.application_id)
        .outerjoin(ChecklistVersion, ChecklistVersion.id == PackageApplication.checklist_version_id)
        .where(PackageApplication.package_id.in_(ids))
        .order_by(PackageApplication.package_id, Application.slug)
    ).all()
    application_ids: set[int] = set()
    held_applications: dict[int, list[PackageApplication]] = {}
    for target, slug, title, version in rows:
        held_applications.setdefault(target.package_id, []).append(target)
        if target.removed_in_revision is not None:
            continue
        material.applications.setdefault(target.package_id, []).append(
            PinnedRow(target, slug, title, version)
        )
        application_ids.add(target.application_id)
    if application_ids:
        _load_reviews(session, material, sorted(application_ids))
        material.open_findings = findings.open_findings_for_gate(session, sorted(application_ids))
        material.learning_due = learning_reviews.due_for_gate(session, sorted(application_ids))
    held_signoffs: dict[int, list[Signoff]] = {}
    query = sa.select(Signoff).where(Signoff.package_id.in_(ids)).order_by(Signoff.id)
    for signoff in session.scalars(query):
        held_signoffs.setdefault(signoff.package_id, []).append(signoff)
        if include_stale or signoff.stale_since_revision is None:
            material.signoffs.setdefault(signoff.package_id, []).append(signoff)
    material.chain_break = head_cache.chain_break(session)
    material.sealed = {
        package_id: package_seals.holds_sealed(
            session,
            material.records,
            package,
            package_seals.holding_of(
                held_applications.get(package_id, []), held_signoffs.get(package_id, [])
            ),
        )
        for package_id, package in material.packages.items()
    }
    released = [i for i, p in material.packages.items() if p.state == lifecycle.RELEASED]
    material.confirmations = _confirmation_answers(session, released)
    submitted = [
        p.submitted_at
        for p in material.packages.values()
        if p.state == lifecycle.IN_REVIEW and p.submitted_at is not None
    ]
    if submitted:
        # Whoever came back before the earliest of these packages was submitted is of no
        # concern to any of them.
        material.absences = absences.ended_after(session, min(submitted))
    # One query whatever the number of packages: every gate applies the same calendar.
    material.calendar = freezes.approved_calendar(session)
    _load_emergencies(session, material, ids, sorted(application_ids))
    return material


def _load_emergencies(
    session: Session, material: GateMaterial, ids: list[int], application_ids: list[int]
) -> None:
    """In one query: the emergencies declared on these packages with their approvals, and the
    open post-implementation reviews of any emergency release that shipped one of these
    applications (one row per application and approval)."""
    review_open = sa.and_(
        Emergency.review_due_at.is_not(None),
        Emergency.review_completed_at.is_(None),
        PackageApplication.application_id.in_(application_ids),
    )
    rows = session.execute(
        sa.select(Emergency, Package.key, PackageApplication.application_id, EmergencyApproval)
        .join(Package, Package.id == Emergency.package_id)
        .join(PackageApplication, PackageApplication.package_id == Emergency.package_id)
        .outerjoin(EmergencyApproval, EmergencyApproval.emergency_id == Emergency.id)
        .where(
            PackageApplication.removed_in_revision.is_(None),
            sa.or_(Emergency.package_id.in_(ids), review_open),
        )
        .order_by(Emergency.id, PackageApplication.application_id, EmergencyApproval.id)
    ).all()
    approvals: dict[int, dict[str, datetime]] = {}
    reviews: dict[tuple[int, int], gate_rules.OpenReview] = {}
    for emergency, key, application_id, approval in rows:
        given = approvals.setdefault(emergency.id, {})
        if approval is not None:
            given[approval.approver] = approval.approved_at
        if emergency.review_due_at is not None and emergency.review_completed_at is None:
            reviews[(application_id, emergency.package_id)] = gate_rules.OpenReview(
                key, emergency.review_due_at, tuple(emergency.review_waiting_on)
            )
        if emergency.package_id in material.packages:
            material.emergencies[emergency.package_id] = gate_rules.EmergencyState(
                declared_by=emergency.declared_by,
                declared_at=emergency.declared_at,
                reason=emergency.reason,
                approvals=tuple(given.items()),
                review_due_at=emergency.review_due_at,
                review_waiting_on=tuple(emergency.review_waiting_on),
                review_completed_at=emergency.review_completed_at,
            )
    for (application_id, package_id), review in reviews.items():
        if application_id in application_ids:
            material.open_reviews.setdefault(application_id, []).append((package_id, review))


def _confirmation_answers(
    session: Session, package_ids: Sequence[int]
) -> dict[int, list[tuple[str, str, str]]]:
    """Key users' post-release answers per released package, (application, key user, answer):
    one query, and none when no package was released (packages in review have none)."""
    found: dict[int, list[tuple[str, str, str]]] = {}
    if not package_ids:
        return found
    for package_id, slug, key_user, answer in session.execute(
        sa.select(
            ConfirmationLink.package_id,
            Application.slug,
            ConfirmationLink.key_user,
            ConfirmationLink.answer,
        )
        .join(Application, Application.id == ConfirmationLink.application_id)
        .where(
            ConfirmationLink.package_id.in_(sorted(package_ids)),
            ConfirmationLink.answer.is_not(None),
        )
        .order_by(ConfirmationLink.id)
    ):
        if answer is not None:  # filtered by the query; narrows the type
            found.setdefault(package_id, []).append((slug, key_user, answer))
    return found


def _load_reviews(session: Session, material: GateMaterial, application_ids: list[int]) -> None:
    """The approving reviews of these applications, each checked against its record MAC: the
    newest verified one sets when the next review is due, a verified "approved" is what lets
    a version count as approved, and any other is tampering."""
    rows = session.execute(
        sa.select(GovernanceReview, ChecklistVersion)
        .join(ChecklistVersion, GovernanceReview.checklist_version_id == ChecklistVersion.id)
        .where(
            ChecklistVersion.application_id.in_(application_ids),
            GovernanceReview.outcome.in_((governance.APPROVED, "reaffirmed")),
        )
        .order_by(GovernanceReview.id)
    ).all()
    for review, version in rows:
        fields = integrity.review_fields(review, version)
        if not material.records.verifies(
            integrity.GOVERNANCE_REVIEW, fields, review.mac_key_id, review.mac
        ):
            material.tampered_reviews.setdefault(version.application_id, []).append(review)
            continue
        held = material.last_reviews.get(version.application_id)
        if held is None or review.reviewed_at > held:
            material.last_reviews[version.application_id] = review.reviewed_at
        if review.outcome == governance.APPROVED:
            material.approved_versions.add(version.id)


def signoff_verified(
    records: integrity.RecordKeys, signoff: Signoff, package: Package, row: PinnedRow
) -> bool:
    """Whether a current sign-off's MAC verifies against what its signer was shown now."""
    fields = integrity.signoff_fields(
        signoff,
        package_key=package.key,
        environment=package.environment,
        version_label=row.target.version_label,
        change_summary=row.target.change_summary,
        checklist_sha256=row.version.sha256 if row.version is not None else None,
    )
    return records.verifies(integrity.SIGNOFF, fields, signoff.mac_key_id, signoff.mac)


def gate_input_from(
    material: GateMaterial,
    package_id: int,
    *,
    now: datetime,
    overdue_policy: str,
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
) -> gate_rules.GateInput:
    """The gate input of one package, from material loaded for one or many packages; every
    sign-off carries the verdict on its record MAC."""
    package = material.packages[package_id]
    rows = material.applications.get(package_id, [])
    pinned: list[gate_rules.PinnedApplication] = []
    pinned_checklists: list[Checklist | None] = []
    for row in rows:
        version = row.version
        checklist = checklist_of(version) if version is not None else None
        pinned_checklists.append(checklist)
        due = None
        if checklist is not None and row.target.application_id in material.last_reviews:
            due = material.last_reviews[row.target.application_id] + timedelta(
                days=checklist.governance.review_every_days
            )
        pinned.append(
            gate_rules.PinnedApplication(
                application=row.slug,
                version_label=row.target.version_label,
                change_summary=row.target.change_summary,
                checklist=checklist,
                checklist_sha256=version.sha256 if version is not None else None,
                checklist_approved=version is not None
                and version.state == governance.APPROVED
                and version.id in material.approved_versions,
                review_due_at=due,
                reviewers=checklist.governance.reviewers if checklist else (),
                changed_in_revision=row.target.changed_in_revision,
                requested_at=row.target.requested_at,
                open_findings=material.open_findings.get(row.target.application_id, ()),
                learning_due=material.learning_due.get(row.target.application_id, ()),
                open_reviews=tuple(
                    review
                    for owner, review in material.open_reviews.get(row.target.application_id, [])
                    if owner != package_id
                ),
            )
        )
    row_of = {row.target.id: row for row in rows}
    current = [
        (s, row_of[s.package_application_id])
        for s in material.signoffs.get(package_id, [])
        if s.stale_since_revision is None and s.package_application_id in row_of
    ]
    return gate_rules.GateInput(
        package=package.key,
        revision=package.revision,
        state=package.state,
        environment=package.environment,
        assembler=package.assembled_by,
        applications=tuple(pinned),
        signoffs=tuple(
            gate_rules.SignoffRecord(
                id=s.id,
                application=row.slug,
                kind=s.kind,
                signer=s.signer,
                decision=s.decision,
                revision=s.revision,
                signed_at=s.signed_at,
                section_id=s.section_id,
                item_id=s.item_id,
                comment=s.comment,
                verified=signoff_verified(material.records, s, package, row),
                on_behalf_of=s.on_behalf_of,
            )
            for s, row in current
        ),
        tampered=tuple(
            gate_rules.TamperedRecord(integrity.GOVERNANCE_REVIEW, r.id, r.reviewer, row.slug)
            for row in rows
            for r in material.tampered_reviews.get(row.target.application_id, [])
        ),
        records_sealed=material.sealed[package_id],
        chain_break=material.chain_break,
        now=now,
        overdue_policy=overdue_policy,
        finding_warn_after=finding_warn_after,
        release=_release_of(package),
        confirmations=tuple(material.confirmations.get(package_id, ())),
        # Absences matter only while sign-offs are asked for.
        absences=material.absences if package.state == lifecycle.IN_REVIEW else (),
        freezes=freezes.gate_windows(material.calendar, pinned_checklists),
        planned_for=package.planned_for,
        emergency=material.emergencies.get(package_id),
    )


def _release_of(package: Package) -> gate_rules.Release | None:
    if package.released_at is None or package.released_by is None or not package.release_digest:
        return None
    return gate_rules.Release(package.released_at, package.released_by, package.release_digest)


def gate_inputs(
    session: Session,
    package_ids: Sequence[int],
    *,
    now: datetime,
    overdue_policy: str,
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
) -> dict[int, gate_rules.GateInput]:
    """The gate input of every package in `package_ids`, in five queries whatever their size."""
    material = load_material(session, package_ids)
    return {
        package_id: gate_input_from(
            material,
            package_id,
            now=now,
            overdue_policy=overdue_policy,
            finding_warn_after=finding_warn_after,
        )
        for package_id in material.packages
    }


def _results(
    session: Session, package_ids: Sequence[int], *, now: datetime, overdue_policy: str
) -> dict[int, gate_rules.GateResult]:
    inputs = gate_inputs(session, package_ids, now=now, overdue_policy=overdue_policy)
    return {package_id: gate_rules.evaluate(given) for package_id, given in inputs.items()}


def watch_application(
    session: Session, application: str, *, now: datetime, overdue_policy: str
) -> dict[int, gate_rules.GateResult] | None:
    """The gates of the packages in review that ship `application`, before a change to its
    checklist's governance; None (nothing evaluated) while nobody subscribes to gate.changed."""
    if not webhooks.listening(session, webhooks.GATE_CHANGED):
        return None
    ids = session.scalars(
        sa.select(Package.id)
        .join(PackageApplication, PackageApplication.package_id == Package.id)
        .join(Application, Application.id == PackageApplication.application_id)
        .where(
            Application.slug == application,
            Package.state == lifecycle.IN_REVIEW,
            PackageApplication.removed_in_revision.is_(None),
        )
        .order_by(Package.id)
    ).all()
    return _results(session, ids, now=now, overdue_policy=overdue_policy)


def report_changes(
    session: Session,
    before: dict[int, gate_rules.GateResult] | None,
    *,
    now: datetime,
    overdue_policy: str,
) -> None:
    """gate.changed for each watched package whose gate status the change moved."""
    if not before:
        return
    session.flush()
    after = _results(session, list(before), now=now, overdue_policy=overdue_policy)
    for package_id, result in after.items():
        webhooks.gate_changed(session, before[package_id], result, now=now)
