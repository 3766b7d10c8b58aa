"""What people see at the end of an emailed link: what they answered, item by item and in
words, and, when the link can no longer be used, what changed since and what to do next.
Reading only, like every GET of a link: mail scanners open links too."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    ChecklistVersion,
    Finding,
    GovernanceReview,
    PackageRevision,
    ReportLink,
    ReviewLink,
    Signoff,
    SignoffLink,
    SignoffRequest,
)
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import LinkUnusable, TokenInvalid
from gatekeeper.services import boards, labels
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.governance import APPROVING_OUTCOMES, GovernanceSettings
from gatekeeper.services.links import USED, load_link
from gatekeeper.services.reviews import NEW_VERSION
from gatekeeper.services.signoffs import LinkSettings


def _reason(error: LinkUnusable | TokenInvalid) -> str:
    return error.reason if isinstance(error, LinkUnusable) else "invalid"


# --- sign-off links --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One recorded decision, as its signer would describe it."""

    application: str
    version_label: str
    section: str
    what: str  # the item's text, or what key-user validation asks
    decision: str
    label: str
    comment: str
    evidence: str
    scenarios: tuple[tuple[str, bool], ...]  # a key user's scenarios: (text, confirmed)
    signed_at: datetime
    counts: bool  # False once a later change of its application made it stale


def answers(signoffs: Sequence[Signoff]) -> tuple[Answer, ...]:
    found: list[Answer] = []
    for signoff in signoffs:
        target = signoff.package_application
        pinned = target.checklist_version
        checklist = checklist_of(pinned) if pinned is not None else None
        section, what = "", "It still works for you (key-user validation)"
        scenarios: tuple[tuple[str, bool], ...] = ()
        if signoff.kind == signoff_rules.ITEM:
            section, what = "", signoff.item_id or ""
            for s, item in checklist.items() if checklist else ():
                if (s.id, item.id) == (signoff.section_id, signoff.item_id):
                    section, what = s.title, item.text
        elif checklist is not None:
            ticked = {int(i) for i in signoff.scenarios_confirmed.split(",") if i}
            scenarios = tuple(
                (text, index in ticked)
                for index, text in enumerate(checklist.user_validation.scenarios)
            )
        found.append(
            Answer(
                application=target.application.slug,
                # The version it answered for is the current one only while it still counts.
                version_label=target.version_label if signoff.stale_since_revision is None else "",
                section=section,
                what=what,
                decision=signoff.decision,
                label=labels.decision_label(signoff.decision),
                comment=signoff.comment,
                evidence=signoff.evidence,
                scenarios=scenarios,
                signed_at=signoff.signed_at,
                counts=signoff.stale_since_revision is None,
            )
        )
    return tuple(found)


@dataclass(frozen=True)
class SignoffDeadEnd:
    """Why a sign-off link no longer works, and everything the page says about it. Only
    `reason` and `message` are known when the token itself is expired or not genuine."""

    reason: str
    message: str
    signer: str = ""
    package_key: str = ""
    package_state: str = ""
    manager: str = ""  # who assembled the release: who to tell about a wrong answer
    link_revision: int = 0
    package_revision: int = 0
    used_at: datetime | None = None
    ended_at: datetime | None = None  # when the release was released or cancelled
    answers: tuple[Answer, ...] = ()
    changes: tuple[boards.RevisionEntry, ...] = ()  # revisions made after the link was sent
    newer_link_at: datetime | None = None
    newer_link_used_at: datetime | None = None
    waiting: int = 0  # requests of this person still waiting for an answer

    @property
    def stale(self) -> tuple[str, ...]:
        """Applications whose answers on this link no longer count."""
        return tuple(sorted({a.application for a in self.answers if not a.counts}))


