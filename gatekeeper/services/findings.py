"""Post-release findings: report links in the release email, reports, triage, addressing."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gatekeeper.db.base import is_id
from gatekeeper.db.models import (
    Application,
    ChecklistVersion,
    Finding,
    Package,
    ReportLink,
)
from gatekeeper.db.queries import active_applications
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import (
    Conflict,
    LinkUnusable,
    NotFound,
    ValidationFailed,
)
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.services.links import USED, issue_link, load_link, use_link


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _checklist(version: ChecklistVersion) -> Checklist:
    return Checklist.from_canonical(json.loads(version.content))


# --- report links ----------------------------------------------------------------------------


def issue_report_link(
    session: Session,
    package: Package,
    recipient: str,
    *,
    settings: GovernanceSettings,
    clock: Clock,
) -> str:
    """The personal "report a problem found after release" link of one recipient of a release:
    one per recipient and package, used once."""
    now = clock.now()
    link = ReportLink(package_id=package.id, recipient=recipient)
    url = issue_link(
        session,
        link,
        tokens=settings.report_tokens(clock),
        base_url=settings.base_url,
        route="report",
        now=now,
        ttl=settings.report_ttl,
    )
    audit.record_package_event(
        session,
        package,
        action="report_link.issued",
        actor=audit.SYSTEM,
        subject=f"report link for {recipient}",
        now=now,
        details={"link": link.id, "expires_at": link.expires_at.isoformat()},
    )
    return url


@dataclass(frozen=True)
class ShippedApplication:
    slug: str
    title: str
    version_label: str


@dataclass(frozen=True)
class ReportView:
    link: ReportLink
    package: Package
    applications: tuple[ShippedApplication, ...]
    suggested: str | None  # the recipient's own application, when there is exactly one


def _load(session: Session, token: str, settings: GovernanceSettings, clock: Clock) -> ReportLink:
    return load_link(
        session,
        token,
        tokens=settings.report_tokens(clock),
        model=ReportLink,
        expired="This link has expired.",
    )


def _check_usable(session: Session, link: ReportLink, now: datetime) -> None:
    if link.state == USED:
        filed = session.scalar(sa.select(Finding.id).where(Finding.report_link_id == link.id))
        as_ref = f" as finding {finding_rules.finding_ref(filed)}" if filed else ""
        used = _fmt(link.used_at) if link.used_at else "earlier"
        raise LinkUnusable(
            "used",
            f"You already reported a problem with release {link.package.key} on {used}; it "
            f"was recorded{as_ref}. Thank you.",
            details={"used_at": used},
        )
    if now >= link.expires_at:
        raise LinkUnusable(
            "expired",
            f"This link to report a problem with release {link.package.key} has expired. "
            "Tell the release manager or the checklist's governance reviewers directly.",
        )


def open_report(
    session: Session, token: str, *, settings: GovernanceSettings, clock: Clock
) -> ReportView:
    """What the report page shows. Reading never changes anything: mail scanners open links."""
    link = _load(session, token, settings, clock)
    _check_usable(session, link, clock.now())
    package = link.package
    shipped = active_applications(session, package.id)
    own = []
    for target, application in shipped:
        if target.checklist_version is not None:
            checklist = _checklist(target.checklist_version)
            related = {*checklist.user_validation.emails, *(c.contact for c in checklist.consumers)}
            if link.recipient in related:
                own.append(application.slug)
    return ReportView(
        link,
        package,
        tuple(ShippedApplication(a.slug, a.title, t.version_label) for t, a in shipped),
        own[0] if len(own) == 1 else None,
    )


def submit_report(
    session: Session,
    token: str,
    *,
    application: str,
    report: finding_rules.Report,
    settings: GovernanceSettings,
    clock: Clock,
) -> Finding:
    """File the report as a finding; the link is used exactly once (conditional UPDATE)."""
    view = open_report(session, token, settings=settings, clock=clock)
    cleaned = report.validated()
    if application not in {a.slug for a in view.applications}:
        raise ValidationFailed("choose the application the problem is about")
    now = clock.now()
    use_link(
        session,
        ReportLink,
        view.link.id,
        now=now,
        used="You already reported a problem with this release.",
    )
    return record_report(
        session,
        package=view.package,
        application=application,
        reporter=view.link.recipient,
        report=cleaned,
        link_id=view.link.id,
        settings=settings,
        now=now,
    )


def record_report(
    session: Session,
    *,
    package: Package,
    application: str,
    reporter: str | None,
    report: finding_rules.Report,
    settings: GovernanceSettings,
    now: datetime,
    link_id: int | None = None,
) -> Finding:
    """A report becomes an open finding on the application's checklist; its reviewers are told."""
    if package.state != lifecycle.RELEASED:
        raise ValidationFailed(f"package {package.key} was not released; report problems to it")
    cleaned = report.validated()
    target = next(
        (t for t, a in active_applications(session, package.id) if a.slug == application), None
    )
    if target is None:
        raise ValidationFailed(f"{application} was not part of release {package.key}")
    filed = Finding(
        application_id=target.application_id,
        package_id=package.id,
        checklist_version_id=target.checklist_version_id,
        report_link_id=link_id,
        reported_by=reporter,
        what_happened=cleaned.what_happened,
        impact=cleaned.impact,
        could_have_caught=cleaned.could_have_caught,
        state=finding_rules.OPEN,
        reported_at=now,
        rationale="",
    )
    session.add(filed)
    session.flush()
    audit.record_package_event(
        session,
        package,
        action="finding.reported",
        actor=reporter or audit.SYSTEM,
        subject=f"{filed.ref} on {application}",
        now=now,
        details={
            "finding": filed.ref,
            "checklist_version": target.checklist_version.version
            if target.checklist_version
            else None,
            "what_happened": cleaned.what_happened,
            "impact": cleaned.impact,
            "could_have_caught": cleaned.could_have_caught,
        },
    )
    pinned = target.checklist_version
    reviewers = _checklist(pinned).governance.reviewers if pinned is not None else ()
    for reviewer in reviewers:
        queue_email(
            session,
            to=reviewer,
            template="finding_reported",
            context={
                "finding": filed,
                "application": application,
                "package": package,
                "url": f"{settings.base_url}/governance/findings/{filed.id}",
            },
            now=now,
        )
    return filed


