"""Learning reviews: opened by a high-impact finding or by hand, with a timeline from the audit
chain, contributing factors, owned action items, and a Markdown export."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    ActionItem,
    Application,
    ChecklistVersion,
    Finding,
    LearningReview,
    Package,
    PackageApplication,
    TimelineEntry,
)
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain import learning
from gatekeeper.domain.errors import NotFound, ValidationFailed
from gatekeeper.services import audit, labels, packages, users


def _event(
    session: Session,
    review: LearningReview,
    action: str,
    actor: str,
    now: datetime,
    **details: object,
) -> None:
    audit.record(
        session,
        action=action,
        actor=actor,
        subject=f"{learning.review_ref(review.id)} on {review.application.slug}",
        package=review.package.key,
        now=now,
        details={"review": learning.review_ref(review.id), **details},
    )


def open_review(
    session: Session,
    package: Package,
    application_id: int,
    *,
    trigger: str,
    actor: str,
    now: datetime,
    due_hours: int = learning.DEFAULT_DUE_HOURS,
    findings: Sequence[Finding] = (),
) -> LearningReview:
    """A new open review of what happened to `application_id` in `package`, due in `due_hours`."""
    review = LearningReview(
        package_id=package.id,
        application_id=application_id,
        trigger=learning.clean_text(trigger, "what triggered the review", 200),
        opened_by=actor,
        opened_at=now,
        due_at=learning.review_due(now, due_hours),
        state=learning.OPEN,
        statement="",
        factors="",
    )
    review.findings.extend(findings)
    session.add(review)
    session.flush()
    _event(session, review, "learning_review.opened", actor, now, trigger=review.trigger)
    return review


def open_by_hand(
    session: Session,
    package_key: str,
    application: str,
    *,
    reason: str,
    actor: str,
    now: datetime,
    due_hours: int = learning.DEFAULT_DUE_HOURS,
) -> LearningReview:
    """A review a release manager or governance reviewer opens for one application of a package."""
    require_writer(session, actor)
    package = packages.get_package(session, package_key)
    included = session.scalar(
        sa.select(PackageApplication.application_id)
        .join(Application, Application.id == PackageApplication.application_id)
        .where(
            PackageApplication.package_id == package.id,
            PackageApplication.removed_in_revision.is_(None),
            Application.slug == application.strip().lower(),
        )
    )
    if included is None:
        raise NotFound(f"package {package.key} has no application {application.strip()!r}")
    return open_review(
        session,
        package,
        included,
        trigger=f"opened by hand: {learning.clean_text(reason, 'why the review is opened', 170)}",
        actor=actor,
        now=now,
        due_hours=due_hours,
    )


def require_writer(session: Session, actor: str) -> None:
    """`actor` is an active staff account with a role that may write learning reviews."""
    user = users.find_active(session, actor)
    learning.require_writer(user.role if user is not None else None)


def list_reviews(
    session: Session, *, assembled_by: str | None = None, package: str | None = None
) -> list[LearningReview]:
    """Open reviews first (soonest due), then completed ones, newest first; with `assembled_by`,
    only reviews of the packages that address assembled; with `package`, of that package."""
    query = (
        sa.select(LearningReview)
        .join(Package, Package.id == LearningReview.package_id)
        .options(
            orm.contains_eager(LearningReview.package), orm.joinedload(LearningReview.application)
        )
    )
    if assembled_by is not None:
        query = query.where(Package.assembled_by == assembled_by)
    if package is not None:
        query = query.where(Package.key == package)
    return list(
        session.scalars(
            query.order_by(
                (LearningReview.state == learning.OPEN).desc(),
                sa.case(
                    (LearningReview.state == learning.OPEN, LearningReview.due_at),
                ).asc(),
                LearningReview.id.desc(),
            )
        )
    )


def reviews_of_package(session: Session, package_id: int) -> list[LearningReview]:
    return list(
        session.scalars(
            sa.select(LearningReview)
            .where(LearningReview.package_id == package_id)
            .order_by(LearningReview.id)
        )
    )


def overdue(session: Session, now: datetime) -> list[tuple[LearningReview, ActionItem | None]]:
    """Open reviews past due, then open action items past due with their review: for the
    governance dashboard (two queries, whatever their number)."""
    loaded = (
        orm.joinedload(LearningReview.package),
        orm.joinedload(LearningReview.application),
    )
    late_reviews = session.scalars(
        sa.select(LearningReview)
        .options(*loaded)
        .where(LearningReview.state == learning.OPEN, LearningReview.due_at <= now)
        .order_by(LearningReview.due_at, LearningReview.id)
    ).all()
    late_items = session.scalars(
        sa.select(ActionItem)
        .options(orm.joinedload(ActionItem.review).options(*loaded))
        .where(ActionItem.state == learning.OPEN, ActionItem.due_at <= now)
        .order_by(ActionItem.due_at, ActionItem.id)
    ).all()
    rows: list[tuple[LearningReview, ActionItem | None]] = [(r, None) for r in late_reviews]
    rows.extend((item.review, item) for item in late_items)
    return rows


def edit_review(
    session: Session,
    review: LearningReview,
    *,
    statement: str,
    factors: str,
    actor: str,
    now: datetime,
) -> LearningReview:
    """Save a draft of the statement and the factors; either may still be empty."""
    learning.require_open(review.state)
    review.statement = learning.clean_text(statement, "what happened", required=False)
    review.factors = learning.clean_text(factors, "the contributing factors", required=False)
    session.flush()
    _event(session, review, "learning_review.edited", actor, now)
    return review


def get_item(session: Session, review: LearningReview, item_id: int) -> ActionItem:
    """One of `review`'s action items: another review's item is not found."""
    item = session.scalar(
        sa.select(ActionItem).where(ActionItem.id == item_id, ActionItem.review_id == review.id)
    )
    if item is None:
        raise NotFound(f"{learning.review_ref(review.id)} has no action item {item_id}")
    return item


def findings_named(session: Session, review: LearningReview, refs: str) -> list[Finding]:
    """The findings `refs` ("F-1, F-3") names, each a finding of the review's application."""
    wanted = [part for part in refs.replace(",", " ").split() if part]
    if len(wanted) > 50:
        raise ValidationFailed("name at most 50 findings")
    ids = [finding_rules.parse_ref(part) for part in wanted]
    if None in ids:
        raise ValidationFailed("name findings by their ids, such as F-12")
    found = session.scalars(
        sa.select(Finding).where(
            Finding.id.in_(ids), Finding.application_id == review.application_id
        )
    ).all()
    if len(found) != len(set(ids)):
        raise ValidationFailed(f"name findings of {review.application.slug} only")
    return list(found)