def signoff_dead_end(
    session: Session,
    token: str,
    error: LinkUnusable | TokenInvalid,
    *,
    settings: LinkSettings,
    clock: Clock,
) -> SignoffDeadEnd:
    try:
        link = load_link(session, token, tokens=settings.tokens(clock), model=SignoffLink)
    except (LinkUnusable, TokenInvalid):
        return SignoffDeadEnd(_reason(error), error.message)
    package = link.package
    answered = session.scalars(
        sa.select(Signoff)
        .join(SignoffRequest, SignoffRequest.id == Signoff.request_id)
        .where(SignoffRequest.link_id == link.id)
        .order_by(Signoff.id)
    ).all()
    revisions = session.scalars(
        sa.select(PackageRevision)
        .where(
            PackageRevision.package_id == package.id,
            PackageRevision.revision > link.revision,
            PackageRevision.signed.is_(True),  # only what signers sign supersedes a link
        )
        .order_by(PackageRevision.revision)
    ).all()
    newer = session.scalar(
        sa.select(SignoffLink)
        .where(
            SignoffLink.package_id == package.id,
            SignoffLink.signer == link.signer,
            SignoffLink.id > link.id,
        )
        .order_by(SignoffLink.id.desc())
        .limit(1)
    )
    waiting = session.scalar(
        sa.select(sa.func.count())
        .select_from(SignoffRequest)
        .where(
            SignoffRequest.package_id == package.id,
            SignoffRequest.signer == link.signer,
            SignoffRequest.state == signoff_rules.PENDING,
        )
    )
    return SignoffDeadEnd(
        reason=_reason(error),
        message=error.message,
        signer=link.signer,
        package_key=package.key,
        package_state=package.state,
        manager=package.assembled_by,
        link_revision=link.revision,
        package_revision=package.revision,
        used_at=link.used_at,
        ended_at=package.released_at or package.cancelled_at,
        answers=answers(answered),
        changes=tuple(
            boards.revision_entry(r.revision, r.actor, r.created_at, json.loads(r.changes), ())
            for r in revisions
        ),
        newer_link_at=newer.created_at if newer else None,
        newer_link_used_at=newer.used_at if newer else None,
        waiting=(waiting or 0) if package.state == lifecycle.IN_REVIEW else 0,
    )


# --- review links ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewDeadEnd:
    reason: str
    message: str
    version: int = 0
    owner: str = ""
    # The review that settled what the link asked: the holder's own, or another reviewer's.
    review: GovernanceReview | None = None
    newer_link_at: datetime | None = None
    newer_link_version: int = 0


def review_dead_end(
    session: Session,
    token: str,
    error: LinkUnusable | TokenInvalid,
    *,
    settings: GovernanceSettings,
    clock: Clock,
) -> ReviewDeadEnd:
    try:
        link = load_link(session, token, tokens=settings.review_tokens(clock), model=ReviewLink)
    except (LinkUnusable, TokenInvalid):
        return ReviewDeadEnd(_reason(error), error.message)
    version = link.checklist_version
    reviews = sa.select(GovernanceReview).order_by(
        GovernanceReview.reviewed_at.desc(), GovernanceReview.id.desc()
    )
    if link.state == USED:
        reviews = reviews.where(
            GovernanceReview.checklist_version_id == version.id,
            GovernanceReview.reviewer == link.reviewer,
        )
    elif link.reason == NEW_VERSION:
        reviews = reviews.where(GovernanceReview.checklist_version_id == version.id)
    else:  # a scheduled review is done by any approving review of the application
        reviews = reviews.join(ChecklistVersion).where(
            ChecklistVersion.application_id == version.application_id,
            GovernanceReview.outcome.in_(APPROVING_OUTCOMES),
            GovernanceReview.reviewed_at >= link.created_at,
        )
    newer = session.scalar(
        sa.select(ReviewLink)
        .join(ChecklistVersion)
        .where(
            ReviewLink.reviewer == link.reviewer,
            ReviewLink.id > link.id,
            ChecklistVersion.application_id == version.application_id,
        )
        .order_by(ReviewLink.id.desc())
        .limit(1)
    )
    decided = session.scalar(reviews.limit(1)) if _reason(error) in ("used", "decided") else None
    checklist = checklist_of(version)
    return ReviewDeadEnd(
        reason=_reason(error),
        message=error.message,
        version=version.version,
        owner=checklist.owner,
        review=decided,
        newer_link_at=newer.created_at if newer else None,
        newer_link_version=newer.checklist_version.version if newer else 0,
    )


# --- report links ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportDeadEnd:
    reason: str
    message: str
    package_key: str = ""
    manager: str = ""
    reviewers: tuple[str, ...] = ()  # of the release's checklists: who else to tell
    finding: Finding | None = None


def report_dead_end(
    session: Session,
    token: str,
    error: LinkUnusable | TokenInvalid,
    *,
    settings: GovernanceSettings,
    clock: Clock,
) -> ReportDeadEnd:
    try:
        link = load_link(session, token, tokens=settings.report_tokens(clock), model=ReportLink)
    except (LinkUnusable, TokenInvalid):
        return ReportDeadEnd(_reason(error), error.message)
    package = link.package
    reviewers = sorted(
        {
            reviewer
            for target in package.applications
            if target.checklist_version is not None and target.removed_in_revision is None
            for reviewer in checklist_of(target.checklist_version).governance.reviewers
        }
    )
    return ReportDeadEnd(
        reason=_reason(error),
        message=error.message,
        package_key=package.key,
        manager=package.assembled_by,
        reviewers=tuple(reviewers),
        finding=session.scalar(sa.select(Finding).where(Finding.report_link_id == link.id)),
    )