# --- triage and addressing -------------------------------------------------------------------


def get_finding(session: Session, finding_id: int) -> Finding:
    found = session.get(Finding, finding_id)
    if found is None:
        raise NotFound(f"no finding {finding_rules.finding_ref(finding_id)}")
    return found


def list_findings(
    session: Session, *, states: Sequence[str] | None = None, application: str | None = None
) -> list[Finding]:
    query = sa.select(Finding).join(Application, Application.id == Finding.application_id)
    if states:
        query = query.where(Finding.state.in_(list(states)))
    if application:
        query = query.where(Application.slug == application)
    return list(session.scalars(query.order_by(Finding.reported_at.desc(), Finding.id.desc())))


def unresolved_for(session: Session, application_id: int) -> list[Finding]:
    return list(
        session.scalars(
            sa.select(Finding)
            .where(
                Finding.application_id == application_id,
                Finding.state.in_(finding_rules.UNRESOLVED),
            )
            .order_by(Finding.id)
        )
    )


def _transition(session: Session, found: Finding, action: str) -> str:
    """Move the finding with a conditional UPDATE: of two triagers racing, exactly one wins."""
    before = found.state
    after = finding_rules.next_finding_state(before, action)
    moved: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(Finding)
        .where(Finding.id == found.id, Finding.state == before)
        .values(state=after)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        raise Conflict(f"{found.ref} was changed by someone else meanwhile; reload it")
    found.state = after
    return after


def triage(
    session: Session,
    finding_id: int,
    *,
    action: str,
    actor: str,
    rationale: str = "",
    clock: Clock,
) -> Finding:
    """Accept a finding (the checklist should change) or decline it (with a rationale)."""
    if action not in (finding_rules.ACCEPT, finding_rules.DECLINE):
        raise ValidationFailed(
            "a finding is accepted or declined here; approving a checklist version that "
            "references it addresses it"
        )
    found = session.scalar(sa.select(Finding).where(Finding.id == finding_id).with_for_update())
    if found is None:
        raise NotFound(f"no finding {finding_rules.finding_ref(finding_id)}")
    cleaned = finding_rules.check_triage(action, rationale)
    now = clock.now()
    state = _transition(session, found, action)
    found.triaged_by = actor
    found.triaged_at = now
    found.rationale = cleaned
    session.flush()
    audit.record(
        session,
        action=f"finding.{state}",
        actor=actor,
        subject=f"{found.ref} on {found.application.slug}",
        package=found.package.key if found.package else None,
        now=now,
        details={"finding": found.ref, "state": state, "rationale": cleaned},
    )
    return found


def address_findings(
    session: Session, version: ChecklistVersion, refs: Iterable[str], *, actor: str, now: datetime
) -> list[Finding]:
    """An approved version addresses the unresolved findings of its application it references
    (`addresses:` in the YAML, or chosen in the review). Other references are left alone."""
    # A number beyond any id (`F-99999999999`) names no finding and must not reach the query.
    ids = {i for i in (finding_rules.parse_ref(r) for r in refs) if is_id(i)}
    if not ids:
        return []
    addressed = list(
        session.scalars(
            sa.select(Finding)
            .where(
                Finding.id.in_(sorted(ids)),
                Finding.application_id == version.application_id,
                Finding.state.in_(finding_rules.UNRESOLVED),
            )
            .order_by(Finding.id)
            .with_for_update()
        )
    )
    for found in addressed:
        _transition(session, found, finding_rules.ADDRESS)
        found.addressed_by_version_id = version.id
        found.addressed_by = actor
        found.addressed_at = now
        session.flush()
        audit.record(
            session,
            action="finding.addressed",
            actor=actor,
            subject=f"{found.ref} on {version.application.slug}",
            package=found.package.key if found.package else None,
            now=now,
            details={"finding": found.ref, "checklist_version": version.version},
        )
        if found.reported_by:
            queue_email(
                session,
                to=found.reported_by,
                template="finding_addressed",
                context={
                    "finding": found,
                    "application": version.application.slug,
                    "version": version.version,
                },
                now=now,
            )
    return addressed


def open_findings_for_gate(
    session: Session, application_ids: Sequence[int]
) -> dict[int, tuple[gate_rules.OpenFinding, ...]]:
    """Untriaged findings per application, for the gate's warnings: one query."""
    found: dict[int, list[gate_rules.OpenFinding]] = {}
    if not application_ids:
        return {}
    for finding_id, application_id, reported_at in session.execute(
        sa.select(Finding.id, Finding.application_id, Finding.reported_at)
        .where(
            Finding.application_id.in_(sorted(set(application_ids))),
            Finding.state == finding_rules.OPEN,
        )
        .order_by(Finding.id)
    ):
        found.setdefault(application_id, []).append(
            gate_rules.OpenFinding(finding_rules.finding_ref(finding_id), reported_at)
        )
    return {k: tuple(v) for k, v in found.items()}