def get_review(session: Session, review_id: int) -> LearningReview:
    found = session.get(LearningReview, review_id)
    if found is None:
        raise NotFound(f"no learning review {learning.review_ref(review_id)}")
    return found


def find_review(session: Session, ref: str) -> LearningReview:
    """The review `LR-n` names."""
    text = ref.strip().upper()
    number = text.removeprefix(learning.LEARNING_REVIEW_PREFIX)
    if not number.isdigit() or len(number) > 18:
        raise NotFound(f"no learning review {ref}")
    return get_review(session, int(number))


def add_timeline_entry(
    session: Session,
    review: LearningReview,
    *,
    occurred_at: datetime,
    text: str,
    actor: str,
    now: datetime,
) -> TimelineEntry:
    learning.require_open(review.state)
    entry = TimelineEntry(
        review_id=review.id,
        occurred_at=occurred_at,
        text=learning.clean_text(text, "what happened at that moment"),
        added_by=actor,
    )
    session.add(entry)
    session.flush()
    _event(session, review, "learning_review.entry_added", actor, now)
    return entry


def complete_review(
    session: Session,
    review: LearningReview,
    *,
    statement: str,
    factors: str,
    actor: str,
    now: datetime,
) -> LearningReview:
    """Record the factual statement and the contributing factors; the review is no longer due."""
    review.state = learning.next_review_state(review.state, learning.COMPLETE)
    review.statement = learning.clean_text(statement, "what happened and its impact")
    review.factors = learning.clean_text(factors, "the contributing factors")
    review.completed_at = now
    session.flush()
    _event(session, review, "learning_review.completed", actor, now)
    return review


def add_action_item(
    session: Session,
    review: LearningReview,
    *,
    title: str,
    owner: str,
    due_at: datetime,
    kind: str,
    actor: str,
    now: datetime,
    findings: Iterable[Finding] = (),
) -> ActionItem:
    """A fix owned by a team (an address: ownership of the fix, not blame for the failure)."""
    if kind not in learning.ITEM_KINDS:
        raise ValidationFailed(f"an action item is one of: {', '.join(learning.ITEM_KINDS)}")
    linked = sorted({f.id for f in findings})
    if kind == learning.CHECKLIST_CHANGE and not linked:
        raise ValidationFailed("a checklist change names the findings it addresses")
    item = ActionItem(
        review_id=review.id,
        title=learning.clean_text(title, "the action item's title", learning.MAX_TITLE_CHARS),
        owner=learning.clean_text(owner, "the owning team's address", 254).lower(),
        due_at=due_at,
        kind=kind,
        state=learning.OPEN,
        finding_ids=linked,
        rationale="",
    )
    session.add(item)
    session.flush()
    _event(session, review, "action_item.added", actor, now, item=item.id, owner=item.owner)
    return item


def close_action_item(
    session: Session,
    item: ActionItem,
    *,
    action: str,
    actor: str,
    now: datetime,
    rationale: str = "",
) -> ActionItem:
    """Done, or dropped with a rationale. A checklist change is done by its approved version."""
    item.state = learning.next_item_state(item.state, action, rationale)
    item.rationale = rationale.strip()
    item.closed_at = now
    item.closed_by = actor
    session.flush()
    _event(session, item.review, f"action_item.{item.state}", actor, now, item=item.id)
    return item


