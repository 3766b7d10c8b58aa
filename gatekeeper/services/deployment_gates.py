"""CI platform deployments that wait on the gate: which package each belongs to, and the one
decision Gatekeeper posts for it.

Adapters record a platform's request here; everything Gatekeeper says back is an outbox row of
kind `platform_call`, posted by the worker (notify/platforms) with retries. `reconcile` runs in
every worker pass: it re-evaluates the gate of each waiting deployment, queues a status report
when what the platform shows would change, and the decision once the gate decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    ChecklistVersion,
    OutboxMessage,
    Package,
    PackageApplication,
    PlatformDeployment,
    PlatformPoll,
)
from gatekeeper.domain import deploy_gate
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain.clock import Clock
from gatekeeper.notify import platforms as calls

# Re-exported: the runtime builds it without reaching into notify.
from gatekeeper.notify.platforms import PlatformSettings as PlatformSettings
from gatekeeper.services import audit, gates

WAITING = "waiting"
ACTOR = "gatekeeper"


@dataclass(frozen=True)
class GateSettings:
    """How the gate is read for a platform, and where its board lives."""

    base_url: str
    secret_keys: Sequence[str]
    overdue_policy: str = "block"
    finding_warn_after: timedelta = gate_rules.DEFAULT_FINDING_WARN_AFTER
    # How often the worker looks for GitLab's blocked deployments, which fire no webhook.
    poll_every: timedelta = timedelta(seconds=60)

    def board_url(self, key: str) -> str:
        return f"{self.base_url}/packages/{quote(key, safe='')}"


@dataclass(frozen=True)
class Request:
    """A platform's deployment waiting on Gatekeeper, as its adapter read it."""

    platform: str
    external_id: str
    project: str
    environment: str
    ref: str
    sha: str
    # Where and how to answer: opaque to this module, sealed at rest.
    callback: Mapping[str, Any]
    # A package named outright (Azure DevOps may name one) instead of a deploy target.
    package: str | None = None


@dataclass
class ReconcileReport:
    reports: int = 0
    approved: int = 0
    rejected: int = 0
    keys: list[str] = field(default_factory=list)


def _targeted(session: Session) -> list[tuple[str, str, dict[str, str]]]:
    """(package key, application version, deploy target) for every in-review package's
    pinned checklists."""
    rows = session.execute(
        sa.select(Package.key, PackageApplication.version_label, ChecklistVersion.content)
        .join(PackageApplication, PackageApplication.package_id == Package.id)
        .join(ChecklistVersion, ChecklistVersion.id == PackageApplication.checklist_version_id)
        .where(
            Package.state == lifecycle.IN_REVIEW,
            PackageApplication.removed_in_revision.is_(None),
        )
    )
    found = []
    for key, version, content in rows:
        for raw in json.loads(content).get("deploy_targets", ()):
            for name, place in raw.items():
                target = {
                    "platform": name,
                    "project": place.get("repository") or place.get("project"),
                    "environment": place["environment"],
                }
                found.append((key, version, target))
    return found


def _candidates(
    session: Session, platform: str, project: str, environment: str
) -> list[deploy_gate.Candidate]:
    """Application versions of in-review packages whose pinned checklist declares the target."""
    wanted = {"platform": platform, "project": project, "environment": environment}
    return [
        deploy_gate.Candidate(key, version)
        for key, version, target in _targeted(session)
        if target == wanted
    ]


def targets(session: Session, platform: str) -> list[tuple[str, str]]:
    """(project, environment) of every target of `platform` that in-review packages declare."""
    return sorted(
        {
            (t["project"], t["environment"])
            for _, _, t in _targeted(session)
            if t["platform"] == platform
        }
    )


def poll_soon(session: Session, platform: str, *, clock: Clock) -> None:
    """Make the worker's next pass poll `platform` (its webhook said something moved)."""
    now = clock.now()
    moved: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(PlatformPoll).where(PlatformPoll.platform == platform).values(next_poll_at=now)
    )
    if moved.rowcount == 0:
        session.add(PlatformPoll(platform=platform, next_poll_at=now))


