"""Use cases for release packages: assemble, edit (revisions), submit, sign off, gate, release."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gatekeeper import metrics
from gatekeeper.db.models import (
    Application,
    ChecklistVersion,
    GovernanceReview,
    Package,
    PackageApplication,
    PackageRevision,
    Signoff,
    SignoffRequest,
)
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import governance
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import Conflict, NotFound, ValidationFailed
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import (
    absences,
    audit,
    findings,
    gates,
    handover,
    integrity,
    operations,
    package_seals,
    webhooks,
)
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.governance import GovernanceSettings

MAX_VERSION_LABEL = 100


@dataclass(frozen=True)
class ApplicationSpec:
    """One application as a release manager puts it in a package."""

    application: str
    version: str
    change_summary: str = ""


@dataclass(frozen=True)
class PackageSpec:
    key: str
    title: str
    environment: str
    planned_for: date | None
    applications: tuple[ApplicationSpec, ...]


@dataclass(frozen=True)
class PackageChanges:
    """An edit: only the fields given change; `applications`, when given, is the whole new list."""

    title: str | None = None
    environment: str | None = None
    planned_for: date | None = None
    applications: tuple[ApplicationSpec, ...] | None = None


def _clean_text(value: str, what: str, limit: int) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise ValidationFailed(f"{what} is required")
    if len(cleaned) > limit:
        raise ValidationFailed(f"{what} is limited to {limit} characters")
    return cleaned


def _check_specs(specs: Sequence[ApplicationSpec]) -> None:
    seen: set[str] = set()
    for spec in specs:
        if spec.application in seen:
            raise ValidationFailed(f"application {spec.application!r} is listed twice")
        seen.add(spec.application)
        _clean_text(spec.version, f"the version of {spec.application}", MAX_VERSION_LABEL)
        if len(spec.change_summary) > lifecycle.MAX_SUMMARY_CHARS:
            raise ValidationFailed(
                f"the change summary of {spec.application} is limited to "
                f"{lifecycle.MAX_SUMMARY_CHARS} characters"
            )


def get_package(session: Session, key: str, *, for_update: bool = False) -> Package:
    """The package by key; `for_update` serialises writers of one package (see lock_package)."""
    query = sa.select(Package).where(Package.key == key)
    if for_update:
        query = query.with_for_update()
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"no package {key!r}")
    if for_update:
        package_seals.watch(session, found.id)
    return found


_LOCKS_HELD = "gatekeeper.package_locks"


def lock_package(session: Session, package_id: int) -> bool:
    """Serialise every change to one package: sign-offs, edits, submit, release.

    On PostgreSQL this is a row lock, so the last two sign-offs arriving together, or a sign-off
    racing an edit, run one after the other and each sees the other's result; on SQLite the
    write transaction's BEGIN IMMEDIATE already serialises them. Returns False when this
    transaction held the lock already (nothing could have changed since it was taken).
    """
    # The session opens a new Connection for each transaction: it names the transaction.
    connection = session.connection()
    held = session.info.get(_LOCKS_HELD)
    if held is None or held[0] is not connection:
        held = (connection, set[int]())
        session.info[_LOCKS_HELD] = held
    if package_id in held[1]:
        return False
    session.execute(sa.select(Package.id).where(Package.id == package_id).with_for_update())
    held[1].add(package_id)
    package_seals.watch(session, package_id)
    return True


def _applications_by_slug(session: Session, slugs: Sequence[str]) -> dict[str, Application]:
    if not slugs:
        return {}
    found = {
        a.slug: a
        for a in session.scalars(sa.select(Application).where(Application.slug.in_(slugs)))
    }
    missing = [s for s in slugs if s not in found]
    if missing:
        raise ValidationFailed(
            f"unknown application(s): {', '.join(missing)}; sync their checklists first"
        )
    return found


def _package_event(
    session: Session,
    package: Package,
    action: str,
    *,
    actor: str,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """An audit event about the package itself, at the revision it now has."""
    audit.record_package_event(
        session,
        package,
        action=action,
        actor=actor,
        subject=f"package {package.key}",
        now=now,
        details=details,
    )


def create_package(session: Session, spec: PackageSpec, *, assembler: str, clock: Clock) -> Package:
    lifecycle.check_key(spec.key)
    _check_specs(spec.applications)
    if session.scalar(sa.select(Package.id).where(Package.key == spec.key)) is not None:
        raise Conflict(f"a package with key {spec.key!r} already exists")
    applications = _applications_by_slug(session, [a.application for a in spec.applications])
    package = Package(
        key=spec.key,
        title=_clean_text(spec.title, "title", 200),
        environment=_clean_text(spec.environment, "environment", 64),
        planned_for=spec.planned_for,
        assembled_by=assembler.strip().lower(),
        state=lifecycle.DRAFT,
        revision=0,
        created_at=clock.now(),
    )
    session.add(package)
    for a in spec.applications:
        session.add(
            PackageApplication(
                package=package,
                application=applications[a.application],
                version_label=a.version.strip(),
                change_summary=a.change_summary.strip(),
            )
        )
    session.flush()
    package_seals.watch(session, package.id, new=True)
    _package_event(
        session,
        package,
        "package.created",
        actor=package.assembled_by,
        now=package.created_at,
        details={
            "title": package.title,
            "environment": package.environment,
            "applications": {a.application: a.version for a in spec.applications},
        },
    )
    return package


def _latest_approved(
    session: Session, application_ids: Sequence[int]
) -> dict[int, ChecklistVersion]:
    newest = (
        sa.select(ChecklistVersion.application_id, sa.func.max(ChecklistVersion.version).label("v"))
        .where(
            ChecklistVersion.state == governance.APPROVED,
            ChecklistVersion.application_id.in_(application_ids),
        )
        .group_by(ChecklistVersion.application_id)
        .subquery()
    )
    rows = session.scalars(
        sa.select(ChecklistVersion).join(
            newest,
            sa.and_(
                newest.c.application_id == ChecklistVersion.application_id,
                newest.c.v == ChecklistVersion.version,
            ),
        )
    )
    return {v.application_id: v for v in rows}


def _issue_requests(
    session: Session, package: Package, targets: Sequence[PackageApplication], now: datetime
) -> list[SignoffRequest]:
    """Pin each target's checklist if needed and ask every eligible person for their decision."""
    unpinned = [t.application_id for t in targets if t.checklist_version_id is None]
    approved = _latest_approved(session, unpinned) if unpinned else {}
    created: list[SignoffRequest] = []
    for target in targets:
        if target.checklist_version_id is None and target.application_id in approved:
            target.checklist_version = approved[target.application_id]
        target.changed_in_revision = package.revision
        target.requested_at = now
        if target.checklist_version is None:
            continue
        checklist = checklist_of(target.checklist_version)
        engineers = signoff_rules.technical_signers(checklist)
        for section, item in checklist.items():
            for signer in item.signers:
                if signer != package.assembled_by:
                    created.append(
                        _request(
                            package, target, signoff_rules.ITEM, signer, now, section.id, item.id
                        )
                    )
        for key_user in checklist.user_validation.emails:
            if key_user != package.assembled_by and key_user not in engineers:
                created.append(_request(package, target, signoff_rules.KEY_USER, key_user, now))
    session.add_all(created)
    # Someone away now is not asked: their deputies are (in the same transaction, so no
    # email ever goes to them for it).
    handover.hand_over(session, package, created, absences.ended_after(session, now), now)
    for target in targets:
        asked = sorted(
            f"{r.item_id or 'key-user validation'}: {r.signer}"
            for r in created
            if r.package_application is target
        )
        audit.record_package_event(
            session,
            package,
            action="signoff.requested",
            actor=audit.SYSTEM,
            subject=f"{target.application.slug} {target.version_label}",
            now=now,
            details={
                "checklist_version": target.checklist_version.version
                if target.checklist_version
                else None,
                "checklist_sha256": target.checklist_version.sha256
                if target.checklist_version
                else None,
                "requests": asked,
            },
        )
    return created


