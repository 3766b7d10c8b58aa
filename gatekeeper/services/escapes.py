"""Escape analysis from aggregates: per checklist item, how often releases evaluated it, caught
something with it (it failed before release), found it not applicable, and let a finding escape
past it; change failure rate per application and month; sign-off lead time; findings by class.

Every figure comes from a GROUP BY query: the number of queries does not grow with the data."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    Application,
    ChecklistVersion,
    Finding,
    Package,
    PackageApplication,
    Signoff,
    SignoffRequest,
)
from gatekeeper.domain import escape as escape_rules
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain import governance as governance_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.checklist import Checklist
from gatekeeper.services.spreadsheet import cell


@dataclass(frozen=True)
class ItemStats:
    """One checklist item (section.item of an application) over its released history."""

    application: str
    section_id: str
    item_id: str
    text: str  # from the newest approved version; empty when no approved version has it
    evaluated: int  # released packages in which someone decided the item
    failed: int  # of those, how many had a `fail` on it at any revision before release
    not_applicable: int  # of those, how many released with it standing not applicable
    escaped: int  # findings classified as escaped past it
    never_fires: bool

    @property
    def ref(self) -> str:
        return f"{self.section_id}.{self.item_id}"

    @property
    def retired(self) -> bool:
        return not self.text


@dataclass(frozen=True)
class Gap:
    """An uncovered finding still waiting for the checklist to change: a new item's candidate."""

    ref: str
    finding_id: int
    application: str
    package: str | None
    what_happened: str
    reported_at: datetime


@dataclass(frozen=True)
class MonthRate:
    application: str
    month: str  # YYYY-MM, UTC
    released: int
    failed: int

    @property
    def rate(self) -> float | None:
        return escape_rules.failure_rate(self.failed, self.released)


@dataclass(frozen=True)
class LeadTime:
    application: str
    decisions: int
    median_hours: float | None


def _newest_approved(session: Session, application_id: int | None) -> dict[str, Checklist]:
    newest = (
        sa.select(ChecklistVersion.application_id, sa.func.max(ChecklistVersion.version).label("v"))
        .where(ChecklistVersion.state == governance_rules.APPROVED)
        .group_by(ChecklistVersion.application_id)
        .subquery()
    )
    query = (
        sa.select(Application.slug, ChecklistVersion.content)
        .join(Application, Application.id == ChecklistVersion.application_id)
        .join(
            newest,
            sa.and_(
                newest.c.application_id == ChecklistVersion.application_id,
                newest.c.v == ChecklistVersion.version,
            ),
        )
    )
    if application_id is not None:
        query = query.where(ChecklistVersion.application_id == application_id)
    return {
        slug: Checklist.from_canonical(json.loads(content))
        for slug, content in session.execute(query)
    }


def item_stats(
    session: Session, *, window: int, application_id: int | None = None
) -> list[ItemStats]:
    """Per item: three queries, whatever the number of items, releases and findings.

    A release evaluated an item when someone recorded a decision on it in that package (at any
    revision) and the package was released with the application in it. It failed there when any
    of those decisions was `fail` (the gate's ITEM_FAILED), even one later made stale by a new
    revision: the item caught something before release. It was not applicable when a
    `not_applicable` decision still stood (was not stale) at release."""
    per_release = (
        sa.select(
            PackageApplication.application_id.label("application_id"),
            Signoff.section_id.label("section_id"),
            Signoff.item_id.label("item_id"),
            Package.id.label("package_id"),
            sa.func.max(Package.released_at).label("released_at"),
            sa.func.max(sa.case((Signoff.decision == signoff_rules.FAIL, 1), else_=0)).label(
                "failed"
            ),
            sa.func.max(
                sa.case(
                    (
                        sa.and_(
                            Signoff.decision == signoff_rules.NOT_APPLICABLE,
                            Signoff.stale_since_revision.is_(None),
                        ),
                        1,
                    ),
                    else_=0,
                )
            ).label("na"),
        )
        .join(PackageApplication, PackageApplication.id == Signoff.package_application_id)
        .join(Package, Package.id == PackageApplication.package_id)
        .where(
            Package.state == lifecycle.RELEASED,
            PackageApplication.removed_in_revision.is_(None),
            Signoff.kind == signoff_rules.ITEM,
        )
        .group_by(
            PackageApplication.application_id, Signoff.section_id, Signoff.item_id, Package.id
        )
    )
    if application_id is not None:
        per_release = per_release.where(PackageApplication.application_id == application_id)
    releases = per_release.subquery()
    ranked = sa.select(
        releases,
        sa.func.row_number()
        .over(
            partition_by=(releases.c.application_id, releases.c.section_id, releases.c.item_id),
            order_by=(releases.c.released_at.desc(), releases.c.package_id.desc()),
        )
        .label("recency"),
    ).subquery()
    recent = ranked.c.recency <= window
    history = {
        (slug, section, item): (evaluated, failed, na, recent_evaluated, recent_failed)
        for slug, section, item, evaluated, failed, na, recent_evaluated, recent_failed in (
            session.execute(
                sa.select(
                    Application.slug,
                    ranked.c.section_id,
                    ranked.c.item_id,
                    sa.func.count(),
                    sa.func.sum(ranked.c.failed),
                    sa.func.sum(ranked.c.na),
                    sa.func.sum(sa.case((recent, 1), else_=0)),
                    sa.func.sum(sa.case((recent, ranked.c.failed), else_=0)),
                )
                .join(Application, Application.id == ranked.c.application_id)
                .group_by(Application.slug, ranked.c.section_id, ranked.c.item_id)
            )
        )
    }
    escapes_query = (
        sa.select(
            Application.slug, Finding.escaped_section_id, Finding.escaped_item_id, sa.func.count()
        )
        .join(Application, Application.id == Finding.application_id)
        .where(Finding.classification == finding_rules.ESCAPED_PAST)
        .group_by(Application.slug, Finding.escaped_section_id, Finding.escaped_item_id)
    )
    if application_id is not None:
        escapes_query = escapes_query.where(Finding.application_id == application_id)
    escaped = {(slug, s, i): n for slug, s, i, n in session.execute(escapes_query)}
    texts = {
        (slug, section.id, item.id): item.text
        for slug, checklist in _newest_approved(session, application_id).items()
        for section, item in checklist.items()
    }
    rows = []
    for key in sorted({*texts, *history, *escaped}):
        evaluated, failed, na, recent_evaluated, recent_failed = history.get(key, (0, 0, 0, 0, 0))
        rows.append(
            ItemStats(
                application=key[0],
                section_id=key[1],
                item_id=key[2],
                text=texts.get(key, ""),
                evaluated=evaluated,
                failed=int(failed),
                not_applicable=int(na),
                escaped=escaped.get(key, 0),
                never_fires=escape_rules.never_fires(
                    int(recent_evaluated), int(recent_failed), window
                ),
            )
        )
    return rows


