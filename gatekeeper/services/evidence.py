"""The release evidence pack: who agreed to what, when, from where, seeing which version."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import (
    AuditEvent,
    ChecklistVersion,
    Emergency,
    Finding,
    PackageApplication,
    PackageRevision,
    Signoff,
    SignoffRequest,
)
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain.audit import ChainedEvent
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.services import audit, boards, integrity, labels, packages

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
        "signature": event.signature,
        "key_id": event.key_id,
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
        # Offline verification: the public halves of the audit keys, and from which event on
        # the chain is signed (events before it predate audit signing).
        "audit_keys": integrity.keyring_of(session).audit.published(),
        "audit_signed_from": audit.first_signed_seq(session),
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
                **({"on_behalf_of": r.on_behalf_of} if r.on_behalf_of else {}),
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
                **({"on_behalf_of": d.on_behalf_of} if d.on_behalf_of else {}),
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
        "confirmation": _confirmation(session, key, now),
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
    # Only for an emergency: the pack of every normal release keeps its shape and digest.
    if package.emergency is not None:
        pack["emergency"] = _emergency_json(package.emergency)
    pack["digest"] = pack_digest(pack)
    return pack


def _emergency_json(emergency: Emergency) -> dict[str, Any]:
    return {
        "declared_by": emergency.declared_by,
        "declared_at": _iso(emergency.declared_at),
        "reason": emergency.reason,
        "approvals": [
            {"approver": a.approver, "approved_at": _iso(a.approved_at)}
            for a in emergency.approvals
        ],
        "review_due_at": _iso(emergency.review_due_at),
        "review_waiting_on": list(emergency.review_waiting_on),
        "review_completed_at": _iso(emergency.review_completed_at),
    }


def _readable_emergency(found: object) -> dict[str, Any] | None:
    if not isinstance(found, dict):
        return None
    times = ("declared_at", "review_due_at", "review_completed_at")
    return {
        **found,
        **{name: _moment(found.get(name)) for name in times},
        "approvals": [
            {**a, "approved_at": _moment(a.get("approved_at"))}
            for a in found.get("approvals", [])
            if isinstance(a, dict)
        ],
    }


def _confirmation(session: Session, key: str, now: datetime) -> dict[str, Any] | None:
    """What key users said after go-live, as of the pack's making (None: nobody is asked)."""
    found = gate_rules.evaluate(
        packages.gate_input(session, key, now=now, overdue_policy=gate_rules.BLOCK_OVERDUE)
    ).confirmation
    return found.to_dict() if found else None


def verify_pack(pack: Any, *, pinned_keys: Mapping[str, str] | None = None) -> list[str]:
    """Re-check an exported pack: its own digest, every audit event's hash and every event's
    Ed25519 signature, with the keys the pack carries or, better, keys the auditor pinned
    (an edited pack can carry an attacker's keys; it cannot carry the real key's signatures)."""
    if not isinstance(pack, dict) or pack.get("format") != FORMAT:
        raise ValidationFailed(f"not a Gatekeeper evidence pack ({FORMAT})")
    problems: list[str] = []
    if pack.get("digest") != pack_digest(pack):
        problems.append("the pack's digest does not match its content (edited after export)")
    keys = {
        kid: integrity.public_key_from_text(text)
        for kid, text in (pinned_keys or pack.get("audit_keys") or {}).items()
    }
    signed_from = pack.get("audit_signed_from")
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
        problem = _signature_problem(event.seq, event.hash, raw, keys, signed_from)
        if problem:
            problems.append(problem)
    return problems


def _signature_problem(
    seq: int,
    event_hash: str,
    raw: Mapping[str, Any],
    keys: Mapping[str, Any],
    signed_from: object,
) -> str:
    signature, key_id = raw.get("signature"), raw.get("key_id")
    if signature is None:
        # Only events from before audit signing began may be unsigned.
        if signed_from is None or (isinstance(signed_from, int) and seq < signed_from):
            return ""
        return f"audit event {seq} is not signed although the chain is signed from there on"
    public_key = keys.get(key_id or "")
    if public_key is None:
        return f"audit event {seq} is signed with audit key {key_id}, which is not known"
    if not integrity.event_signature_valid(public_key, event_hash, signature):
        return f"audit event {seq}: its signature does not verify with audit key {key_id}"
    return ""