def _request(
    package: Package,
    target: PackageApplication,
    kind: str,
    signer: str,
    now: datetime,
    section_id: str | None = None,
    item_id: str | None = None,
) -> SignoffRequest:
    return SignoffRequest(
        package_id=package.id,
        package_application=target,
        kind=kind,
        section_id=section_id,
        item_id=item_id,
        signer=signer,
        revision=package.revision,
        state=signoff_rules.PENDING,
        created_at=now,
    )


def submit_package(session: Session, key: str, *, actor: str, clock: Clock) -> Package:
    package = get_package(session, key, for_update=True)
    package.state = lifecycle.next_state(package.state, lifecycle.SUBMIT)
    if not package.applications:
        raise ValidationFailed("add at least one application before submitting")
    now = clock.now()
    package.revision = 1
    package.submitted_at = now
    session.flush()
    _issue_requests(session, package, package.applications, now)
    session.add(
        PackageRevision(
            package=package,
            revision=1,
            signed=True,
            actor=actor,
            changes=json.dumps({"submitted": [a.application.slug for a in package.applications]}),
            created_at=now,
        )
    )
    session.flush()
    _package_event(session, package, "package.submitted", actor=actor, now=now)
    webhooks.emit(
        session, webhooks.PACKAGE_SUBMITTED, webhooks.package_data(package) | {"by": actor}, now=now
    )
    return package


