"""Emergency releases: declare one, let its approvers authorise it by emailed link, and after
the release send what it deferred out as a post-implementation review."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Emergency, EmergencyApproval, EmergencyLink, Package
from gatekeeper.db.queries import active_applications
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import Conflict, LinkUnusable, ValidationFailed
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, learning_reviews, packages, signoffs
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.services.links import USED, issue_link, load_link, use_link
from gatekeeper.signing import TokenService

PURPOSE = "emergency"  # the salt: a token made for another kind of link is refused here
ROUTE = "emergency"
MAX_REASON_CHARS = 2000


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _tokens(links: signoffs.LinkSettings, clock: Clock) -> TokenService:
    return TokenService(links.secret_keys, PURPOSE, int(links.ttl.total_seconds()), clock)


def _checklists(session: Session, package: Package) -> list[tuple[str, Checklist | None]]:
    return [
        (
            application.slug,
            checklist_of(target.checklist_version) if target.checklist_version else None,
        )
        for target, application in active_applications(session, package.id)
    ]


def approvers_of(session: Session, package: Package) -> list[str]:
    """Everyone who may authorise the package's emergency: the approvers of its applications,
    except whoever declared it and whoever assembled the package."""
    emergency = package.emergency
    barred = {package.assembled_by, emergency.declared_by if emergency else ""}
    found: set[str] = set()
    for _, checklist in _checklists(session, package):
        if checklist is not None and checklist.emergency is not None:
            found.update(a for a in checklist.emergency.approvers if a not in barred)
    return sorted(found)


def declare(
    session: Session,
    key: str,
    *,
    reason: str,
    actor: str,
    clock: Clock,
    links: signoffs.LinkSettings,
) -> Emergency:
    """Put a submitted package in emergency mode and email each approver a link. Refused for a
    package not in review, one already in emergency, one whose gate is open already (release it
    normally), and one with an application whose checklist allows no emergency."""
    cleaned = reason.strip()
    if not cleaned:
        raise ValidationFailed("say why this is an emergency (reason)")
    if len(cleaned) > MAX_REASON_CHARS:
        raise ValidationFailed(f"the reason is limited to {MAX_REASON_CHARS} characters")
    package = packages.get_package(session, key, for_update=True)
    if packages.lock_package(session, package.id):
        # A sign-off may have committed while this waited for the lock: read it.
        session.expire_all()
    if package.state != lifecycle.IN_REVIEW:
        raise Conflict(
            f"package {key} is {package.state.replace('_', ' ')}; only a submitted package can "
            "be released in an emergency"
        )
    if package.emergency is not None:
        raise Conflict(f"an emergency was already declared on {key}")
    refused = [slug for slug, c in _checklists(session, package) if c is None or not c.emergency]
    if refused:
        raise ValidationFailed(
            f"{', '.join(refused)} cannot be released in emergency mode: the checklist has no "
            "emergency: section",
            details={"applications": refused},
        )
    now = clock.now()
    overdue_policy = links.overdue_policy
    before = packages.evaluate_gate(session, key, clock=clock, overdue_policy=overdue_policy)
    if before.status == gate_rules.OPEN:
        raise Conflict(f"the gate of {key} is open already; release it normally")
    emergency = Emergency(
        package=package, reason=cleaned, declared_by=actor, declared_at=now, review_waiting_on=[]
    )
    session.add(emergency)
    session.flush()
    audit.record_package_event(
        session,
        package,
        action="emergency.declared",
        actor=actor,
        subject=f"package {key}",
        now=now,
        details={"reason": cleaned},
    )
    tokens = _tokens(links, clock)
    for approver in approvers_of(session, package):
        link = EmergencyLink(emergency_id=emergency.id, approver=approver)
        url = issue_link(
            session,
            link,
            tokens=tokens,
            base_url=links.base_url,
            route=ROUTE,
            now=now,
            ttl=links.ttl,
        )
        audit.record_package_event(
            session,
            package,
            action="emergency_link.issued",
            actor=audit.SYSTEM,
            subject=f"emergency approval link for {approver}",
            now=now,
            details={"link": link.id, "emergency": emergency.id},
        )
        queue_email(
            session,
            to=approver,
            template="emergency_approval",
            context={
                "package": package,
                "emergency": emergency,
                "applications": [slug for slug, _ in _checklists(session, package)],
                "url": url,
                "expires_at": _fmt(link.expires_at),
            },
            now=now,
        )
    after = packages.evaluate_gate(session, key, clock=clock, overdue_policy=overdue_policy)
    packages.report_gate_change(
        session, before, key, now=now, overdue_policy=overdue_policy, after=after
    )
    return emergency


@dataclass(frozen=True)
class ApprovalView:
    link: EmergencyLink
    emergency: Emergency
    package: Package
    gate: gate_rules.GateResult


def _check_usable(link: EmergencyLink, now: datetime) -> None:
    package = link.emergency.package
    if link.state == USED:
        used = _fmt(link.used_at) if link.used_at else "earlier"
        raise LinkUnusable("used", f"You already approved on {used}.", details={"used_at": used})
    if package.state != lifecycle.IN_REVIEW:
        raise LinkUnusable(
            "revoked", f"Release {package.key} no longer needs approval ({package.state})."
        )
    if link.state != "active":
        raise LinkUnusable("revoked", f"This link to approve {package.key} was withdrawn.")
    if now >= link.expires_at:
        raise LinkUnusable("expired", "This link has expired.")


def open_approval(
    session: Session, token: str, *, links: signoffs.LinkSettings, clock: Clock
) -> ApprovalView:
    """What an approval link shows. Reading never changes anything: mail scanners open links."""
    link = load_link(session, token, tokens=_tokens(links, clock), model=EmergencyLink)
    _check_usable(link, clock.now())
    package = link.emergency.package
    gate = packages.evaluate_gate(
        session, package.key, clock=clock, overdue_policy=links.overdue_policy
    )
    return ApprovalView(link, link.emergency, package, gate)


def approve(
    session: Session, token: str, *, links: signoffs.LinkSettings, clock: Clock
) -> ApprovalView:
    """Record the approver's authorisation: single use, and an approver counts once."""
    link = load_link(session, token, tokens=_tokens(links, clock), model=EmergencyLink)
    package = link.emergency.package
    if packages.lock_package(session, package.id):
        session.expire_all()
    now = clock.now()
    _check_usable(link, now)
    before = packages.evaluate_gate(
        session, package.key, clock=clock, overdue_policy=links.overdue_policy
    )
    use_link(session, EmergencyLink, link.id, now=now, used="You already approved.")
    already = session.scalar(
        sa.select(EmergencyApproval.id).where(
            EmergencyApproval.emergency_id == link.emergency_id,
            EmergencyApproval.approver == link.approver,
        )
    )
    if already is not None:
        raise Conflict(f"{link.approver} already approved this emergency")
    session.add(
        EmergencyApproval(emergency_id=link.emergency_id, approver=link.approver, approved_at=now)
    )
    session.flush()
    audit.record_package_event(
        session,
        package,
        action="emergency.approved",
        actor=link.approver,
        subject=f"package {package.key}",
        now=now,
        details={"emergency": link.emergency_id, "link": link.id},
    )
    session.expire(link.emergency)
    after = packages.evaluate_gate(
        session, package.key, clock=clock, overdue_policy=links.overdue_policy
    )
    packages.report_gate_change(
        session,
        before,
        package.key,
        now=now,
        overdue_policy=links.overdue_policy,
        after=after,
    )
    if after.status == gate_rules.OPEN and signoffs.announce_open(session, package):
        queue_email(
            session,
            to=package.assembled_by,
            template="emergency_open",
            context={"package": package, "approver": link.approver, "at": _fmt(now)},
            now=now,
        )
    session.refresh(link)
    return ApprovalView(link, link.emergency, package, after)