def take_poll(session: Session, platform: str, *, now: datetime, every: timedelta) -> bool:
    """Whether this worker polls `platform` now: the one that moves its time on does."""
    if session.get(PlatformPoll, platform) is None:
        session.add(PlatformPoll(platform=platform, next_poll_at=now + every))
        return True
    taken: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(PlatformPoll)
        .where(PlatformPoll.platform == platform, PlatformPoll.next_poll_at <= now)
        .values(next_poll_at=now + every)
        .execution_options(synchronize_session=False)
    )
    return taken.rowcount == 1


def gitlab_request(project: str, environment: str, deployment: Mapping[str, Any]) -> Request:
    """A blocked GitLab deployment, as the deployments API lists it."""
    return Request(
        platform="gitlab",
        external_id=f"{project}#{int(deployment['id'])}",
        project=project,
        environment=environment,
        ref=str(deployment.get("ref") or ""),
        sha=str(deployment.get("sha") or ""),
        callback={"project": project, "deployment": int(deployment["id"])},
    )


def _queue(
    session: Session, row: PlatformDeployment, action: str, comment: str, *, now: datetime
) -> None:
    session.add(
        OutboxMessage(
            kind=calls.KIND,
            template=f"{row.platform}.{action}",
            to_address=f"{row.platform}:{row.project}"[:254],
            subject=f"{action} deployment of {row.project} to {row.environment}"[:300],
            body_text=json.dumps(
                {"deployment": row.id, "call": action, "state": row.state, "comment": comment}
            ),
            body_html="",
            state="queued",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def _decide(
    session: Session,
    row: PlatformDeployment,
    decision: str,
    comment: str,
    *,
    now: datetime,
    package: str | None,
    revision: int | None,
) -> bool:
    """Move `row` out of waiting and queue its decision, if nobody did it first."""
    # An UPDATE's result is a CursorResult (rowcount); execute() is typed as Result.
    won: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(PlatformDeployment)
        .where(PlatformDeployment.id == row.id, PlatformDeployment.state == WAITING)
        .values(state=decision, decided_at=now, comment=comment)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:
        return False
    session.refresh(row)
    _queue(session, row, "decision", comment, now=now)
    audit.record(
        session,
        action=f"deployment.{decision}",
        actor=ACTOR,
        subject=f"{row.platform} {row.project} {row.environment}",
        now=now,
        package=package,
        revision=revision,
        details={"ref": row.ref, "sha": row.sha, "comment": comment},
    )
    return True


def _report(
    session: Session, row: PlatformDeployment, text: str, *, now: datetime, limit: int
) -> bool:
    """Queue a status report if the text changed and the platform's limit leaves room."""
    if text == row.last_report or row.reports >= limit:
        return False
    counted: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(PlatformDeployment)
        .where(
            PlatformDeployment.id == row.id,
            PlatformDeployment.state == WAITING,
            PlatformDeployment.reports == row.reports,
        )
        .values(reports=row.reports + 1, last_report=text)
        .execution_options(synchronize_session=False)
    )
    if counted.rowcount != 1:
        return False
    session.refresh(row)
    _queue(session, row, "report", text, now=now)
    return True


def _act(
    session: Session,
    row: PlatformDeployment,
    gate: gate_rules.GateResult,
    *,
    settings: GateSettings,
    now: datetime,
    report: ReconcileReport,
) -> None:
    decided = deploy_gate.verdict(gate)
    text = deploy_gate.comment(gate, settings.board_url(gate.package))
    if decided == deploy_gate.WAITING:
        limit = deploy_gate.REPORT_LIMIT if row.platform == "github" else 0
        if _report(session, row, text, now=now, limit=limit):
            report.reports += 1
        return
    if _decide(session, row, decided, text, now=now, package=gate.package, revision=gate.revision):
        if decided == deploy_gate.APPROVED:
            report.approved += 1
        else:
            report.rejected += 1
        report.keys.append(gate.package)


def record_request(
    session: Session, request: Request, *, clock: Clock, settings: GateSettings
) -> PlatformDeployment:
    """Record a platform's waiting deployment (a redelivered request is the same one) and
    answer at once what can be answered: no package, two packages, or the gate as it is."""
    now = clock.now()
    existing = session.scalar(
        sa.select(PlatformDeployment).where(
            PlatformDeployment.platform == request.platform,
            PlatformDeployment.external_id == request.external_id,
        )
    )
    if existing is not None:
        return existing
    if request.package is not None:
        keys = list(
            session.scalars(
                sa.select(Package.key).where(
                    Package.key == request.package, Package.state == lifecycle.IN_REVIEW
                )
            )
        )
    else:
        keys = deploy_gate.matching_packages(
            _candidates(session, request.platform, request.project, request.environment),
            ref=request.ref,
            sha=request.sha,
        )
    package_id = (
        session.scalar(sa.select(Package.id).where(Package.key == keys[0]))
        if len(keys) == 1
        else None
    )
    row = PlatformDeployment(
        platform=request.platform,
        external_id=request.external_id,
        project=request.project,
        environment=request.environment,
        ref=request.ref[:255],
        sha=request.sha[:64],
        package_id=package_id,
        callback_sealed=calls.seal_callback(dict(request.callback), settings.secret_keys),
        state=WAITING,
        reports=0,
        last_report="",
        comment="",
        created_at=now,
    )
    session.add(row)
    session.flush()
    if not keys:
        target = request.package or request.project
        why = deploy_gate.no_package(target, request.environment, request.ref, request.sha)
        _decide(session, row, deploy_gate.REJECTED, why, now=now, package=None, revision=None)
    elif len(keys) > 1:
        why = deploy_gate.ambiguous(keys, request.sha or request.ref)
        _decide(session, row, deploy_gate.REJECTED, why, now=now, package=None, revision=None)
    else:
        reconcile(session, clock=clock, settings=settings, only=[row.id])
    return row


def package_of(session: Session, row: PlatformDeployment) -> str | None:
    """The key of the package a deployment was matched to, if one was."""
    if row.package_id is None:
        return None
    key: str | None = session.scalar(sa.select(Package.key).where(Package.id == row.package_id))
    return key


def reconcile(
    session: Session,
    *,
    clock: Clock,
    settings: GateSettings,
    only: Sequence[int] | None = None,
) -> ReconcileReport:
    """Re-read the gate of every waiting deployment (or of `only` these) and queue what the
    platforms should be told. The gates are evaluated in a fixed number of queries."""
    now = clock.now()
    query = sa.select(PlatformDeployment).where(
        PlatformDeployment.state == WAITING, PlatformDeployment.package_id.is_not(None)
    )
    if only is not None:
        query = query.where(PlatformDeployment.id.in_(only))
    rows = list(session.scalars(query.order_by(PlatformDeployment.id)))
    report = ReconcileReport()
    if not rows:
        return report
    inputs = gates.gate_inputs(
        session,
        sorted({r.package_id for r in rows if r.package_id is not None}),
        now=now,
        overdue_policy=settings.overdue_policy,
        finding_warn_after=settings.finding_warn_after,
    )
    results = {pid: gate_rules.evaluate(given) for pid, given in inputs.items()}
    for row in rows:
        assert row.package_id is not None  # selected so above
        _act(session, row, results[row.package_id], settings=settings, now=now, report=report)
    return report


def waiting(session: Session) -> list[PlatformDeployment]:
    return list(
        session.scalars(
            sa.select(PlatformDeployment)
            .where(PlatformDeployment.state == WAITING)
            .order_by(PlatformDeployment.id)
        )
    )