def signed_count(pack: Mapping[str, Any]) -> int:
    return sum(1 for e in pack.get("audit_events", []) if e.get("signature"))


# --- the pack as people read it (the HTML file) ----------------------------------------------


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True)
class DecisionRow:
    application: str
    section: str
    what: str  # the item's text, or "Key-user validation"
    signer: str
    decision: str
    label: str
    comment: str
    evidence: str
    scenarios: tuple[tuple[str, bool], ...]  # (scenario, confirmed) of a key-user decision
    revision: int
    stale_since_revision: int | None
    signed_at: datetime | None
    client_address: str
    user_agent: str
    on_behalf_of: str | None = None  # a deputy's decision: whose place it took


@dataclass(frozen=True)
class RequestRow:
    application: str
    what: str
    signer: str
    revision: int
    state: str
    created_at: datetime | None
    closed_at: datetime | None
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class GateRow:
    code: str
    message: str


@dataclass(frozen=True)
class GateAtRelease:
    status: str
    digest: str
    signed: int
    required: int
    blockers: tuple[GateRow, ...]
    warnings: tuple[GateRow, ...]
    mode: str = gate_rules.NORMAL
    deferred: tuple[GateRow, ...] = ()


@dataclass(frozen=True)
class FindingRow:
    ref: str
    application: str
    state: str
    reported_at: datetime | None
    checklist_version: int | None
    what_happened: str
    impact: str
    could_have_caught: str
    triaged_by: str
    triaged_at: datetime | None
    rationale: str
    addressed_by_version: int | None
    addressed_at: datetime | None


@dataclass(frozen=True)
class EventRow:
    seq: int
    occurred_at: datetime | None
    actor: str
    action: str
    label: str
    subject: str
    revision: int | None
    client_address: str
    hash: str


@dataclass(frozen=True)
class EvidencePage:
    """Everything the HTML evidence pack shows, from the pack itself: times as datetimes, items
    and scenarios by their text, revisions and the gate in sentences, events by their label."""

    generated_at: datetime | None
    created_at: datetime | None
    submitted_at: datetime | None
    released_at: datetime | None
    cancelled_at: datetime | None
    revisions: tuple[boards.RevisionEntry, ...]
    decisions: tuple[DecisionRow, ...]
    requests: tuple[RequestRow, ...]
    gate_at_release: GateAtRelease | None
    confirmation: dict[str, Any] | None
    findings: tuple[FindingRow, ...]
    events: tuple[EventRow, ...]
    emergency: dict[str, Any] | None = None


class _Texts:
    """Section titles, item texts and scenarios of the checklists pinned in the pack."""

    def __init__(self, applications: list[dict[str, Any]]) -> None:
        self._items: dict[tuple[str, str | None, str | None], tuple[str, str]] = {}
        self._scenarios: dict[str, list[str]] = {}
        for application in applications:
            slug = application["application"]
            content = (application.get("checklist") or {}).get("content") or {}
            for section in content.get("sections", []):
                for item in section.get("items", []):
                    key = (slug, section.get("id"), item.get("id"))
                    self._items[key] = (section.get("title", ""), item.get("text", ""))
            self._scenarios[slug] = list(content.get("user_validation", {}).get("scenarios", []))

    def item(self, slug: str, section: str | None, item: str | None) -> tuple[str, str]:
        if item is None:
            return "", "Key-user validation"
        return self._items.get((slug, section, item), (section or "", item))

    def scenarios(self, slug: str, confirmed: str) -> tuple[tuple[str, bool], ...]:
        ticked = {int(i) for i in confirmed.split(",") if i.strip().isdigit()}
        return tuple(
            (text, index in ticked) for index, text in enumerate(self._scenarios.get(slug, []))
        )


def _gate_rows(found: object) -> tuple[GateRow, ...]:
    if not isinstance(found, list):
        return ()
    return tuple(
        GateRow(str(b.get("code", "")), str(b.get("message", "")))
        for b in found
        if isinstance(b, dict)
    )