def release_package(
    session: Session,
    key: str,
    *,
    digest: str,
    actor: str,
    notes: str = "",
    clock: Clock,
    links: signoffs.LinkSettings,
    reports: GovernanceSettings | None = None,
) -> tuple[Package, gate_rules.GateResult]:
    """Release; after an emergency release, start its post-implementation review."""
    package, result = packages.release_package(
        session,
        key,
        digest=digest,
        actor=actor,
        notes=notes,
        clock=clock,
        overdue_policy=links.overdue_policy,
        reports=reports,
    )
    if package.emergency is not None:
        _start_review(
            session, package, package.emergency, result, actor=actor, clock=clock, links=links
        )
    return package, result


def _start_review(
    session: Session,
    package: Package,
    emergency: Emergency,
    released: gate_rules.GateResult,
    *,
    actor: str,
    clock: Clock,
    links: signoffs.LinkSettings,
) -> None:
    """Send each person the release deferred a link to answer now, due within the shortest
    `review_within_hours` of the package's applications, and open a learning review of each
    application: an emergency is something to learn from, whatever the review finds."""
    now = clock.now()
    shipped = _checklists(session, package)
    emergency.review_due_at = gate_rules.review_due(
        package.released_at or now, [c for _, c in shipped if c is not None]
    )
    waiting = sorted({p for d in released.deferred for p in d.waiting_on})
    emergency.review_waiting_on = waiting
    session.flush()
    audit.record_package_event(
        session,
        package,
        action="emergency.review_started",
        actor=audit.SYSTEM,
        subject=f"package {package.key}",
        now=now,
        details={"due_at": emergency.review_due_at.isoformat(), "waiting_on": waiting},
    )
    if waiting:
        signoffs.issue_links(
            session,
            package,
            settings=links,
            clock=clock,
            signers=waiting,
            review_due=_fmt(emergency.review_due_at),
        )
    else:
        packages.refresh_review(session, package, now=now)
    for _, application in active_applications(session, package.id):
        learning_reviews.open_review(
            session,
            package,
            application.id,
            trigger=f"emergency release {package.key}: {emergency.reason}"[:200],
            actor=actor,
            now=now,
        )
