"""Checklist governance at a glance: settings of its emailed links, the dashboard and its CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    Application,
    ChecklistVersion,
    Finding,
    GovernanceReview,
    PackageApplication,
    Signoff,
)
from gatekeeper.domain import escape as escape_rules
from gatekeeper.domain import finding as finding_rules
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import governance, learning
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.signoff import KEY_USER, POSITIVE
from gatekeeper.services.spreadsheet import cell
from gatekeeper.signing import TokenService

REVIEW_PURPOSE = "review"
REPORT_PURPOSE = "report"
TRIAGE_PURPOSE = "triage"
APPROVING_OUTCOMES = ("approved", "reaffirmed")


@dataclass(frozen=True)
class GovernanceSettings:
    """Emailed review, report and triage links, and the review and finding clocks."""

    base_url: str
    secret_keys: tuple[str, ...]
    review_ttl: timedelta = timedelta(days=30)
    # Problems often surface weeks after a release; the link stays usable that long.
    report_ttl: timedelta = timedelta(days=60)
    triage_ttl: timedelta = timedelta(days=30)
    review_lead: timedelta = timedelta(days=14)
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER
    # How gates read an overdue review: a review decision is checked against the gates it moves.
    overdue_policy: str = "block"
    never_fires_releases: int = escape_rules.DEFAULT_NEVER_FIRES_RELEASES
    learning_review_due_hours: int = learning.DEFAULT_DUE_HOURS

    def review_tokens(self, clock: Clock) -> TokenService:
        return TokenService(
            self.secret_keys, REVIEW_PURPOSE, int(self.review_ttl.total_seconds()), clock
        )

    def report_tokens(self, clock: Clock) -> TokenService:
        return TokenService(
            self.secret_keys, REPORT_PURPOSE, int(self.report_ttl.total_seconds()), clock
        )

    def triage_tokens(self, clock: Clock) -> TokenService:
        return TokenService(
            self.secret_keys, TRIAGE_PURPOSE, int(self.triage_ttl.total_seconds()), clock
        )


@dataclass(frozen=True)
class ChecklistRow:
    """One line of the governance dashboard."""

    application: str
    title: str
    approved_version: int | None
    pending_versions: tuple[int, ...]
    reviewers: tuple[str, ...]
    review_every_days: int | None
    last_review_at: datetime | None
    last_review_outcome: str | None
    last_reviewer: str | None
    next_due_at: datetime | None
    standing: str
    open_findings: int
    accepted_findings: int
    oldest_open_finding_at: datetime | None
    key_users: int
    key_users_consulted: str
    last_consulted_at: datetime | None
    last_validated_at: datetime | None

    @property
    def overdue(self) -> bool:
        return self.standing == governance.REVIEW_OVERDUE


def _checklist(version: ChecklistVersion) -> Checklist:
    return Checklist.from_canonical(json.loads(version.content))


def dashboard(session: Session, *, now: datetime, lead: timedelta) -> list[ChecklistRow]:
    """Every checklist with its review standing, findings and key-user coverage: five queries."""
    applications = session.scalars(sa.select(Application).order_by(Application.slug)).all()
    versions: dict[int, list[ChecklistVersion]] = {}
    for version in session.scalars(
        sa.select(ChecklistVersion).order_by(
            ChecklistVersion.application_id, ChecklistVersion.version
        )
    ):
        versions.setdefault(version.application_id, []).append(version)
    latest_review: dict[int, tuple[datetime, str, str, str]] = {}
    for application_id, reviewed_at, outcome, reviewer, consulted in session.execute(
        sa.select(
            ChecklistVersion.application_id,
            GovernanceReview.reviewed_at,
            GovernanceReview.outcome,
            GovernanceReview.reviewer,
            GovernanceReview.consulted,
        )
        .join(ChecklistVersion, ChecklistVersion.id == GovernanceReview.checklist_version_id)
        .where(GovernanceReview.outcome.in_(APPROVING_OUTCOMES))
        .order_by(GovernanceReview.reviewed_at, GovernanceReview.id)
    ):
        # Ordered oldest first: the last row per application wins.
        latest_review[application_id] = (reviewed_at, outcome, reviewer, consulted)
    counts: dict[tuple[int, str], tuple[int, datetime]] = {
        (application_id, state): (count, oldest)
        for application_id, state, count, oldest in session.execute(
            sa.select(
                Finding.application_id,
                Finding.state,
                sa.func.count(),
                sa.func.min(Finding.reported_at),
            )
            .where(Finding.state.in_(finding_rules.UNRESOLVED))
            .group_by(Finding.application_id, Finding.state)
        )
    }
    validated: dict[int, datetime] = dict(
        session.execute(
            sa.select(PackageApplication.application_id, sa.func.max(Signoff.signed_at))
            .join(PackageApplication, PackageApplication.id == Signoff.package_application_id)
            .where(Signoff.kind == KEY_USER, Signoff.decision.in_(POSITIVE))
            .group_by(PackageApplication.application_id)
        ).all()
    )
    rows = []
    for application in applications:
        stored = versions.get(application.id, [])
        approved = [v for v in stored if v.state == governance.APPROVED]
        current = approved[-1] if approved else None
        checklist = _checklist(current) if current else None
        review = latest_review.get(application.id)
        last_at = review[0] if review and current else None
        due = governance.review_due_at(
            last_at, checklist.governance.review_every_days if checklist else 0
        )
        open_count, oldest = counts.get((application.id, finding_rules.OPEN), (0, None))
        rows.append(
            ChecklistRow(
                application=application.slug,
                title=application.title,
                approved_version=current.version if current else None,
                pending_versions=tuple(
                    v.version for v in stored if v.state == governance.PENDING_REVIEW
                ),
                reviewers=checklist.governance.reviewers if checklist else (),
                review_every_days=checklist.governance.review_every_days if checklist else None,
                last_review_at=review[0] if review else None,
                last_review_outcome=review[1] if review else None,
                last_reviewer=review[2] if review else None,
                next_due_at=due,
                standing=governance.review_standing(due, now, lead),
                open_findings=open_count,
                accepted_findings=counts.get((application.id, finding_rules.ACCEPTED), (0,))[0],
                oldest_open_finding_at=oldest,
                key_users=len(checklist.user_validation.key_users) if checklist else 0,
                key_users_consulted=review[3] if review else "",
                last_consulted_at=review[0] if review and review[3] else None,
                last_validated_at=validated.get(application.id),
            )
        )
    return rows


CSV_COLUMNS = (
    "application",
    "title",
    "approved_version",
    "pending_versions",
    "review_every_days",
    "reviewers",
    "last_review_at",
    "last_review_outcome",
    "last_reviewer",
    "next_review_due_at",
    "review_standing",
    "open_findings",
    "accepted_findings",
    "oldest_open_finding_at",
    "key_users",
    "key_users_last_consulted_at",
    "key_users_consulted",
    "key_users_last_validated_at",
)


def dashboard_csv(rows: Iterable[ChecklistRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                cell(value)
                for value in (
                    row.application,
                    row.title,
                    row.approved_version,
                    row.pending_versions,
                    row.review_every_days,
                    row.reviewers,
                    row.last_review_at,
                    row.last_review_outcome,
                    row.last_reviewer,
                    row.next_due_at,
                    row.standing,
                    row.open_findings,
                    row.accepted_findings,
                    row.oldest_open_finding_at,
                    row.key_users,
                    row.last_consulted_at,
                    row.key_users_consulted,
                    row.last_validated_at,
                )
            ]
        )
    return out.getvalue()
