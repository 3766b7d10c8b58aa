"""The release evidence pack: who agreed to what, when, from where, seeing which version."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    AuditEvent,
    ChecklistVersion,
    Finding,
    PackageApplication,
    PackageRevision,
    Signoff,
    SignoffRequest,
)
from gatekeeper.domain.audit import ChainedEvent
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.services import audit, packages

FORMAT = "gatekeeper-evidence/1"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds") if moment else None


def _event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "occurred_at": _iso(event.occurred_at),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "package": event.package,
        "revision": event.revision,
        "client_address": event.client_address,
        "user_agent": event.user_agent,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def pack_digest(pack: dict[str, Any]) -> str:
    body = {k: v for k, v in pack.items() if k != "digest"}
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(encoded.encode()).hexdigest()


def build(session: Session, key: str, *, now: datetime) -> dict[str, Any]:
    package = packages.get_package(session, key)
    targets = session.execute(
        sa.select(PackageApplication, ChecklistVersion)
        .outerjoin(ChecklistVersion, ChecklistVersion.id == PackageApplication.checklist_version_id)
        .where(PackageApplication.package_id == package.id)
        .order_by(PackageApplication.id)
    ).all()
    slug_of = {target.id: target.application.slug for target, _ in targets}
    events = audit.package_events(session, key)
    origin_of_signoff: dict[int, tuple[str | None, str | None]] = {}
    for event in events:
        if event.action == "signoff.recorded":
            signoff_id = json.loads(event.details).get("signoff")
            origin_of_signoff[signoff_id] = (event.client_address, event.user_agent)
    requests = session.scalars(
        sa.select(SignoffRequest)
        .where(SignoffRequest.package_id == package.id)
        .order_by(SignoffRequest.id)
    ).all()
    decisions = session.scalars(
        sa.select(Signoff).where(Signoff.package_id == package.id).order_by(Signoff.id)
    ).all()
    # Problems reported after this release, and what became of them.
    reported = session.scalars(
        sa.select(Finding).where(Finding.package_id == package.id).order_by(Finding.id)
    ).all()
    slug_of_application = {target.application_id: target.application.slug for target, _ in targets}
    revisions = session.scalars(
        sa.select(PackageRevision)
        .where(PackageRevision.package_id == package.id)
        .order_by(PackageRevision.revision, PackageRevision.id)
    ).all()
    pack: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": _iso(now),
        "audit_head": audit.head(session),
        "package": {
            "key": package.key,
            "title": package.title,
            "environment": package.environment,
            "planned_for": package.planned_for.isoformat() if package.planned_for else None,
            "assembled_by": package.assembled_by,
            "state": package.state,
            "revision": package.revision,
            "created_at": _iso(package.created_at),
            "submitted_at": _iso(package.submitted_at),
            "released_at": _iso(package.released_at),
            "released_by": package.released_by,
            "release_digest": package.release_digest,
            "release_notes": package.release_notes,
            "cancelled_at": _iso(package.cancelled_at),
        },
        "applications": [
            {
                "application": target.application.slug,
                "version": target.version_label,
                "change_summary": target.change_summary,
                "changed_in_revision": target.changed_in_revision,
                "removed_in_revision": target.removed_in_revision,
                "checklist": None
                if version is None
                else {
                    "version": version.version,
                    "sha256": version.sha256,
                    "state": version.state,
                    "content": json.loads(version.content),
                    "source_yaml": version.source_yaml,
                },
            }
            for target, version in targets
        ],
        "revisions": [
            {
                "revision": r.revision,
                "signed": r.signed,
                "actor": r.actor,
                "created_at": _iso(r.created_at),
                "changes": json.loads(r.changes),
            }
            for r in revisions
        ],
        "requests": [
            {
                "id": r.id,
                "application": slug_of.get(r.package_application_id),
                "kind": r.kind,
                "section": r.section_id,
                "item": r.item_id,
                "signer": r.signer,
                "revision": r.revision,
                "state": r.state,
                "created_at": _iso(r.created_at),
                "closed_at": _iso(r.closed_at),
            }
            for r in requests
        ],
        "decisions": [
            {
                "id": d.id,
                "application": slug_of.get(d.package_application_id),
                "kind": d.kind,
                "section": d.section_id,
                "item": d.item_id,
                "signer": d.signer,
                "decision": d.decision,
                "comment": d.comment,
                "evidence": d.evidence,
                "scenarios_confirmed": d.scenarios_confirmed,
                "revision": d.revision,
                "signed_at": _iso(d.signed_at),
                "stale_since_revision": d.stale_since_revision,
                "client_address": origin_of_signoff.get(d.id, (None, None))[0],
                "user_agent": origin_of_signoff.get(d.id, (None, None))[1],
            }
            for d in decisions
        ],
        "gate_at_release": json.loads(package.release_gate) if package.release_gate else None,
        "findings": [
            {
                "ref": f.ref,
                "application": slug_of_application.get(f.application_id),
                "state": f.state,
                "reported_at": _iso(f.reported_at),
                "checklist_version": f.checklist_version.version if f.checklist_version else None,
                "what_happened": f.what_happened,
                "impact": f.impact,
                "could_have_caught": f.could_have_caught,
                "triaged_by": f.triaged_by,
                "triaged_at": _iso(f.triaged_at),
                "rationale": f.rationale,
                "addressed_by_version": f.addressed_by_version.version
                if f.addressed_by_version
                else None,
                "addressed_at": _iso(f.addressed_at),
            }
            for f in reported
        ],
        "audit_events": [_event_json(e) for e in events],
    }
    pack["digest"] = pack_digest(pack)
    return pack


def verify_pack(pack: Any) -> list[str]:
    """Re-check an exported pack: its own digest and every audit event's hash."""
    if not isinstance(pack, dict) or pack.get("format") != FORMAT:
        raise ValidationFailed(f"not a Gatekeeper evidence pack ({FORMAT})")
    problems: list[str] = []
    if pack.get("digest") != pack_digest(pack):
        problems.append("the pack's digest does not match its content (edited after export)")
    for raw in pack.get("audit_events", []):
        event = ChainedEvent(
            seq=raw["seq"],
            occurred_at=datetime.fromisoformat(raw["occurred_at"]),
            actor=raw["actor"],
            action=raw["action"],
            subject=raw["subject"],
            package=raw["package"],
            revision=raw["revision"],
            client_address=raw["client_address"],
            user_agent=raw["user_agent"],
            details=raw["details"],
            prev_hash=raw["prev_hash"],
            hash=raw["hash"],
        )
        if event.computed_hash() != event.hash:
            problems.append(f"audit event {event.seq} does not match its hash")
    return problems