def gaps(session: Session, *, application_id: int | None = None) -> list[Gap]:
    """Uncovered findings the checklist has not yet changed for (accepted, not addressed)."""
    query = (
        sa.select(Finding, Application.slug, Package.key)
        .join(Application, Application.id == Finding.application_id)
        .outerjoin(Package, Package.id == Finding.package_id)
        .where(
            Finding.classification == finding_rules.UNCOVERED,
            Finding.state == finding_rules.ACCEPTED,
        )
        .order_by(Finding.reported_at.desc(), Finding.id.desc())
    )
    if application_id is not None:
        query = query.where(Finding.application_id == application_id)
    return [
        Gap(f.ref, f.id, slug, key, f.what_happened, f.reported_at)
        for f, slug, key in session.execute(query)
    ]


def _release_month(session: Session) -> sa.ColumnElement[str]:
    """The UTC month (YYYY-MM) of a package's release, in the database's own dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", Package.released_at), "YYYY-MM")
    # SQLite keeps UTC as naive text (see UTCDateTime).
    return sa.func.strftime("%Y-%m", Package.released_at)


def change_failure_rates(session: Session) -> list[MonthRate]:
    """Per application and month of release: released packages that shipped it, and those
    with at least one finding reported against it there (any class, triaged or not: a problem
    reached users). One query."""
    reported = (
        sa.select(Finding.package_id, Finding.application_id)
        .where(Finding.package_id.is_not(None))
        .distinct()
        .subquery()
    )
    month = _release_month(session).label("month")
    query = (
        sa.select(
            Application.slug,
            month,
            sa.func.count(),
            sa.func.sum(sa.case((reported.c.package_id.is_not(None), 1), else_=0)),
        )
        .select_from(PackageApplication)
        .join(Package, Package.id == PackageApplication.package_id)
        .join(Application, Application.id == PackageApplication.application_id)
        .outerjoin(
            reported,
            sa.and_(
                reported.c.package_id == PackageApplication.package_id,
                reported.c.application_id == PackageApplication.application_id,
            ),
        )
        .where(
            Package.state == lifecycle.RELEASED,
            PackageApplication.removed_in_revision.is_(None),
        )
        .group_by(Application.slug, month)
        .order_by(Application.slug, month)
    )
    return [
        MonthRate(slug, month, released, int(failed or 0))
        for slug, month, released, failed in session.execute(query)
    ]


def lead_times(session: Session) -> list[LeadTime]:
    """Median time from a sign-off request to its decision, per application. One query; the
    median is taken here because SQLite has no percentile aggregate."""
    durations: dict[str, list[float]] = {}
    for slug, requested, decided in session.execute(
        sa.select(Application.slug, SignoffRequest.created_at, Signoff.signed_at)
        .join(SignoffRequest, SignoffRequest.id == Signoff.request_id)
        .join(PackageApplication, PackageApplication.id == Signoff.package_application_id)
        .join(Application, Application.id == PackageApplication.application_id)
    ):
        durations.setdefault(slug, []).append(max((decided - requested).total_seconds(), 0.0))
    return [
        LeadTime(slug, len(values), escape_rules.median_hours(values))
        for slug, values in sorted(durations.items())
    ]


def findings_by_class(session: Session) -> dict[str, int]:
    """How many findings each class has, in the pages' words (open ones: not triaged yet)."""
    counts: dict[str, int] = {}
    for classification, state, count in session.execute(
        sa.select(Finding.classification, Finding.state, sa.func.count()).group_by(
            Finding.classification, Finding.state
        )
    ):
        label = finding_rules.class_label(classification, state)
        counts[label] = counts.get(label, 0) + count
    order = [*finding_rules.CLASS_LABELS.values(), "not classified", "not triaged yet"]
    return {label: counts[label] for label in order if label in counts}


RATE_COLUMNS = ("application", "month", "released_packages", "with_findings", "rate")


def rates_csv(rates: Iterable[MonthRate]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(RATE_COLUMNS)
    for r in rates:
        rate = "" if r.rate is None else f"{r.rate:.3f}"
        writer.writerow([cell(v) for v in (r.application, r.month, r.released, r.failed, rate)])
    return out.getvalue()