def on_findings_addressed(
    session: Session,
    version: ChecklistVersion,
    addressed: Sequence[Finding],
    *,
    actor: str,
    now: datetime,
) -> list[ActionItem]:
    """Open checklist-change items whose findings an approved version has now all addressed."""
    if not addressed:
        return []
    items = session.scalars(
        sa.select(ActionItem)
        .join(LearningReview, LearningReview.id == ActionItem.review_id)
        .where(
            ActionItem.state == learning.OPEN,
            ActionItem.kind == learning.CHECKLIST_CHANGE,
            LearningReview.application_id == version.application_id,
        )
        .order_by(ActionItem.id)
    ).all()
    ids = {i for item in items for i in item.finding_ids}
    query = sa.select(Finding.id, Finding.state).where(Finding.id.in_(sorted(ids)))
    states: dict[int, str] = dict(session.execute(query).all())
    done = []
    for item in items:
        if all(states.get(i) == finding_rules.ADDRESSED for i in item.finding_ids):
            done.append(
                close_action_item(
                    session,
                    item,
                    action=learning.FINISH,
                    actor=f"{actor} (checklist version {version.version})",
                    now=now,
                )
            )
    return done


def due_for_gate(
    session: Session, application_ids: Sequence[int]
) -> dict[int, tuple[learning.Overdue, ...]]:
    """Open reviews (owned by the package's release manager) and open action items per
    application, due or not yet, for the gate: one query."""
    if not application_ids:
        return {}
    ids = sorted(set(application_ids))
    reviews = (
        sa.select(
            sa.literal("review").label("kind"),
            LearningReview.id,
            LearningReview.trigger.label("title"),
            LearningReview.due_at,
            Package.assembled_by.label("owner"),
            LearningReview.application_id,
        )
        .join(Package, Package.id == LearningReview.package_id)
        .where(LearningReview.application_id.in_(ids), LearningReview.state == learning.OPEN)
    )
    items = (
        sa.select(
            sa.literal("action_item").label("kind"),
            ActionItem.id,
            ActionItem.title,
            ActionItem.due_at,
            ActionItem.owner,
            LearningReview.application_id,
        )
        .join(LearningReview, LearningReview.id == ActionItem.review_id)
        .where(LearningReview.application_id.in_(ids), ActionItem.state == learning.OPEN)
    )
    found: dict[int, list[learning.Overdue]] = {}
    for kind, row_id, title, due_at, owner, application_id in session.execute(
        sa.union_all(reviews, items)
    ):
        ref = learning.review_ref(row_id) if kind == "review" else f"AI-{row_id}"
        found.setdefault(application_id, []).append(
            learning.Overdue(kind, ref, title, due_at, owner)
        )
    return {k: tuple(v) for k, v in found.items()}


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def timeline(session: Session, review: LearningReview) -> list[tuple[datetime, str]]:
    """The package's audit chain in readable lines, with the entries people added."""
    lines = [
        (event.occurred_at, f"{labels.action_label(event.action)}: {event.subject} ({event.actor})")
        for event in audit.package_events(session, review.package.key)
    ]
    lines.extend((e.occurred_at, f"{e.text} (added by {e.added_by})") for e in review.entries)
    return sorted(lines, key=lambda line: line[0])


def export_markdown(session: Session, review: LearningReview) -> str:
    """The review as Markdown to share: everything people typed is escaped."""
    md = learning.md
    ref = learning.review_ref(review.id)
    out = [
        f"# Learning review {ref}: {md(review.application.slug)} in release "
        f"{md(review.package.key)}",
        "",
        f"- State: {review.state}",
        f"- Opened: {_when(review.opened_at)} by {md(review.opened_by)} ({md(review.trigger)})",
        f"- Due: {_when(review.due_at)}",
        "",
        "## What happened",
        "",
        md(review.statement) if review.statement else "_Not written yet._",
        "",
        "## Timeline",
        "",
    ]
    out.extend(f"- {_when(at)}: {md(text)}" for at, text in timeline(session, review))
    out += ["", "## Contributing factors", ""]
    out.extend(f"> {md(prompt)}" for prompt in learning.PROMPTS)
    out += ["", md(review.factors) if review.factors else "_Not written yet._", ""]
    out += ["## Findings covered", ""]
    out.extend(f"- {f.ref}: {md(f.what_happened)}" for f in review.findings)
    if not review.findings:
        out.append("_None._")
    out += ["", "## Action items", ""]
    for item in review.action_items:
        refs = ", ".join(finding_rules.finding_ref(i) for i in item.finding_ids)
        closed = f", {item.state} {_when(item.closed_at)}" if item.closed_at else ""
        why = f": {md(item.rationale)}" if item.rationale else ""
        out.append(
            f"- {md(item.title)} ({item.kind}; owner {md(item.owner)}; due {_when(item.due_at)}; "
            f"{item.state}{closed}{why}){f' addresses {refs}' if refs else ''}"
        )
    if not review.action_items:
        out.append("_None._")
    return "\n".join(out) + "\n"
