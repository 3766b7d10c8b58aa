"""Deployments CI reports: stored with the gate as evaluated at that moment, and audited."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from gatekeeper.db.models import Deployment
from gatekeeper.domain import deployment as rules
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.population import Period
from gatekeeper.services import audit, packages


@dataclass(frozen=True)
class RecordedDeployment:
    """A stored deployment and what of it no open or released gate covered."""

    deployment: Deployment
    uncovered: tuple[rules.Uncovered, ...]

    @property
    def covered(self) -> bool:
        return not self.uncovered

    def to_dict(self) -> dict[str, Any]:
        row = self.deployment
        return {
            "id": row.id,
            "package": row.package.key,
            "environment": row.environment,
            "applications": json.loads(row.applications),
            "pipeline_url": row.pipeline_url,
            "reported_by": row.reported_by,
            "reported_at": row.reported_at.isoformat(),
            "gate": {
                "status": row.gate_status,
                "digest": row.gate_digest,
                "package_state": row.package_state,
                "revision": row.package_revision,
            },
            "covered": self.covered,
            "uncovered": [u.to_dict() for u in self.uncovered],
        }


def record_deployment(
    session: Session,
    key: str,
    report: rules.DeploymentReport,
    *,
    actor: str,
    clock: Clock,
    overdue_policy: str,
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER,
) -> RecordedDeployment:
    """Store what a pipeline deployed with the gate as it stands now, whatever that is: a
    deployment no gate covered is exactly what auditors must see, so it is recorded, not refused."""
    report = rules.check_report(report)
    # Locked like a release: the gate evaluated here is the one in force when this commits.
    package = packages.get_package(session, key, for_update=True)
    gate = packages.evaluate_gate(
        session,
        key,
        clock=clock,
        overdue_policy=overdue_policy,
        finding_warn_after=finding_warn_after,
    )
    held = {
        target.application.slug: target.version_label
        for target in package.applications
        if target.removed_in_revision is None
    }
    applications = [
        {**deployed.to_dict(), "package_version": held.get(deployed.application)}
        for deployed in report.applications
    ]
    now = clock.now()
    row = Deployment(
        package=package,
        environment=report.environment,
        applications=json.dumps(applications, sort_keys=True),
        pipeline_url=report.pipeline_url,
        reported_by=actor,
        reported_at=now,
        package_state=package.state,
        package_revision=package.revision,
        gate_status=gate.status,
        gate_digest=gate.digest,
        gate=json.dumps(gate.to_dict(), sort_keys=True),
    )
    session.add(row)
    session.flush()
    recorded = RecordedDeployment(row, uncovered_by_gate(row))
    audit.record_package_event(
        session,
        package,
        action="deployment.recorded",
        actor=actor,
        subject=f"deployment to {report.environment}",
        now=now,
        details={
            "deployment": row.id,
            "environment": report.environment,
            "applications": applications,
            "pipeline_url": report.pipeline_url,
            "gate_status": gate.status,
            "gate_digest": gate.digest,
            "package_state": package.state,
            "uncovered": [u.code for u in recorded.uncovered],
        },
    )
    return recorded


def uncovered_by_gate(row: Deployment) -> tuple[rules.Uncovered, ...]:
    """Judged from what was stored when the deployment was reported, never from today's state."""
    entries = json.loads(row.applications)
    return rules.uncovered(
        package=row.package.key,
        package_state=row.package_state,
        gate_status=row.gate_status,
        approved={
            e["application"]: e["package_version"]
            for e in entries
            if e["package_version"] is not None
        },
        deployed=[
            rules.DeployedApplication(e["application"], e["version"], e["sha"]) for e in entries
        ],
    )


def reported_in(session: Session, period: Period) -> Sequence[RecordedDeployment]:
    """Every deployment reported in the period, oldest first, with what no gate covered."""
    rows = session.scalars(
        sa.select(Deployment)
        .options(joinedload(Deployment.package))
        .where(Deployment.reported_at >= period.start, Deployment.reported_at < period.end)
        .order_by(Deployment.reported_at, Deployment.id)
    ).all()
    return [RecordedDeployment(row, uncovered_by_gate(row)) for row in rows]
