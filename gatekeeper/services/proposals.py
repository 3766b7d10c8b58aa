"""Scenarios key users propose from their emailed links, and what becomes of them: adopted by
an approved checklist version, or declined by a reviewer with a rationale. The proposer is told."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.base import is_id
from gatekeeper.db.models import ChecklistVersion, ScenarioProposal
from gatekeeper.domain import proposal as rules
from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import NotFound, PermissionDenied, ValidationFailed
from gatekeeper.domain.roles import ADMIN
from gatekeeper.notify.outbox import queue_email
from gatekeeper.services import audit, findings

_FULL = "You have proposed as many scenarios as one link allows; thank you."


def propose(
    session: Session,
    *,
    source: str,
    link_id: int,
    application_id: int,
    version_id: int | None,
    proposer: str,
    scenario: str,
    notes: str,
    now: datetime,
    subject: str,
) -> ScenarioProposal:
    """Store an open proposal made with one emailed link (`source`, `link_id`), within the
    link's cap; the caller has checked the link and whom it speaks for."""
    cleaned, kept = rules.check_proposal(scenario, notes)
    already = session.scalar(
        sa.select(sa.func.count())
        .select_from(ScenarioProposal)
        .where(ScenarioProposal.source == source, ScenarioProposal.link_id == link_id)
    )
    if (already or 0) >= rules.MAX_PER_LINK:
        raise ValidationFailed(_FULL)
    proposal = ScenarioProposal(
        application_id=application_id,
        checklist_version_id=version_id,
        source=source,
        link_id=link_id,
        proposed_by=proposer,
        scenario=cleaned,
        notes=kept,
        state=rules.OPEN,
        proposed_at=now,
        rationale="",
    )
    session.add(proposal)
    session.flush()
    audit.record(
        session,
        action="scenario.proposed",
        actor=proposer,
        subject=f"{proposal.ref} on {subject}",
        now=now,
        details={"proposal": proposal.ref, "scenario": cleaned},
    )
    return proposal


def open_proposals(session: Session, application_id: int) -> list[ScenarioProposal]:
    return list(
        session.scalars(
            sa.select(ScenarioProposal)
            .where(
                ScenarioProposal.application_id == application_id,
                ScenarioProposal.state == rules.OPEN,
            )
            .order_by(ScenarioProposal.id)
        )
    )


def get_proposal(session: Session, proposal_id: int, *, lock: bool = False) -> ScenarioProposal:
    # An id beyond the column's range names no proposal and must not reach the query.
    found = (
        session.get(ScenarioProposal, proposal_id, with_for_update=lock)
        if is_id(proposal_id)
        else None
    )
    if found is None:
        raise NotFound(f"no scenario proposal {rules.proposal_ref(proposal_id)}")
    return found


def decline(
    session: Session,
    proposal_id: int,
    *,
    rationale: str,
    actor: str,
    role: str,
    clock: Clock,
) -> ScenarioProposal:
    """A reviewer of the checklist (or an admin) declines a proposal, saying why."""
    found = get_proposal(session, proposal_id, lock=True)
    actor = actor.strip().lower()
    named = findings.reviewers_of(session, found)
    if role != ADMIN and actor not in named:
        raise PermissionDenied(
            f"{actor} is not a governance reviewer of the {found.application.slug} checklist "
            f"(reviewers: {', '.join(named) or 'none'})"
        )
    cleaned = rules.check_decline(rationale)
    found.state = rules.next_state(found.state, rules.DECLINE)
    now = clock.now()
    found.rationale = cleaned
    _decided(session, found, actor=actor, now=now, action="scenario.declined", rationale=cleaned)
    queue_email(
        session,
        to=found.proposed_by,
        template="proposal_declined",
        context={"proposal": found, "application": found.application.slug},
        now=now,
    )
    return found


def _decided(
    session: Session,
    found: ScenarioProposal,
    *,
    actor: str,
    now: datetime,
    action: str,
    **details: object,
) -> None:
    found.decided_by = actor
    found.decided_at = now
    session.flush()
    audit.record(
        session,
        action=action,
        actor=actor,
        subject=f"{found.ref} on {found.application.slug}",
        now=now,
        details={"proposal": found.ref, **details},
    )


def adopt_proposals(
    session: Session,
    version: ChecklistVersion,
    checklist: Checklist,
    refs: Iterable[str],
    *,
    actor: str,
    now: datetime,
) -> Sequence[ScenarioProposal]:
    """An approved version adopts the open proposals of its application it addresses
    (`addresses: [P-3]`) or whose scenario it lists (case and spacing aside)."""
    # A number beyond any id (`P-99999999999`) names no proposal and must not reach the query.
    named = {i for i in (rules.parse_ref(r) for r in refs) if is_id(i)}
    candidates = session.scalars(
        sa.select(ScenarioProposal)
        .where(
            ScenarioProposal.application_id == version.application_id,
            ScenarioProposal.state == rules.OPEN,
        )
        .order_by(ScenarioProposal.id)
        .with_for_update()
    )
    scenarios = checklist.user_validation.scenarios
    adopted = [p for p in candidates if p.id in named or rules.adopted_by(p.scenario, scenarios)]
    for found in adopted:
        found.state = rules.next_state(found.state, rules.ADOPT)
        found.adopted_by_version = version
        _decided(
            session,
            found,
            actor=actor,
            now=now,
            action="scenario.adopted",
            checklist_version=version.version,
        )
        queue_email(
            session,
            to=found.proposed_by,
            template="proposal_adopted",
            context={
                "proposal": found,
                "application": version.application.slug,
                "version": version.version,
            },
            now=now,
        )
    return adopted
