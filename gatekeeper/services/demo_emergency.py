"""Emergency sample data for `gatekeeper demo`: a storefront-web hotfix (its checklist allows
an emergency release) declared an emergency, its required item passed, and its emergency
approvers' links waiting in the demo mailbox: two clicks there open its gate."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Package
from gatekeeper.domain import signoff
from gatekeeper.domain.clock import Clock
from gatekeeper.services import emergencies, packages, signoffs
from gatekeeper.services.demo import DEMO_RELEASE_MANAGER

HOTFIX_PACKAGE = "2026.11-hotfix"
REASON = "Card payments fail at checkout since this morning's CDN change (demo data)"


def prepare(session: Session, *, clock: Clock, links: signoffs.LinkSettings) -> Iterator[str]:
    stored = session.scalar(sa.select(Package).where(Package.key == HOTFIX_PACKAGE))
    if stored is None:
        spec = packages.PackageSpec(
            key=HOTFIX_PACKAGE,
            title="Hotfix: card payments at checkout",
            environment="production",
            planned_for=clock.now().date(),
            applications=(
                packages.ApplicationSpec(
                    "storefront-web", "2026.11.1-hotfix1", "Revert the checkout script's CDN URL."
                ),
            ),
        )
        packages.create_package(session, spec, assembler=DEMO_RELEASE_MANAGER, clock=clock)
        signoffs.submit_for_signoff(
            session, HOTFIX_PACKAGE, actor=DEMO_RELEASE_MANAGER, clock=clock, links=links
        )
        for request in packages.pending_requests(session, HOTFIX_PACKAGE):
            if request.item_id == "e2e-suite" and request.signer == "qa-lead@example.com":
                packages.record_signoff(
                    session,
                    request.id,
                    signoff.Decision(
                        signoff.ITEM,
                        signoff.PASS,
                        comment="Checkout suite green on the hotfix build (demo data)",
                        evidence="https://ci.example.com/demo/e2e",
                    ),
                    clock=clock,
                )
        emergencies.declare(
            session,
            HOTFIX_PACKAGE,
            reason=REASON,
            actor=DEMO_RELEASE_MANAGER,
            clock=clock,
            links=links,
        )
    gate = packages.evaluate_gate(
        session, HOTFIX_PACKAGE, clock=clock, overdue_policy=links.overdue_policy
    )
    yield (
        f"package {HOTFIX_PACKAGE}: emergency release, gate {gate.status}, waiting on "
        f"{', '.join(gate.waiting_on) or 'nobody'}; {len(gate.deferred)} check(s) deferred to "
        "its post-implementation review (approve it from two of the emergency emails in the "
        "mailbox)"
    )
