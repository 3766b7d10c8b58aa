"""Reminders before a learning review or an action item falls due: once each, by the worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import CursorResult, orm
from sqlalchemy.orm import Session

from gatekeeper.db.models import ActionItem, ChecklistVersion, LearningReview
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain import governance, learning
from gatekeeper.domain.clock import Clock
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, checklists
from gatekeeper.services.governance import GovernanceSettings


def _claim(
    session: Session, model: type[LearningReview | ActionItem], row_id: int, now: datetime
) -> bool:
    """Mark the reminder sent unless another worker already did: a conditional UPDATE, so
    exactly one worker sends it."""
    # An UPDATE's result is a CursorResult (rowcount); execute() is typed as Result.
    claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(model)
        .where(model.id == row_id, model.reminded_at.is_(None))
        .values(reminded_at=now)
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def _reviewers(session: Session, application_id: int) -> tuple[str, ...]:
    """The governance reviewers the application's newest approved checklist names."""
    version = session.scalar(
        sa.select(ChecklistVersion)
        .where(
            ChecklistVersion.application_id == application_id,
            ChecklistVersion.state == governance.APPROVED,
        )
        .order_by(ChecklistVersion.version.desc())
        .limit(1)
    )
    return checklists.checklist_of(version).governance.reviewers if version is not None else ()


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def send_learning_reminders(
    session: Session, *, settings: GovernanceSettings, clock: Clock
) -> dict[str, int]:
    """Remind the release manager and the checklist's reviewers of an open review, and an
    action item's owners, once, from a lead time before each falls due."""
    now = clock.now()
    counts = {"learning_reviews_due": 0, "action_items_due": 0}
    loaded = (orm.joinedload(LearningReview.package), orm.joinedload(LearningReview.application))
    reviews = session.scalars(
        sa.select(LearningReview)
        .options(*loaded)
        .where(
            LearningReview.state == learning.OPEN,
            LearningReview.reminded_at.is_(None),
            LearningReview.due_at <= now + learning.REVIEW_REMINDER_LEAD,
        )
        .order_by(LearningReview.id)
    ).all()
    for review in reviews:
        if not _claim(session, LearningReview, review.id, now):
            continue
        ref = learning.review_ref(review.id)
        people = sorted({review.package.assembled_by, *_reviewers(session, review.application_id)})
        context = {
            "ref": ref,
            "application": review.application.slug,
            "package": review.package.key,
            "due": _when(review.due_at),
            "trigger": review.trigger,
            "review_url": f"{settings.base_url}/learning-reviews/{review.id}",
        }
        for person in people:
            queue_email(
                session, to=person, template="learning_review_due", context=context, now=now
            )
        audit.record(
            session,
            action="learning_review.reminded",
            actor=audit.SYSTEM,
            subject=f"{ref} on {review.application.slug}",
            package=review.package.key,
            now=now,
            details={"review": ref, "due_at": review.due_at.isoformat(), "to": people},
        )
        counts["learning_reviews_due"] += 1
    items = session.scalars(
        sa.select(ActionItem)
        .options(orm.joinedload(ActionItem.review).options(*loaded))
        .where(
            ActionItem.state == learning.OPEN,
            ActionItem.reminded_at.is_(None),
            ActionItem.due_at <= now + learning.ITEM_REMINDER_LEAD,
        )
        .order_by(ActionItem.id)
    ).all()
    for item in items:
        if not _claim(session, ActionItem, item.id, now):
            continue
        review = item.review
        ref = learning.review_ref(review.id)
        queue_email(
            session,
            to=item.owner,
            template="action_item_due",
            context={
                "ref": ref,
                "application": review.application.slug,
                "title": item.title,
                "kind": item.kind,
                "due": _when(item.due_at),
                "findings": ", ".join(finding_rules.finding_ref(i) for i in item.finding_ids),
                "review_url": f"{settings.base_url}/learning-reviews/{review.id}",
            },
            now=now,
        )
        audit.record(
            session,
            action="action_item.reminded",
            actor=audit.SYSTEM,
            subject=f"{ref} on {review.application.slug}",
            package=review.package.key,
            now=now,
            details={"review": ref, "item": item.id, "due_at": item.due_at.isoformat()},
        )
        counts["action_items_due"] += 1
    return counts