# What signers are shown and sign (in the gate's digest): an edit of one of these in review makes
# a new revision. The title and the planned date are shown for orientation only; the signing page
# says so, and their edits are audited and listed in the revision history without a new revision.
SIGNED_FIELDS = ("environment", "applications")
UNSIGNED_FIELDS = ("title", "planned_for")


def _detail_edits(package: Package, changes: PackageChanges) -> dict[str, list[str | None]]:
    """Apply the edits of unsigned fields; return each one that really changed as [old, new]."""
    edits: dict[str, list[str | None]] = {}
    if changes.title is not None:
        title = _clean_text(changes.title, "title", 200)
        if title != package.title:
            edits["title"] = [package.title, title]
            package.title = title
    if changes.planned_for is not None and changes.planned_for != package.planned_for:
        old = package.planned_for.isoformat() if package.planned_for else None
        edits["planned_for"] = [old, changes.planned_for.isoformat()]
        package.planned_for = changes.planned_for
    return edits


def edit_package(
    session: Session, key: str, changes: PackageChanges, *, actor: str, clock: Clock
) -> Package:
    """Edit a package. In review, an edit of anything signers sign (the environment, an
    application, its version or change summary) makes a new revision in this transaction and
    re-requests what changed; a new environment changes the whole release, so every sign-off
    goes stale. Edits of the title or planned date are audited, nothing more."""
    package = get_package(session, key, for_update=True)
    lifecycle.next_state(package.state, lifecycle.EDIT)
    details = _detail_edits(package, changes)
    moved: list[str] | None = None
    if changes.environment is not None:
        environment = _clean_text(changes.environment, "environment", 64)
        if environment != package.environment:
            moved = [package.environment, environment]
            package.environment = environment
    wanted = (
        {a.application: a for a in changes.applications}
        if changes.applications is not None
        else None
    )
    if changes.applications is not None:
        _check_specs(changes.applications)
    rows = {pa.application.slug: pa for pa in package.applications}
    active = {slug: pa for slug, pa in rows.items() if pa.removed_in_revision is None}
    if wanted is None:
        wanted = {
            slug: ApplicationSpec(slug, pa.version_label, pa.change_summary)
            for slug, pa in active.items()
        }
    applications = _applications_by_slug(session, [s for s in wanted if s not in rows])
    changed: list[PackageApplication] = []
    removed: list[PackageApplication] = []
    log: dict[str, dict[str, object]] = {}
    for slug, spec in wanted.items():
        version, summary = spec.version.strip(), spec.change_summary.strip()
        target = rows.get(slug)
        if target is None:
            target = PackageApplication(
                package=package, application=applications[slug], version_label=version
            )
            session.add(target)
        elif slug in active and (target.version_label, target.change_summary) == (version, summary):
            if moved is not None:
                changed.append(target)
            continue
        if slug not in active:
            log[slug] = {"added": version}
        elif target.version_label != version:
            log[slug] = {"version": [target.version_label, version]}
        else:
            log[slug] = {"change_summary": [target.change_summary, summary]}
        target.version_label, target.change_summary = version, summary
        target.removed_in_revision = None
        changed.append(target)
    for slug, target in active.items():
        if slug not in wanted:
            removed.append(target)
            log[slug] = {"removed": target.version_label}
    record: dict[str, object] = {"changed": log}
    if moved is not None:
        record["environment"] = moved
    if details:
        record["details"] = details
    if package.state == lifecycle.DRAFT:
        for target in removed:
            session.delete(target)
        session.flush()
        if log or moved or details:
            _package_event(
                session, package, "package.edited", actor=actor, now=clock.now(), details=record
            )
        return package
    if not log and moved is None:
        if details:
            _record_detail_edits(session, package, details, actor=actor, now=clock.now())
        session.flush()
        return package
    if not wanted:
        raise ValidationFailed("a package in review needs at least one application")
    if package.emergency is not None:
        raise Conflict(
            f"an emergency was declared on {package.key}: what its approvers authorised cannot "
            "change; cancel the package and assemble a new one"
        )
    now = clock.now()
    package.revision += 1
    session.flush()
    _make_stale(session, package, [t.id for t in changed + removed if t.id is not None], now)
    for target in removed:
        target.removed_in_revision = package.revision
    _issue_requests(session, package, changed, now)
    record["carried_forward"] = sorted(
        slug for slug, target in active.items() if slug in wanted and target not in changed
    )
    session.add(
        PackageRevision(
            package=package,
            revision=package.revision,
            signed=True,
            actor=actor,
            changes=json.dumps(record, sort_keys=True),
            created_at=now,
        )
    )
    session.flush()
    _package_event(session, package, "package.edited", actor=actor, now=now, details=record)
    return package


