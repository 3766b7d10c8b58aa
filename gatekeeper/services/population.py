"""The release population of a period, for auditors: reconciled, with approvals and duty checks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import AuditEvent, ChecklistVersion, GovernanceReview, Package
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import package as lifecycle
from gatekeeper.domain import population as rules
from gatekeeper.domain.audit import ChainReport
from gatekeeper.domain.deployment import Uncovered
from gatekeeper.services import audit, deployments, gates
from gatekeeper.services.governance import APPROVING_OUTCOMES
from gatekeeper.services.spreadsheet import csv_text

FORMAT = "gatekeeper-population/1"
FORMATS = ("json", "csv")
RELEASED_ACTION = "package.released"
ROLE_ORDER = (
    rules.GOVERNANCE_REVIEWER,
    rules.ENGINEER,
    rules.KEY_USER_ROLE,
    rules.RELEASE_MANAGER,
)


@dataclass(frozen=True)
class Population:
    """What `build` found; `document` and `csv` render it with a header that carries the
    sha256 of exactly what they render."""

    period: rules.Period
    generated_at: datetime
    chain: ChainReport
    head: tuple[int, str]
    entries: tuple[dict[str, Any], ...]
    deployments: tuple[dict[str, Any], ...]
    exceptions: tuple[dict[str, Any], ...]

    def content(self) -> dict[str, Any]:
        return {
            "population": list(self.entries),
            "deployments": list(self.deployments),
            "exceptions": list(self.exceptions),
        }

    def header(self, output_format: str, content_sha256: str) -> dict[str, Any]:
        seq, head_hash = self.head
        return {
            "format": FORMAT,
            "query": {
                "from": self.period.first_day.isoformat(),
                "to": self.period.last_day.isoformat(),
                "format": output_format,
            },
            "period": self.period.to_dict(),
            "generated_at": self.generated_at.isoformat(),
            "counts": {
                "packages": len(self.entries),
                "applications": sum(len(e["applications"]) for e in self.entries),
                "approvals": sum(len(e["approvals"]) for e in self.entries),
                "deployments": len(self.deployments),
                "deployments_not_covered": sum(1 for d in self.deployments if not d["covered"]),
                "exceptions": len(self.exceptions),
            },
            "audit_chain": {
                # The walk starts at the first event and stops at the head or the first bad one.
                "walked": {
                    "from_seq": min(1, seq),
                    "to_seq": seq if self.chain.ok else self.chain.first_bad_seq,
                },
                "events": self.chain.events,
                "intact": self.chain.ok,
                "first_bad_seq": self.chain.first_bad_seq,
                "problem": self.chain.problem or None,
            },
            # The lead adds "signature" and "key_id" here once audit heads are signed.
            "audit_head": {"seq": seq, "hash": head_hash},
            "content_sha256": content_sha256,
        }

    def document(self) -> dict[str, Any]:
        """The JSON export: the header, then the content its `content_sha256` covers (the
        canonical JSON of every member but `header`: sorted keys, no spaces, UTF-8)."""
        content = self.content()
        return {"header": self.header("json", _sha256(_canonical(content))), **content}

    def csv(self) -> str:
        """The CSV export: `#` rows of header, an empty row, then the table; `content_sha256`
        covers everything after the empty row, byte for byte."""
        table = csv_text([CSV_COLUMNS, *self._csv_rows()])
        header = self.header("csv", _sha256(table.encode()))
        return csv_text(_header_rows(header)) + "\r\n" + table

    def _csv_rows(self) -> list[list[object]]:
        rows: list[list[object]] = []
        for entry in self.entries:
            duties = "; ".join(
                f"{c['rule']}: {'pass' if c['passed'] else 'FAIL'}"
                for c in entry["separation_of_duties"]
            )
            event = entry["release_event"]
            package_cells = [
                entry["package"],
                entry["title"],
                entry["environment"],
                entry["state"],
                entry["mode"],
                entry["revision"],
                entry["released_at"],
                entry["released_by"],
                entry["release_digest"],
                event["seq"] if event else None,
                _flag(entry["sources"]["audit_log"]),
                _flag(entry["sources"]["packages_table"]),
                duties,
            ]
            for approval in entry["approvals"]:
                rows.append(
                    [
                        "approval",
                        *package_cells,
                        *(approval[name] for name in APPROVAL_FIELDS[:-1]),
                        _flag(approval["counted"]),
                        None,
                        None,
                        None,
                    ]
                )
        blank = [None] * (len(CSV_COLUMNS) - 5)
        for problem in self.exceptions:
            details = json.dumps(problem["details"], sort_keys=True, ensure_ascii=False)
            rows.append(
                [
                    "exception",
                    problem["package"],
                    *blank,
                    problem["code"],
                    problem["message"],
                    details,
                ]
            )
        return rows


# The package's cells repeat on each of its approval rows.
PACKAGE_COLUMNS = (
    "package",
    "package_title",
    "package_environment",
    "package_state",
    "release_mode",
    "package_revision",
    "released_at",
    "released_by",
    "release_digest",
    "release_event_seq",
    "in_audit_log",
    "in_packages_table",
    "separation_of_duties",
)
# The order of an approval's cells in a CSV row; `counted` is rendered as yes/no.
APPROVAL_FIELDS = (
    "role",
    "person",
    "at",
    "application",
    "application_version",
    "checklist_version",
    "checklist_sha256",
    "requirement",
    "decision",
    "revision",
    "digest",
    "comment",
    "evidence",
    "counted",
)
CSV_COLUMNS = ("record", *PACKAGE_COLUMNS, *APPROVAL_FIELDS, "code", "message", "details")


def _flag(value: bool) -> str:
    return "yes" if value else "no"


def _header_rows(header: dict[str, Any]) -> list[list[object]]:
    """The header flattened to `# name, value` rows (`# counts.packages, 3`)."""
    rows: list[list[object]] = []

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for name, value in node.items():
                walk(f"{prefix}.{name}" if prefix else name, value)
        else:
            rows.append([f"# {prefix}", _text(node)])

    walk("", header)
    return rows


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def build(session: Session, first: str, last: str, *, now: datetime) -> Population:
    """The population of the days `first` through `last` (ISO dates, UTC, both included).

    Run it in one snapshot (`read_snapshot`): the head, the chain walk and every query below
    must see the same database, or a release committed meanwhile would look like an exception.
    """
    period = rules.period_of(first, last)
    head = audit.latest(session)
    chain = audit.verify(session)
    released_rows = session.scalars(
        sa.select(Package).where(
            Package.state == lifecycle.RELEASED,
            Package.released_at >= period.start,
            Package.released_at < period.end,
        )
    ).all()
    event_rows = _release_events(session, period, [p.key for p in released_rows], head[0])
    keys = {e.package for e in event_rows if e.package} | {p.key for p in released_rows}
    package_rows = session.scalars(sa.select(Package).where(Package.key.in_(sorted(keys)))).all()
    events = [_release_event(e, chain) for e in event_rows]
    reconciled = rules.reconcile(period, events, [_release_record(p) for p in package_rows])
    broken = rules.chain_discrepancy(chain)
    exceptions = [broken.to_dict()] if broken else []
    exceptions += [d.to_dict() for d in reconciled.discrepancies]
    entries = _entries(session, reconciled.keys, event_rows, events, package_rows, now=now)
    reported = deployments.reported_in(session, period)
    exceptions += [_uncovered(d, problem) for d in reported for problem in d.uncovered]
    return Population(
        period=period,
        generated_at=now,
        chain=chain,
        head=head,
        entries=tuple(entries),
        deployments=tuple(d.to_dict() for d in reported),
        exceptions=tuple(exceptions),
    )


def _uncovered(recorded: deployments.RecordedDeployment, problem: Uncovered) -> dict[str, Any]:
    row = recorded.deployment
    return rules.Discrepancy(
        problem.code,
        f"deployment {row.id} to {row.environment} at {row.reported_at.isoformat()}: "
        f"{problem.message}",
        row.package.key,
        {
            "deployment": row.id,
            "application": problem.application,
            "pipeline_url": row.pipeline_url,
        },
    ).to_dict()


def _release_events(
    session: Session, period: rules.Period, released_keys: Sequence[str], head_seq: int
) -> Sequence[AuditEvent]:
    """Release events in the period, and those of packages released in it whenever they
    happened (a package released in the period whose event lies outside it disagrees)."""
    in_period = sa.and_(AuditEvent.occurred_at >= period.start, AuditEvent.occurred_at < period.end)
    return session.scalars(
        sa.select(AuditEvent)
        .where(
            AuditEvent.action == RELEASED_ACTION,
            AuditEvent.seq <= head_seq,
            sa.or_(in_period, AuditEvent.package.in_(sorted(released_keys))),
        )
        .order_by(AuditEvent.seq)
    ).all()


def _release_event(event: AuditEvent, chain: ChainReport) -> rules.ReleaseEvent:
    try:
        details = json.loads(event.details)
    except ValueError:
        # Only a row written past the application holds unreadable details; the chain walk
        # reports it, and the export must still list it rather than fail.
        details = {}
    digest = details.get("digest") if isinstance(details, dict) else None
    return rules.ReleaseEvent(
        seq=event.seq,
        package=event.package,
        occurred_at=event.occurred_at,
        actor=event.actor,
        revision=event.revision,
        digest=digest if isinstance(digest, str) else None,
        verified=chain.ok or event.seq < (chain.first_bad_seq or 0),
    )


def _release_record(package: Package) -> rules.ReleaseRecord:
    return rules.ReleaseRecord(
        package=package.key,
        state=package.state,
        released_at=package.released_at,
        released_by=package.released_by,
        revision=package.revision,
        digest=package.release_digest,
    )


def _entries(
    session: Session,
    keys: Sequence[str],
    event_rows: Sequence[AuditEvent],
    events: Sequence[rules.ReleaseEvent],
    package_rows: Sequence[Package],
    *,
    now: datetime,
) -> list[dict[str, Any]]:
    """One entry per key, in a fixed number of queries however many packages there are."""
    first_event: dict[str, tuple[AuditEvent, rules.ReleaseEvent]] = {}
    for row, event in zip(event_rows, events, strict=True):
        if row.package is not None:
            first_event.setdefault(row.package, (row, event))
    package_of = {p.key: p for p in package_rows}
    material = gates.load_material(
        session, [p.id for p in package_rows], preloaded=list(package_rows)
    )
    reviews = _approving_reviews(
        session,
        [
            row.version.id
            for rows in material.applications.values()
            for row in rows
            if row.version is not None
        ],
    )
    entries = []
    for key in keys:
        package = package_of.get(key)
        logged = first_event.get(key)
        entry: dict[str, Any] = {
            "package": key,
            "sources": {"audit_log": logged is not None, "packages_table": package is not None},
            "release_event": None
            if logged is None
            else {
                "seq": logged[0].seq,
                "hash": logged[0].hash,
                "occurred_at": _iso(logged[1].occurred_at),
                "actor": logged[1].actor,
                "revision": logged[1].revision,
                "digest": logged[1].digest,
                "verified": logged[1].verified,
            },
            "mode": rules.NORMAL,
        }
        if package is not None:
            entry.update(_from_package(package, material, reviews, now=now))
            emergency = material.emergencies.get(package.id)
            if emergency is not None:
                entry["mode"] = rules.EMERGENCY
                entry["emergency"] = emergency.to_dict()
        elif logged is not None:
            entry.update(_event_only(logged[1]))
        entries.append(entry)
    return entries


def _event_only(event: rules.ReleaseEvent) -> dict[str, Any]:
    """What the audit log alone says about a release whose package is missing."""
    return {
        "title": None,
        "environment": None,
        "state": None,
        "assembled_by": None,
        "revision": event.revision,
        "released_at": _iso(event.occurred_at),
        "released_by": event.actor,
        "release_digest": event.digest,
        "gate_at_release": None,
        "applications": [],
        "approvals": [
            _release_approval(event.actor, event.occurred_at, event.revision, event.digest, "")
        ],
        "separation_of_duties": [],
    }


def _release_approval(
    actor: str | None,
    at: datetime | None,
    revision: int | None,
    digest: str | None,
    notes: str,
) -> dict[str, Any]:
    return _approval(
        role=rules.RELEASE_MANAGER,
        person=actor,
        at=at,
        requirement="release",
        decision="released",
        revision=revision,
        digest=digest,
        comment=notes,
    )


def _approval(
    *,
    role: str,
    person: str | None,
    at: datetime | None,
    requirement: str,
    decision: str,
    application: str | None = None,
    application_version: str | None = None,
    checklist_version: int | None = None,
    checklist_sha256: str | None = None,
    revision: int | None = None,
    digest: str | None = None,
    comment: str = "",
    evidence: str = "",
    counted: bool = True,
) -> dict[str, Any]:
    return {
        "role": role,
        "person": person,
        "at": _iso(at),
        "application": application,
        "application_version": application_version,
        "checklist_version": checklist_version,
        "checklist_sha256": checklist_sha256,
        "requirement": requirement,
        "decision": decision,
        "revision": revision,
        "digest": digest,
        "comment": comment,
        "evidence": evidence,
        "counted": counted,
    }


def _approving_reviews(
    session: Session, version_ids: Sequence[int]
) -> dict[int, list[GovernanceReview]]:
    found: dict[int, list[GovernanceReview]] = {}
    if not version_ids:
        return found
    for review in session.scalars(
        sa.select(GovernanceReview)
        .where(
            GovernanceReview.checklist_version_id.in_(sorted(set(version_ids))),
            GovernanceReview.outcome.in_(APPROVING_OUTCOMES),
        )
        .order_by(GovernanceReview.reviewed_at, GovernanceReview.id)
    ):
        found.setdefault(review.checklist_version_id, []).append(review)
    return found


def _from_package(
    package: Package,
    material: gates.GateMaterial,
    reviews: dict[int, list[GovernanceReview]],
    *,
    now: datetime,
) -> dict[str, Any]:
    """A package's release as the packages table and its sign-offs tell it."""
    at = package.released_at or now
    gate_input = gates.gate_input_from(
        material, package.id, now=at, overdue_policy=gate_rules.BLOCK_OVERDUE
    )
    # The decisions the gate counts; no sign-off can be added once a package is released.
    counted = frozenset(gate_rules.evaluate(gate_input).counted)
    rows = material.applications.get(package.id, [])
    versions = {row.slug: row for row in rows}
    evidence = {s.id: s.evidence for s in material.signoffs.get(package.id, [])}
    approvals: list[dict[str, Any]] = []
    for row in rows:
        if row.version is None:
            continue
        approvals.extend(
            _approval(
                role=rules.GOVERNANCE_REVIEWER,
                person=review.reviewer,
                at=review.reviewed_at,
                application=row.slug,
                checklist_version=row.version.version,
                checklist_sha256=row.version.sha256,
                requirement=f"checklist version {row.version.version}",
                decision=review.outcome,
                digest=f"sha256:{row.version.sha256}",
                comment=review.notes,
                evidence=f"key users consulted: {review.consulted}" if review.consulted else "",
            )
            for review in reviews.get(row.version.id, [])
            if review.reviewed_at <= at
        )
    for record in gate_input.signoffs:
        row = versions[record.application]
        version: ChecklistVersion | None = row.version
        approvals.append(
            _approval(
                role=rules.ROLE_OF_KIND[record.kind],
                person=record.signer,
                at=record.signed_at,
                application=record.application,
                application_version=row.target.version_label,
                checklist_version=version.version if version else None,
                checklist_sha256=version.sha256 if version else None,
                requirement=rules.requirement_of(record),
                decision=record.decision,
                revision=record.revision,
                comment=record.comment,
                evidence=evidence.get(record.id, ""),
                counted=record.id in counted,
            )
        )
    if package.released_at is not None:
        approvals.append(
            _release_approval(
                package.released_by,
                package.released_at,
                package.revision,
                package.release_digest,
                package.release_notes,
            )
        )
    approvals.sort(
        key=lambda a: (
            ROLE_ORDER.index(a["role"]),
            a["application"] or "",
            a["requirement"],
            a["at"] or "",
            a["person"] or "",
        )
    )
    stored_gate = json.loads(package.release_gate) if package.release_gate else None
    return {
        "title": package.title,
        "environment": package.environment,
        "state": package.state,
        "assembled_by": package.assembled_by,
        "revision": package.revision,
        "released_at": _iso(package.released_at),
        "released_by": package.released_by,
        "release_digest": package.release_digest,
        "gate_at_release": None
        if stored_gate is None
        else {
            "status": stored_gate.get("status"),
            "digest": stored_gate.get("digest"),
            "progress": stored_gate.get("progress"),
        },
        "applications": [
            {
                "application": row.slug,
                "version": row.target.version_label,
                "changed_in_revision": row.target.changed_in_revision,
                "checklist_version": row.version.version if row.version else None,
                "checklist_sha256": row.version.sha256 if row.version else None,
                "checklist_state": row.version.state if row.version else None,
            }
            for row in rows
        ],
        "approvals": approvals,
        "separation_of_duties": [c.to_dict() for c in rules.duty_checks(gate_input, counted)],
    }
