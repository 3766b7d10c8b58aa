"""Proposing a scenario from an emailed link: only while the link is usable, only for the
link's own person and the applications it asks them about, and without using the link up."""

from __future__ import annotations

from sqlalchemy.orm import Session

from gatekeeper.db.models import ScenarioProposal
from gatekeeper.domain import signoff as signoff_rules
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import NotFound
from gatekeeper.services import confirmations, proposals, signoffs
from gatekeeper.services.governance import GovernanceSettings

SIGNOFF, CONFIRMATION = "signoff", "confirmation"


def propose_from_signoff(
    session: Session,
    token: str,
    *,
    request_id: int,
    scenario: str,
    notes: str,
    settings: signoffs.LinkSettings,
    clock: Clock,
) -> ScenarioProposal:
    """A proposal from a sign-off link, for an application the link asks its holder to validate
    as a key user. The link is not used up: its own answer is still to come."""
    view = signoffs.open_link(session, token, settings=settings, clock=clock)
    asked = next(
        (
            item
            for item in view.requests
            if item.request.id == request_id and item.request.kind == signoff_rules.KEY_USER
        ),
        None,
    )
    if asked is None:
        raise NotFound("this link does not ask you to validate that application")
    target = asked.request.package_application
    return proposals.propose(
        session,
        source=SIGNOFF,
        link_id=view.link.id,
        application_id=target.application_id,
        version_id=target.checklist_version_id,
        proposer=view.link.signer,
        scenario=scenario,
        notes=notes,
        now=clock.now(),
        subject=asked.application,
    )


def propose_from_confirmation(
    session: Session,
    token: str,
    *,
    scenario: str,
    notes: str,
    settings: GovernanceSettings,
    clock: Clock,
) -> ScenarioProposal:
    """A proposal from a post-release confirmation link; the link still awaits its answer."""
    view = confirmations.open_confirmation(session, token, settings=settings, clock=clock)
    return proposals.propose(
        session,
        source=CONFIRMATION,
        link_id=view.link.id,
        application_id=view.application.id,
        version_id=view.checklist_version_id,
        proposer=view.link.key_user,
        scenario=scenario,
        notes=notes,
        now=clock.now(),
        subject=view.application.slug,
    )
