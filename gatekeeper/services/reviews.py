"""Governance reviews by emailed link: new versions to approve, scheduled reviews, reminders."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    ChecklistVersion,
    Finding,
    GovernanceReview,
    ReviewLink,
    ReviewReminder,
)
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain import governance
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.checklist_diff import ChecklistDiff, diff_checklists
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import (
    Conflict,
    LinkUnusable,
    NotFound,
    ValidationFailed,
)
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, checklists, findings, gates, webhooks
from gatekeeper.services.governance import APPROVING_OUTCOMES, GovernanceSettings
from gatekeeper.services.links import (
    SUPERSEDED,
    USED,
    issue_link,
    load_link,
    retire_links,
    unusable,
    use_link,
)

NEW_VERSION, REVIEW_DUE, REVIEW_OVERDUE = "new_version", "review_due", "review_overdue"
MAIL_LINK_KIND = "review"  # how an outbox row names the review link it carries
MAX_REVIEW_TEXT = 4000


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


# --- asking for reviews ----------------------------------------------------------------------


def sync_and_request_reviews(
    session: Session,
    directory: Path,
    *,
    clock: Clock,
    declared_authors: Sequence[str],
    history: checklists.HistoryReader = checklists.no_history,
    settings: GovernanceSettings,
) -> list[checklists.SyncOutcome]:
    """Sync new checklist versions; every reviewer named in each new version gets a review link."""
    outcomes = checklists.sync_checklists(
        session, directory, clock=clock, declared_authors=declared_authors, history=history
    )
    for outcome in outcomes:
        if outcome.status == "created" and outcome.kind != checklists.FREEZES:
            stored = checklists.get_version(session, outcome.application, outcome.version)
            request_reviews(session, stored, reason=NEW_VERSION, settings=settings, clock=clock)
    return outcomes


def last_approved(
    session: Session, application_id: int, *, below: int | None = None
) -> ChecklistVersion | None:
    query = sa.select(ChecklistVersion).where(
        ChecklistVersion.application_id == application_id,
        ChecklistVersion.state == governance.APPROVED,
    )
    if below is not None:
        query = query.where(ChecklistVersion.version < below)
    return session.scalar(query.order_by(ChecklistVersion.version.desc()).limit(1))


def change_summary(diff: ChecklistDiff | None) -> list[str]:
    """A few lines for the review email: what kind of change is waiting for review."""
    if diff is None:
        return ["This is the first version of this checklist: nothing approved to compare with."]
    if diff.unchanged:
        return ["Nothing that people sign changed (wording of comments or formatting only)."]
    lines = []
    for what, changes in (("section", diff.sections), ("item", diff.items)):
        kinds: dict[str, int] = {}
        for change in changes:
            kinds[change.change] = kinds.get(change.change, 0) + 1
        if kinds:
            lines.append(
                f"{what}s: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
            )
    if diff.key_users:
        lines.append("key users: " + ", ".join(f"{k.email} {k.change}" for k in diff.key_users))
    if diff.scenarios_added or diff.scenarios_removed:
        lines.append(
            f"scenarios: {len(diff.scenarios_added)} added, {len(diff.scenarios_removed)} removed"
        )
    if diff.fields:
        lines.append("also changed: " + ", ".join(f.field for f in diff.fields))
    return lines


def request_reviews(
    session: Session,
    version: ChecklistVersion,
    *,
    reason: str,
    settings: GovernanceSettings,
    clock: Clock,
    due_at: datetime | None = None,
) -> list[ReviewLink]:
    """One link and one email per governance reviewer of `version`; their earlier links for the
    same version die (a link works once, and only the newest one). Who already gave the first
    of two approvals a new version needs is not asked again."""
    now = clock.now()
    checklist = checklists.checklist_of(version)
    approved_once = checklists.partial_approvers(session, version) if reason == NEW_VERSION else []
    reviewers = [r for r in checklist.governance.reviewers if r not in approved_once]
    retire_links(
        session,
        ReviewLink,
        ReviewLink.checklist_version_id == version.id,
        ReviewLink.reviewer.in_(list(reviewers)),
    )
    baseline = last_approved(session, version.application_id, below=version.version)
    diff = (
        diff_checklists(checklists.checklist_of(baseline), checklist)
        if baseline is not None and reason == NEW_VERSION
        else None
    )
    pending = [
        v.version
        for v in version.application.versions
        if v.state == governance.PENDING_REVIEW and v.version > version.version
    ]
    tokens = settings.review_tokens(clock)
    links = []
    for reviewer in reviewers:
        link = ReviewLink(
            checklist_version_id=version.id, reviewer=reviewer, reason=reason, due_at=due_at
        )
        url = issue_link(
            session,
            link,
            tokens=tokens,
            base_url=settings.base_url,
            route="review",
            now=now,
            ttl=settings.review_ttl,
        )
        audit.record(
            session,
            action="review_link.issued",
            actor=audit.SYSTEM,
            subject=f"review link for {reviewer}",
            now=now,
            details={
                "link": link.id,
                "application": checklist.application,
                "version": version.version,
                "reason": reason,
                "due_at": due_at.isoformat() if due_at else None,
            },
        )
        queue_email(
            session,
            to=reviewer,
            template="review_request",
            context={
                "reason": reason,
                "checklist": checklist,
                "version": version,
                "authors": version.authors,
                "authorship_unknown": version.authorship_unknown,
                "is_author": reviewer in version.authors,
                "summary": change_summary(diff) if reason == NEW_VERSION else [],
                "baseline": baseline.version if baseline is not None else None,
                "due_on": _day(due_at) if due_at else "",
                "pending": pending,
                "url": url,
                "expires_at": _fmt(link.expires_at),
            },
            now=now,
            link=(MAIL_LINK_KIND, link.id),
        )
        links.append(link)
    return links


def resend_review_links(
    session: Session, application: str, *, settings: GovernanceSettings, clock: Clock
) -> tuple[int, list[str]]:
    """From the dashboard: new links for the newest pending version, or else for a scheduled
    review of the approved one. Returns the version and who was emailed."""
    entry = checklists.catalogue_entry(session, application)
    if entry is None or not entry.versions:
        raise NotFound(f"no checklist of {application!r} has been synced")
    pending = [v for v in entry.versions if v.state == governance.PENDING_REVIEW]
    if pending:
        links = request_reviews(
            session, pending[-1], reason=NEW_VERSION, settings=settings, clock=clock
        )
        return pending[-1].version, [link.reviewer for link in links]
    current = entry.approved
    if current is None:
        raise Conflict(f"{application} has no pending or approved version to review")
    due = governance.review_due_at(
        _last_reviews(session, [current.application_id]).get(current.application_id),
        checklists.checklist_of(current).governance.review_every_days,
    )
    overdue = (
        governance.review_standing(due, clock.now(), settings.review_lead)
        == governance.REVIEW_OVERDUE
    )
    links = request_reviews(
        session,
        current,
        reason=REVIEW_OVERDUE if overdue else REVIEW_DUE,
        due_at=due,
        settings=settings,
        clock=clock,
    )
    return current.version, [link.reviewer for link in links]


# --- scheduled reviews -----------------------------------------------------------------------


def _last_reviews(session: Session, application_ids: Sequence[int]) -> dict[int, datetime]:
    return dict(
        session.execute(
            sa.select(ChecklistVersion.application_id, sa.func.max(GovernanceReview.reviewed_at))
            .join(GovernanceReview, GovernanceReview.checklist_version_id == ChecklistVersion.id)
            .where(
                ChecklistVersion.application_id.in_(list(application_ids)),
                GovernanceReview.outcome.in_(APPROVING_OUTCOMES),
            )
            .group_by(ChecklistVersion.application_id)
        ).all()
    )


def _claim_reminder(
    session: Session, application_id: int, due_at: datetime, kind: str, now: datetime
) -> bool:
    """Insert the reminder row unless it exists: the unique constraint makes sending it a claim
    that exactly one worker wins, on SQLite and PostgreSQL alike."""
    values = {"application_id": application_id, "due_at": due_at, "kind": kind, "sent_at": now}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # RETURNING, not rowcount: a skipped conflicting row returns nothing on both engines.
    claimed = session.execute(
        dialect.insert(ReviewReminder)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["application_id", "due_at", "kind"])
        .returning(ReviewReminder.id)
    ).scalar()
    return claimed is not None


def send_review_reminders(
    session: Session, *, settings: GovernanceSettings, clock: Clock
) -> dict[str, int]:
    """Email reviewers ahead of a scheduled review and again once it is overdue: once each per
    due date, whoever runs the worker and however often."""
    now = clock.now()
    counts = {"reviews_due_soon": 0, "reviews_overdue": 0}
    newest = (
        sa.select(ChecklistVersion.application_id, sa.func.max(ChecklistVersion.version).label("v"))
        .where(ChecklistVersion.state == governance.APPROVED)
        .group_by(ChecklistVersion.application_id)
        .subquery()
    )
    current = session.scalars(
        sa.select(ChecklistVersion)
        .join(
            newest,
            sa.and_(
                newest.c.application_id == ChecklistVersion.application_id,
                newest.c.v == ChecklistVersion.version,
            ),
        )
        .order_by(ChecklistVersion.application_id)
    ).all()
    if not current:
        return counts
    last = _last_reviews(session, [v.application_id for v in current])
    for version in current:
        checklist = checklists.checklist_of(version)
        due = governance.review_due_at(
            last.get(version.application_id), checklist.governance.review_every_days
        )
        kind = governance.reminder_due(due, now, settings.review_lead)
        if due is None or kind is None:
            continue
        if not _claim_reminder(session, version.application_id, due, kind, now):
            continue
        overdue = kind == governance.OVERDUE
        request_reviews(
            session,
            version,
            reason=REVIEW_OVERDUE if overdue else REVIEW_DUE,
            due_at=due,
            settings=settings,
            clock=clock,
        )
        audit.record(
            session,
            action="review.reminded",
            actor=audit.SYSTEM,
            subject=f"{checklist.application} review {'overdue' if overdue else 'due soon'}",
            now=now,
            details={
                "version": version.version,
                "due_at": due.isoformat(),
                "kind": kind,
                "reviewers": list(checklist.governance.reviewers),
            },
        )
        webhooks.emit(
            session,
            webhooks.REVIEW_DUE,
            {
                "application": checklist.application,
                "version": version.version,
                "due_at": due.isoformat().replace("+00:00", "Z"),
                "overdue": overdue,
                "reviewers": list(checklist.governance.reviewers),
            },
            now=now,
        )
        counts["reviews_overdue" if overdue else "reviews_due_soon"] += 1
    return counts


# --- the review page -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewView:
    """Everything the review page shows for one link."""

    link: ReviewLink
    version: ChecklistVersion
    checklist: Checklist
    title: str
    baseline: ChecklistVersion | None
    diff: ChecklistDiff | None
    findings: tuple[Finding, ...]
    referenced: frozenset[str]  # unresolved findings the version's YAML says it addresses
    other_refs: tuple[str, ...]  # `addresses:` entries that are no unresolved finding here
    newer_pending: tuple[int, ...]
    last_review: GovernanceReview | None
    next_due_at: datetime
    # Reviewers who gave the first of the two approvals a version of unknown authorship needs.
    partial_approvals: tuple[GovernanceReview, ...] = ()

    @property
    def reaffirm(self) -> bool:
        """A scheduled review of the version in use, rather than approval of a new one."""
        return self.version.state == governance.APPROVED

    @property
    def is_author(self) -> bool:
        return self.link.reviewer in self.version.authors

    @property
    def approvals_needed(self) -> int:
        return governance.approvals_needed(self.version.authorship_unknown is None)


@dataclass(frozen=True)
class ReviewDecision:
    action: str  # approve (reaffirms an approved version) | request_changes
    consulted: str = ""
    notes: str = ""
    addresses: tuple[str, ...] = ()


def _load(session: Session, token: str, settings: GovernanceSettings, clock: Clock) -> ReviewLink:
    return load_link(
        session,
        token,
        tokens=settings.review_tokens(clock),
        model=ReviewLink,
        expired="This review link has expired.",
    )


def _latest_review(session: Session, version: ChecklistVersion) -> GovernanceReview | None:
    return session.scalar(
        sa.select(GovernanceReview)
        .where(GovernanceReview.checklist_version_id == version.id)
        .order_by(GovernanceReview.reviewed_at.desc(), GovernanceReview.id.desc())
        .limit(1)
    )


def _latest_approving(session: Session, application_id: int) -> GovernanceReview | None:
    return session.scalar(
        sa.select(GovernanceReview)
        .join(ChecklistVersion, ChecklistVersion.id == GovernanceReview.checklist_version_id)
        .where(
            ChecklistVersion.application_id == application_id,
            GovernanceReview.outcome.in_(APPROVING_OUTCOMES),
        )
        .order_by(GovernanceReview.reviewed_at.desc(), GovernanceReview.id.desc())
        .limit(1)
    )


def _check_usable(session: Session, link: ReviewLink, checklist: Checklist, now: datetime) -> None:
    version = link.checklist_version
    what = f"version {version.version} of the {checklist.application} checklist"
    if link.state == USED:
        used = _fmt(link.used_at) if link.used_at else "earlier"
        raise LinkUnusable(
            "used", f"You already reviewed {what} on {used}.", details={"used_at": used}
        )
    if link.state == SUPERSEDED:
        raise LinkUnusable(
            "superseded",
            f"A newer review link for {what} was emailed to you; use the newest email.",
        )
    if now >= link.expires_at:
        raise LinkUnusable(
            "expired",
            f"This review link for {what} has expired. A governance admin can send a new one "
            "from the governance dashboard.",
        )
    if version.state == governance.SUPERSEDED:
        newest = max(v.version for v in version.application.versions)
        raise LinkUnusable(
            "superseded",
            f"Version {version.version} of {checklist.application} was replaced by version "
            f"{newest} before anyone reviewed it; its reviewers were emailed a link for it.",
        )
    if link.reason == NEW_VERSION and version.state != governance.PENDING_REVIEW:
        decided = _latest_review(session, version)
        by = f" by {decided.reviewer} on {_fmt(decided.reviewed_at)}" if decided else ""
        outcome = version.state.replace("_", " ")
        raise LinkUnusable("decided", f"{what.capitalize()} was already {outcome}{by}.")
    if link.reason == NEW_VERSION and link.reviewer in checklists.partial_approvers(
        session, version
    ):
        raise LinkUnusable(
            "decided",
            f"You already gave {what} the first of the two approvals it needs; another "
            "reviewer must approve it too.",
        )
    if link.reason != NEW_VERSION:
        done = _latest_approving(session, version.application_id)
        if done is not None and done.reviewed_at >= link.created_at:
            raise LinkUnusable(
                "decided",
                f"The review of the {checklist.application} checklist was already done by "
                f"{done.reviewer} on {_fmt(done.reviewed_at)}; it restarted the review clock.",
            )
    if link.reviewer not in checklist.governance.reviewers:
        raise LinkUnusable(
            "revoked",
            f"You are no longer a governance reviewer of {checklist.application}; nothing to do.",
        )


def moot_links(session: Session, ids: Collection[int], now: datetime) -> dict[int, str]:
    """Why each of these review links can no longer be used (used, replaced, expired, the
    review already done, no longer a reviewer), for those that cannot."""
    links = session.scalars(sa.select(ReviewLink).where(ReviewLink.id.in_(sorted(ids)))).all()
    return unusable(
        links,
        lambda link: _check_usable(
            session, link, checklists.checklist_of(link.checklist_version), now
        ),
    )


def open_review(
    session: Session, token: str, *, settings: GovernanceSettings, clock: Clock
) -> ReviewView:
    """What a review link shows. Reading never changes anything: mail scanners open links."""
    now = clock.now()
    link = _load(session, token, settings, clock)
    version = link.checklist_version
    checklist = checklists.checklist_of(version)
    _check_usable(session, link, checklist, now)
    reaffirm = version.state == governance.APPROVED
    baseline = None if reaffirm else last_approved(session, version.application_id)
    unresolved = tuple(findings.unresolved_for(session, version.application_id))
    known = {f.ref for f in unresolved}
    declared = {
        finding_rules.finding_ref(i)
        for i in (finding_rules.parse_ref(r) for r in checklist.addresses)
        if i is not None
    }
    return ReviewView(
        link=link,
        version=version,
        checklist=checklist,
        title=version.application.title,
        baseline=baseline,
        diff=diff_checklists(checklists.checklist_of(baseline), checklist)
        if baseline is not None
        else None,
        findings=unresolved,
        referenced=frozenset(declared & known),
        other_refs=tuple(r for r in checklist.addresses if finding_rules.parse_ref(r) is None)
        + tuple(sorted(declared - known)),
        newer_pending=tuple(
            v.version
            for v in version.application.versions
            if v.state == governance.PENDING_REVIEW and v.version > version.version
        ),
        last_review=_latest_approving(session, version.application_id),
        next_due_at=now + timedelta(days=checklist.governance.review_every_days),
        partial_approvals=tuple(
            r for r in version.reviews if r.outcome == governance.PARTIALLY_APPROVED
        ),
    )


def decision_errors(view: ReviewView, decision: ReviewDecision) -> dict[str, str]:
    """Field by field, what stops this decision; the page shows them next to the fields."""
    errors: dict[str, str] = {}
    if decision.action not in (governance.APPROVE, governance.REQUEST_CHANGES):
        errors["action"] = "Choose approve or request changes."
    elif decision.action == governance.REQUEST_CHANGES and view.reaffirm:
        errors["action"] = (
            "The version in use cannot be sent back. Tell its owner "
            f"({view.checklist.owner}) what should change; the review stays due until a new "
            "version is approved or this one is reaffirmed."
        )
    elif decision.action == governance.APPROVE and view.is_author and not view.reaffirm:
        errors["action"] = (
            "You authored this version: another reviewer must approve it. You can still "
            "request changes."
        )
    if decision.action == governance.APPROVE and not decision.consulted.strip():
        errors["consulted"] = (
            "Say which key users you consulted about the user-validation section, and how."
        )
    if decision.action == governance.REQUEST_CHANGES and not decision.notes.strip():
        errors["notes"] = "Say what needs to change."
    for name, value in (("consulted", decision.consulted), ("notes", decision.notes)):
        if len(value) > MAX_REVIEW_TEXT:
            errors[name] = f"Keep this under {MAX_REVIEW_TEXT} characters."
    return errors


def submit_review(
    session: Session,
    token: str,
    decision: ReviewDecision,
    *,
    settings: GovernanceSettings,
    clock: Clock,
) -> GovernanceReview:
    """Record the review through `checklists.review_version`; the link is used exactly once."""
    view = open_review(session, token, settings=settings, clock=clock)
    errors = decision_errors(view, decision)
    if errors:
        raise ValidationFailed("; ".join(errors.values()), details=errors)
    now = clock.now()
    use_link(session, ReviewLink, view.link.id, now=now, used="You already reviewed this version.")
    chosen = {f.ref for f in view.findings}
    review = record_review(
        session,
        application=view.checklist.application,
        version=view.version.version,
        action=decision.action,
        reviewer=view.link.reviewer,
        consulted=decision.consulted,
        notes=decision.notes,
        addresses=() if view.reaffirm else tuple(r for r in decision.addresses if r in chosen),
        clock=clock,
        overdue_policy=settings.overdue_policy,
    )
    _tell_owner(session, view, review, now)
    return review


def record_review(
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
    overdue_policy: str,
) -> GovernanceReview:
    """`checklists.review_version`, and gate.changed for each package in review whose gate the
    decision moved (an approved version unblocks, a reaffirmed review ends an overdue block)."""
    now = clock.now()
    before = gates.watch_application(session, application, now=now, overdue_policy=overdue_policy)
    review = checklists.review_version(
        session,
        application=application,
        version=version,
        action=action,
        reviewer=reviewer,
        consulted=consulted,
        notes=notes,
        addresses=addresses,
        clock=clock,
    )
    gates.report_changes(session, before, now=now, overdue_policy=overdue_policy)
    return review


def _tell_owner(
    session: Session, view: ReviewView, review: GovernanceReview, now: datetime
) -> None:
    """The checklist's owner and the version's author learn the outcome, notes included; the
    reviewer gets the same as a receipt (a link used by someone else does not go unnoticed)."""
    addressed = list(
        session.scalars(
            sa.select(Finding.id)
            .where(Finding.addressed_by_version_id == view.version.id)
            .order_by(Finding.id)
        )
    )
    recipients = {view.checklist.owner, review.reviewer, *view.version.authors}
    for recipient in sorted(recipients):
        queue_email(
            session,
            to=recipient,
            template="checklist_reviewed",
            context={
                "checklist": view.checklist,
                "review": review,
                "addressed": [finding_rules.finding_ref(i) for i in addressed],
                "reviewed_at": _fmt(review.reviewed_at),
                "authorship_unknown": view.version.authorship_unknown,
            },
            now=now,
        )