def _gate_at_release(gate: object) -> GateAtRelease | None:
    if not isinstance(gate, dict):
        return None
    progress = gate.get("progress") or {}
    return GateAtRelease(
        status=str(gate.get("status", "")),
        digest=str(gate.get("digest", "")),
        signed=int(progress.get("signed", 0)),
        required=int(progress.get("required", 0)),
        blockers=_gate_rows(gate.get("blockers")),
        warnings=_gate_rows(gate.get("warnings")),
        mode=str(gate.get("mode", gate_rules.NORMAL)),
        deferred=_gate_rows(gate.get("deferred")),
    )


def _decision(d: dict[str, Any], texts: _Texts) -> DecisionRow:
    slug = d["application"] or ""
    section, what = texts.item(slug, d["section"], d["item"])
    return DecisionRow(
        application=slug,
        section=section,
        what=what,
        signer=d["signer"],
        decision=d["decision"],
        label=labels.decision_label(d["decision"]),
        comment=d["comment"] or "",
        evidence=d["evidence"] or "",
        scenarios=texts.scenarios(slug, d["scenarios_confirmed"] or "")
        if d["item"] is None
        else (),
        revision=d["revision"],
        stale_since_revision=d["stale_since_revision"],
        signed_at=_moment(d["signed_at"]),
        client_address=d["client_address"] or "",
        user_agent=d["user_agent"] or "",
        on_behalf_of=d.get("on_behalf_of"),
    )


def _readable_confirmation(found: object) -> dict[str, Any] | None:
    if not isinstance(found, dict):
        return None
    return {**found, "closes_at": _moment(found.get("closes_at"))}


def _finding(f: dict[str, Any]) -> FindingRow:
    return FindingRow(
        ref=f["ref"],
        application=f["application"] or "",
        state=f["state"],
        reported_at=_moment(f["reported_at"]),
        checklist_version=f["checklist_version"],
        what_happened=f["what_happened"],
        impact=f["impact"],
        could_have_caught=f["could_have_caught"],
        triaged_by=f["triaged_by"] or "",
        triaged_at=_moment(f["triaged_at"]),
        rationale=f["rationale"] or "",
        addressed_by_version=f["addressed_by_version"],
        addressed_at=_moment(f["addressed_at"]),
    )


def page(pack: dict[str, Any]) -> EvidencePage:
    """The pack as the HTML file shows it; the file embeds the pack itself for machines."""
    texts = _Texts(pack["applications"])
    counted = [
        boards.CountedSignoff(d["application"], d["revision"], d["stale_since_revision"])
        for d in pack["decisions"]
    ]
    package = pack["package"]
    return EvidencePage(
        generated_at=_moment(pack["generated_at"]),
        created_at=_moment(package["created_at"]),
        submitted_at=_moment(package["submitted_at"]),
        released_at=_moment(package["released_at"]),
        cancelled_at=_moment(package["cancelled_at"]),
        revisions=tuple(
            boards.revision_entry(
                r["revision"],
                r["actor"],
                datetime.fromisoformat(r["created_at"]),
                r["changes"],
                counted,
                signed=r.get("signed", True),
            )
            for r in pack["revisions"]
        ),
        decisions=tuple(_decision(d, texts) for d in pack["decisions"]),
        requests=tuple(
            RequestRow(
                application=r["application"] or "",
                what=texts.item(r["application"] or "", r["section"], r["item"])[1],
                signer=r["signer"],
                revision=r["revision"],
                state=r["state"],
                created_at=_moment(r["created_at"]),
                closed_at=_moment(r["closed_at"]),
                on_behalf_of=r.get("on_behalf_of"),
            )
            for r in pack["requests"]
        ),
        gate_at_release=_gate_at_release(pack["gate_at_release"]),
        confirmation=_readable_confirmation(pack.get("confirmation")),
        findings=tuple(_finding(f) for f in pack["findings"]),
        emergency=_readable_emergency(pack.get("emergency")),
        events=tuple(
            EventRow(
                seq=e["seq"],
                occurred_at=_moment(e["occurred_at"]),
                actor=e["actor"],
                action=e["action"],
                label=labels.action_label(e["action"]),
                subject=e["subject"],
                revision=e["revision"],
                client_address=e["client_address"] or "",
                hash=e["hash"],
            )
            for e in pack["audit_events"]
        ),
    )
