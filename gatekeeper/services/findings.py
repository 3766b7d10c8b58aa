"""Post-release findings: report links in the release email, reports, triage (on the staff
page, or by the reviewers' emailed triage links), addressing."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
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
    ScenarioProposal,
    TriageLink,
)
from gatekeeper.db.queries import active_applications
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import governance as governance_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import (
    Conflict,
    LinkUnusable,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, learning_reviews, webhooks
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.services.links import (
    SUPERSEDED,
    USED,
    issue_link,
    load_link,
    retire_links,
    unusable,
    use_link,
)

MAIL_LINK_KIND = "triage"  # how an outbox row names the triage link it carries


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
        clock=clock,
    )


def record_report(
    session: Session,
    *,
    package: Package,
    application: str,
    reporter: str | None,
    report: finding_rules.Report,
    settings: GovernanceSettings,
    clock: Clock,
    link_id: int | None = None,
) -> Finding:
    """A report becomes an open finding on the application's checklist; its reviewers are
    emailed a personal link to triage it."""
    now = clock.now()
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
        impact_level=cleaned.level,
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
            "impact_level": cleaned.level,
        },
    )
    issue_triage_links(session, filed, settings=settings, clock=clock)
    webhooks.emit(
        session,
        webhooks.FINDING_REPORTED,
        {
            "finding": filed.ref,
            "package": package.key,
            "application": application,
            "what_happened": cleaned.what_happened,
            "impact": cleaned.impact,
        },
        now=now,
    )
    if cleaned.level == finding_rules.HIGH_IMPACT:
        learning_reviews.open_review(
            session,
            package,
            target.application_id,
            trigger=f"{filed.ref} reported with high impact",
            actor=audit.SYSTEM,
            now=now,
            due_hours=settings.learning_review_due_hours,
            findings=[filed],
        )
    return filed


# --- triage links ----------------------------------------------------------------------------


def reviewers_of(session: Session, found: Finding | ScenarioProposal) -> tuple[str, ...]:
    """Who triages `found` (a finding or a proposed scenario): the governance reviewers its
    checklist names now (its newest approved version), else those of the version the release
    was gated with."""
    current = session.scalar(
        sa.select(ChecklistVersion)
        .where(
            ChecklistVersion.application_id == found.application_id,
            ChecklistVersion.state == governance_rules.APPROVED,
        )
        .order_by(ChecklistVersion.version.desc())
        .limit(1)
    )
    version = current or found.checklist_version
    return _checklist(version).governance.reviewers if version is not None else ()


def issue_triage_links(
    session: Session, found: Finding, *, settings: GovernanceSettings, clock: Clock
) -> list[str]:
    """One personal link and one email per reviewer of the finding's checklist; their earlier
    links for it die (a link works once, and only the newest one). Returns who was emailed."""
    now = clock.now()
    reviewers = reviewers_of(session, found)
    retire_links(
        session,
        TriageLink,
        TriageLink.finding_id == found.id,
        TriageLink.reviewer.in_(list(reviewers)),
    )
    tokens = settings.triage_tokens(clock)
    for reviewer in reviewers:
        link = TriageLink(finding_id=found.id, reviewer=reviewer)
        url = issue_link(
            session,
            link,
            tokens=tokens,
            base_url=settings.base_url,
            route="review/findings",
            now=now,
            ttl=settings.triage_ttl,
        )
        audit.record(
            session,
            action="triage_link.issued",
            actor=audit.SYSTEM,
            subject=f"triage link for {reviewer}",
            package=found.package.key if found.package else None,
            now=now,
            details={"link": link.id, "finding": found.ref},
        )
        queue_email(
            session,
            to=reviewer,
            template="finding_reported",
            context={
                "finding": found,
                "application": found.application.slug,
                "package": found.package,
                "url": url,
                "expires_at": _fmt(link.expires_at),
            },
            now=now,
            link=(MAIL_LINK_KIND, link.id),
        )
    return list(reviewers)


def resend_triage_links(
    session: Session, finding_id: int, *, settings: GovernanceSettings, clock: Clock
) -> list[str]:
    """From the finding's staff page: fresh triage links, while it is still open."""
    found = get_finding(session, finding_id)
    if found.state != finding_rules.OPEN:
        raise Conflict(f"{found.ref} is {found.state}: there is nothing left to triage")
    emailed = issue_triage_links(session, found, settings=settings, clock=clock)
    if not emailed:
        raise Conflict(f"the {found.application.slug} checklist names no governance reviewer")
    return emailed


_EXPIRED_TRIAGE = (
    "This triage link has expired. A governance admin can email a new one from the finding's "
    "page, or ask the release manager."
)


@dataclass(frozen=True)
class TriageView:
    """What a triage link shows: the finding, and who is triaging it."""

    link: TriageLink
    finding: Finding


def _load_triage(
    session: Session, token: str, settings: GovernanceSettings, clock: Clock
) -> TriageLink:
    return load_link(
        session,
        token,
        tokens=settings.triage_tokens(clock),
        model=TriageLink,
        expired=_EXPIRED_TRIAGE,
    )