def _record_detail_edits(
    session: Session,
    package: Package,
    details: dict[str, list[str | None]],
    *,
    actor: str,
    now: datetime,
) -> None:
    """An edit of the title or planned date of a package in review: no new revision, no new
    requests, but the revision history and the audit trail keep it."""
    session.add(
        PackageRevision(
            package=package,
            revision=package.revision,
            signed=False,
            actor=actor,
            changes=json.dumps({"details": details}, sort_keys=True),
            created_at=now,
        )
    )
    session.flush()
    _package_event(
        session, package, "package.edited", actor=actor, now=now, details={"details": details}
    )


def _make_stale(
    session: Session, package: Package, target_ids: Sequence[int], now: datetime
) -> None:
    """Open requests and recorded sign-offs of changed applications stop counting."""
    if not target_ids:
        return
    session.execute(
        sa.update(SignoffRequest)
        .where(
            SignoffRequest.package_application_id.in_(target_ids),
            SignoffRequest.state == signoff_rules.PENDING,
        )
        .values(state=signoff_rules.STALE, closed_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa.update(Signoff)
        .where(
            Signoff.package_application_id.in_(target_ids),
            Signoff.stale_since_revision.is_(None),
        )
        .values(stale_since_revision=package.revision)
        .execution_options(synchronize_session=False)
    )
    stale = session.execute(
        sa.select(Signoff.id, Signoff.signer, Signoff.item_id).where(
            Signoff.package_application_id.in_(target_ids),
            Signoff.stale_since_revision == package.revision,
        )
    ).all()
    if stale:
        audit.record_package_event(
            session,
            package,
            action="signoff.made_stale",
            actor=audit.SYSTEM,
            subject=f"{len(stale)} sign-off(s) of changed applications",
            now=now,
            details={"signoffs": [[s.id, s.signer, s.item_id] for s in stale]},
        )


def cancel_package(session: Session, key: str, *, actor: str, clock: Clock) -> Package:
    package = get_package(session, key, for_update=True)
    package.state = lifecycle.next_state(package.state, lifecycle.CANCEL)
    package.cancelled_at = now = clock.now()
    session.execute(
        sa.update(SignoffRequest)
        .where(
            SignoffRequest.package_id == package.id, SignoffRequest.state == signoff_rules.PENDING
        )
        .values(state=signoff_rules.REVOKED, closed_at=now)
    )
    session.flush()
    _package_event(session, package, "package.cancelled", actor=actor, now=now)
    webhooks.emit(
        session, webhooks.PACKAGE_CANCELLED, webhooks.package_data(package) | {"by": actor}, now=now
    )
    return package


def record_signoff(
    session: Session, request_id: int, submitted: signoff_rules.Decision, *, clock: Clock
) -> Signoff:
    """Record one decision for one pending request; single use, guarded by a conditional UPDATE."""
    request = session.get(SignoffRequest, request_id)
    if request is None:
        raise NotFound("no such sign-off request")
    if lock_package(session, request.package_id):
        # Anything read before the lock may be out of date (another writer just committed).
        session.expire_all()
    target = request.package_application
    package = target.package
    if target.checklist_version is None:
        raise Conflict("this application has no pinned checklist")
    checklist = checklist_of(target.checklist_version)
    item = None
    if request.kind == signoff_rules.ITEM:
        item = next(
            (
                i
                for s, i in checklist.items()
                if (s.id, i.id) == (request.section_id, request.item_id)
            ),
            None,
        )
    signoff_rules.check_may_sign(
        signer=request.signer,
        kind=request.kind,
        assembler=package.assembled_by,
        checklist=checklist,
        item=item,
        on_behalf_of=request.on_behalf_of,
    )
    if submitted.kind != request.kind:
        raise ValidationFailed(f"this request asks for a {request.kind.replace('_', ' ')} decision")
    decision = signoff_rules.validate_decision(
        submitted, item=item, scenarios=len(checklist.user_validation.scenarios)
    )
    if package.state != lifecycle.IN_REVIEW and not in_post_implementation_review(package):
        raise Conflict(
            f"package {package.key} is {package.state.replace('_', ' ')}; nothing to sign"
        )
    now = clock.now()
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(SignoffRequest)
        .where(SignoffRequest.id == request.id, SignoffRequest.state == signoff_rules.PENDING)
        .values(state=signoff_rules.SIGNED, closed_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        session.refresh(request)
        raise Conflict(f"this sign-off request is already {request.state}")
    if request.on_behalf_of is not None:
        _close_other_deputies(session, request, request.on_behalf_of, now)
    signoff = Signoff(
        package_id=package.id,
        package_application_id=target.id,
        request_id=request.id,
        kind=request.kind,
        section_id=request.section_id,
        item_id=request.item_id,
        signer=request.signer,
        decision=decision.decision,
        comment=decision.comment,
        evidence=decision.evidence,
        scenarios_confirmed=",".join(str(i) for i in decision.scenarios_confirmed),
        revision=package.revision,
        signed_at=now,
        on_behalf_of=request.on_behalf_of,
    )
    session.add(signoff)
    session.flush()
    operations.on_commit(
        session, metrics.observe_signoff_lead, (now - request.created_at).total_seconds()
    )
    integrity.seal_signoff(session, signoff, package, target)
    audit.record_package_event(
        session,
        package,
        action="signoff.recorded",
        actor=request.signer,
        subject=f"{target.application.slug}: {request.item_id or 'key-user validation'}"
        + (f" — by {request.signer} for {request.on_behalf_of}" if request.on_behalf_of else ""),
        now=now,
        details={
            "signoff": signoff.id,
            "request": request.id,
            "decision": decision.decision,
            "comment": decision.comment,
            "evidence": decision.evidence,
            "scenarios_confirmed": list(decision.scenarios_confirmed),
            "checklist_version": target.checklist_version.version,
            **({"on_behalf_of": request.on_behalf_of} if request.on_behalf_of else {}),
        },
    )
    if package.state == lifecycle.RELEASED:
        refresh_review(session, package, now=now)
    return signoff


def _close_other_deputies(
    session: Session, request: SignoffRequest, person: str, now: datetime
) -> None:
    """One deputy filled the away person's place: the other deputies' requests for the same
    place die (the package lock makes two deputies signing at once run one after the other)."""
    session.execute(
        sa.update(SignoffRequest)
        .where(
            handover.deputies_place(request, person),
            SignoffRequest.state == signoff_rules.PENDING,
            SignoffRequest.id != request.id,
        )
        .values(state=signoff_rules.REVOKED, closed_at=now)
        .execution_options(synchronize_session=False)
    )


def in_post_implementation_review(package: Package) -> bool:
    """Released in an emergency, and the checks it deferred are still being answered."""
    emergency = package.emergency
    return (
        package.state == lifecycle.RELEASED
        and emergency is not None
        and emergency.review_due_at is not None
        and emergency.review_completed_at is None
    )


def refresh_review(session: Session, package: Package, *, now: datetime) -> None:
    """Record who the post-implementation review of an emergency release still waits on,
    and complete it when nobody."""
    emergency = package.emergency
    if emergency is None:
        return
    session.flush()
    outstanding = gate_rules.review_outstanding(
        gate_input(session, package.key, now=now, overdue_policy=gate_rules.BLOCK_OVERDUE)
    )
    emergency.review_waiting_on = sorted({p for b in outstanding for p in b.waiting_on})
    if not outstanding:
        emergency.review_completed_at = now
        _package_event(session, package, "emergency.review_completed", actor=audit.SYSTEM, now=now)
    session.flush()


def _review_due(session: Session, application_ids: Sequence[int]) -> dict[int, datetime]:
    rows = session.execute(
        sa.select(ChecklistVersion.application_id, sa.func.max(GovernanceReview.reviewed_at))
        .join(GovernanceReview, GovernanceReview.checklist_version_id == ChecklistVersion.id)
        .where(
            ChecklistVersion.application_id.in_(application_ids),
            GovernanceReview.outcome.in_(("approved", "reaffirmed")),
        )
        .group_by(ChecklistVersion.application_id)
    ).all()
    return dict(rows)


def gate_input(
    session: Session,
    key: str,
    *,
    now: datetime,
    overdue_policy: str,
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
) -> gate_rules.GateInput:
    """Load everything the gate needs in a fixed number of queries, whatever the package size."""
    package = get_package(session, key)
    material = gates.load_material(session, [package.id], preloaded=[package])
    return gates.gate_input_from(
        material,
        package.id,
        now=now,
        overdue_policy=overdue_policy,
        finding_warn_after=finding_warn_after,
    )


def evaluate_gate(
    session: Session,
    key: str,
    *,
    clock: Clock,
    overdue_policy: str,
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
) -> gate_rules.GateResult:
    return gate_rules.evaluate(
        gate_input(
            session,
            key,
            now=clock.now(),
            overdue_policy=overdue_policy,
            finding_warn_after=finding_warn_after,
        )
    )


def watch_gate(
    session: Session, key: str, *, now: datetime, overdue_policy: str
) -> gate_rules.GateResult | None:
    """The gate before a change, for `report_gate_change`; evaluated only while someone
    subscribes to gate.changed, so writes pay nothing for webhooks nobody wants."""
    if not webhooks.listening(session, webhooks.GATE_CHANGED):
        return None
    return gate_rules.evaluate(gate_input(session, key, now=now, overdue_policy=overdue_policy))


def report_gate_change(
    session: Session,
    before: gate_rules.GateResult | None,
    key: str,
    *,
    now: datetime,
    overdue_policy: str,
    after: gate_rules.GateResult | None = None,
) -> None:
    """Queue gate.changed if the change moved the gate's status (`after`: already evaluated)."""
    if before is None:
        return
    session.flush()
    if after is None:
        after = gate_rules.evaluate(
            gate_input(session, key, now=now, overdue_policy=overdue_policy)
        )
    webhooks.gate_changed(session, before, after, now=now)


def release_package(
    session: Session,
    key: str,
    *,
    digest: str,
    actor: str,
    notes: str = "",
    clock: Clock,
    overdue_policy: str,
    reports: GovernanceSettings | None = None,
) -> tuple[Package, gate_rules.GateResult]:
    """Release only when the gate is open now and the caller checked exactly this state.

    With `reports`, the release email gives every key user and consumer a personal link to
    report a problem found after the release.
    """
    package = get_package(session, key, for_update=True)
    result = evaluate_gate(
        session,
        key,
        clock=clock,
        overdue_policy=overdue_policy,
        finding_warn_after=reports.finding_warn_after
        if reports
        else gate_rules.DEFAULT_FINDING_WARN_AFTER,
    )
    if result.status != gate_rules.OPEN:
        raise Conflict(
            f"the gate of {key} is {result.status}; it must be open to release",
            details={"gate": result.to_dict()},
        )
    if digest != result.digest:
        raise Conflict(
            "the gate changed since you checked it (stale digest); check it again",
            details={"gate": result.to_dict()},
        )
    package.state = lifecycle.next_state(package.state, lifecycle.RELEASE)
    package.released_at = now = clock.now()
    package.released_by = actor
    package.release_digest = digest
    package.release_notes = notes.strip()
    package.release_gate = json.dumps(result.to_dict(), sort_keys=True)
    session.flush()
    _package_event(
        session,
        package,
        "package.released",
        actor=actor,
        now=now,
        details={"digest": digest, "notes": package.release_notes},
    )
    webhooks.emit(
        session,
        webhooks.PACKAGE_RELEASED,
        webhooks.package_data(package) | {"by": actor, "digest": digest},
        now=now,
    )
    report_gate_change(
        session,
        result if webhooks.listening(session, webhooks.GATE_CHANGED) else None,
        key,
        now=now,
        overdue_policy=overdue_policy,
    )
    _announce_release(session, package, reports=reports, clock=clock)
    return package, result


def _announce_release(
    session: Session, package: Package, *, reports: GovernanceSettings | None, clock: Clock
) -> None:
    """Tell the release manager, every key user and every downstream consumer what shipped;
    key users and consumers get a personal link to report a problem found after release."""
    recipients = {package.assembled_by}
    reporters: set[str] = set()
    shipped = []
    for target in package.applications:
        if target.removed_in_revision is not None or target.checklist_version is None:
            continue
        checklist = checklist_of(target.checklist_version)
        reporters.update(checklist.user_validation.emails)
        reporters.update(c.contact for c in checklist.consumers)
        shipped.append(
            {
                "application": target.application.slug,
                "version": target.version_label,
                "change_summary": target.change_summary,
            }
        )
    recipients |= reporters
    head = audit.head(session)
    for recipient in sorted(recipients):
        report_url = (
            findings.issue_report_link(session, package, recipient, settings=reports, clock=clock)
            if reports is not None and recipient in reporters
            else None
        )
        queue_email(
            session,
            to=recipient,
            template="package_released",
            context={
                "package": package,
                "applications": shipped,
                "released_at": package.released_at.strftime("%Y-%m-%d %H:%M UTC")
                if package.released_at
                else "",
                "audit_head": head,
                "report_url": report_url,
                "report_expires_at": (clock.now() + reports.report_ttl).strftime("%Y-%m-%d")
                if reports is not None
                else "",
            },
            now=package.released_at or package.created_at,
        )


def pending_requests(session: Session, key: str) -> list[SignoffRequest]:
    package = get_package(session, key)
    return list(
        session.scalars(
            sa.select(SignoffRequest)
            .where(
                SignoffRequest.package_id == package.id,
                SignoffRequest.state == signoff_rules.PENDING,
            )
            .order_by(SignoffRequest.id)
        )
    )