def _check_triage_usable(session: Session, link: TriageLink, now: datetime) -> None:
    found = link.finding
    if link.state == USED:
        used = _fmt(link.used_at) if link.used_at else "earlier"
        raise LinkUnusable(
            "used",
            f"You already triaged {found.ref} on {used}; it is {found.state}.",
            details={"used_at": used},
        )
    if link.state == SUPERSEDED:
        raise LinkUnusable(
            "superseded",
            f"A newer link to triage {found.ref} was emailed to you; use the newest email.",
        )
    if now >= link.expires_at:
        raise LinkUnusable("expired", _EXPIRED_TRIAGE)
    if found.state != finding_rules.OPEN:
        by, on = (
            (found.addressed_by, found.addressed_at)
            if found.state == finding_rules.ADDRESSED
            else (found.triaged_by, found.triaged_at)
        )
        when = f" on {_fmt(on)}" if on else ""
        raise LinkUnusable(
            "decided", f"{found.ref} was already {found.state} by {by or 'someone'}{when}."
        )
    if link.reviewer not in reviewers_of(session, found):
        raise LinkUnusable(
            "revoked",
            "You are no longer a governance reviewer of the "
            f"{found.application.slug} checklist; nothing to do.",
        )


def open_triage(
    session: Session, token: str, *, settings: GovernanceSettings, clock: Clock
) -> TriageView:
    """What a triage link shows. Reading never changes anything: mail scanners open links."""
    link = _load_triage(session, token, settings, clock)
    _check_triage_usable(session, link, clock.now())
    return TriageView(link, link.finding)


def submit_triage(
    session: Session,
    token: str,
    *,
    classification: str,
    item: str = "",
    rationale: str,
    settings: GovernanceSettings,
    clock: Clock,
) -> Finding:
    """Triage the finding as the link's reviewer; the link is used exactly once."""
    view = open_triage(session, token, settings=settings, clock=clock)
    finding_rules.check_classification(
        classification, item, rationale, triage_items(view.finding).keys()
    )
    use_link(
        session,
        TriageLink,
        view.link.id,
        now=clock.now(),
        used=f"You already triaged {view.finding.ref}.",
    )
    return triage(
        session,
        view.finding.id,
        classification=classification,
        item=item,
        actor=view.link.reviewer,
        rationale=rationale,
        clock=clock,
    )


def moot_links(session: Session, ids: Collection[int], now: datetime) -> dict[int, str]:
    """Why each of these triage links can no longer be used, for those that cannot."""
    links = session.scalars(sa.select(TriageLink).where(TriageLink.id.in_(sorted(ids)))).all()
    return unusable(links, lambda link: _check_triage_usable(session, link, now))


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


def triage_items(found: Finding) -> dict[str, str]:
    """The items a finding can have escaped past: `section.item` → text, of the checklist
    version in force at the release (the one its package was gated with)."""
    version = found.checklist_version
    return triage_items_of_version(version) if version is not None else {}


def triage_items_of_version(version: ChecklistVersion) -> dict[str, str]:
    return {f"{s.id}.{i.id}": i.text for s, i in _checklist(version).items()}


def triage(
    session: Session,
    finding_id: int,
    *,
    classification: str,
    item: str = "",
    actor: str,
    rationale: str = "",
    clock: Clock,
) -> Finding:
    """Classify a finding: escaped past a named item or uncovered (the checklist should
    change: accepted), or not a checklist matter (declined, with a rationale)."""
    found = session.scalar(sa.select(Finding).where(Finding.id == finding_id).with_for_update())
    if found is None:
        raise NotFound(f"no finding {finding_rules.finding_ref(finding_id)}")
    checked = finding_rules.check_classification(
        classification, item, rationale, triage_items(found).keys()
    )
    now = clock.now()
    state = _transition(session, found, checked.action)
    found.triaged_by = actor
    found.triaged_at = now
    found.rationale = checked.rationale
    found.classification = checked.classification
    found.escaped_section_id, found.escaped_item_id = checked.item or (None, None)
    session.flush()
    audit.record(
        session,
        action=f"finding.{state}",
        actor=actor,
        subject=f"{found.ref} on {found.application.slug}",
        package=found.package.key if found.package else None,
        now=now,
        details={
            "finding": found.ref,
            "state": state,
            "classification": checked.classification,
            "item": ".".join(checked.item) if checked.item else None,
            "rationale": checked.rationale,
        },
    )
    return found


def triage_as_reviewer(
    session: Session,
    ref: str,
    *,
    classification: str,
    item: str = "",
    reviewer: str,
    rationale: str = "",
    clock: Clock,
) -> Finding:
    """Triage from the command line, as a governance reviewer the finding's checklist names
    (the same people its emailed triage links go to)."""
    finding_id = finding_rules.parse_ref(ref)
    if finding_id is None or not is_id(finding_id):
        raise NotFound(f"no finding {ref.strip()} (a finding is named like F-12)")
    found = get_finding(session, finding_id)
    reviewer = reviewer.strip().lower()
    named = reviewers_of(session, found)
    if reviewer not in named:
        raise PermissionDenied(
            f"{reviewer} is not a governance reviewer of the {found.application.slug} checklist "
            f"(reviewers: {', '.join(named) or 'none'})"
        )
    return triage(
        session,
        found.id,
        classification=classification,
        item=item,
        actor=reviewer,
        rationale=rationale,
        clock=clock,
    )


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
    learning_reviews.on_findings_addressed(session, version, addressed, actor=actor, now=now)
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
