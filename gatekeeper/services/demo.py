"""Sample data for `gatekeeper demo`: approved sample checklists and a package in review."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application, ChecklistVersion, Package
from gatekeeper.domain import governance, signoff
from gatekeeper.domain.clock import Clock
from gatekeeper.services import checklists, packages, signoffs, users
from gatekeeper.services.signoffs import LinkSettings

DEMO_CONSULTED = "Demo data: the key users named in the checklist"


def prepare(session: Session, *, clock: Clock, links: LinkSettings) -> Iterator[str]:
    yield from approve_pending(session, clock=clock)
    yield from demo_accounts(session, clock=clock)
    yield from sample_package(session, clock=clock, links=links)


def approve_pending(session: Session, *, clock: Clock) -> Iterator[str]:
    """Bootstrap: approve the first version of each sample, so packages have one to pin. Later
    versions wait for a real review (the demo keeps one pending to show that)."""
    has_approved = sa.select(ChecklistVersion.application_id).where(
        ChecklistVersion.state == governance.APPROVED
    )
    pending = session.execute(
        sa.select(Application.slug, ChecklistVersion.version)
        .join(ChecklistVersion)
        .where(
            ChecklistVersion.state == governance.PENDING_REVIEW,
            ChecklistVersion.application_id.not_in(has_approved),
        )
        .order_by(Application.slug)
    ).all()
    for slug, version in pending:
        stored = checklists.get_version(session, slug, version)
        reviewer = checklists.checklist_of(stored).governance.reviewers[0]
        checklists.review_version(
            session,
            application=slug,
            version=version,
            action=governance.APPROVE,
            reviewer=reviewer,
            consulted=DEMO_CONSULTED,
            clock=clock,
        )
        yield f"checklist {slug} v{version}: approved by {reviewer}"


DEMO_PACKAGE = "2026.11-demo"
DEMO_RELEASE_MANAGER = "release-manager@example.com"
DEMO_ADMIN = "admin@example.com"
DEMO_GOVERNANCE_REVIEWER = "release-board@example.com"
DEMO_ACCOUNTS = (
    (DEMO_RELEASE_MANAGER, "Riley Morgan", users.RELEASE_MANAGER),
    (DEMO_ADMIN, "Alex Admin", users.ADMIN),
    (DEMO_GOVERNANCE_REVIEWER, "Release Board", users.GOVERNANCE_REVIEWER),
)


def demo_accounts(session: Session, *, clock: Clock) -> Iterator[str]:
    """Staff accounts to sign in with: the link arrives in the demo mailbox."""
    existing = {u.email for u in users.list_users(session)}
    for email, name, role in DEMO_ACCOUNTS:
        if email not in existing:
            users.add_user(session, email=email, name=name, role=role, clock=clock)
            yield f"demo account {email} ({role.replace('_', ' ')}): sign in at /login"


def sample_package(session: Session, *, clock: Clock, links: LinkSettings) -> Iterator[str]:
    """A package in review with some sign-offs in, so the gate has something to explain."""
    if session.scalar(sa.select(Package.id).where(Package.key == DEMO_PACKAGE)) is not None:
        return
    spec = packages.PackageSpec(
        key=DEMO_PACKAGE,
        title="November release: refunds queue, checkout vouchers, SSO key rotation",
        environment="production",
        planned_for=(clock.now() + timedelta(days=3)).date(),
        applications=(
            packages.ApplicationSpec(
                "payments-api",
                "7.4.0",
                "Refunds go through a queue; watch the refund screen and the settlement totals.",
            ),
            packages.ApplicationSpec(
                "storefront-web", "2026.11.2", "Voucher codes at checkout; new basket layout."
            ),
            packages.ApplicationSpec(
                "identity-platform", "4.9.1", "Signing-key rotation; no claim changes."
            ),
        ),
    )
    packages.create_package(session, spec, assembler=DEMO_RELEASE_MANAGER, clock=clock)
    package = packages.submit_package(
        session, DEMO_PACKAGE, actor=DEMO_RELEASE_MANAGER, clock=clock
    )
    signed = 0
    for request in packages.pending_requests(session, DEMO_PACKAGE):
        if request.kind == signoff.ITEM and request.package_application.application.slug != (
            "identity-platform"
        ):
            packages.record_signoff(
                session,
                request.id,
                signoff.Decision(
                    signoff.ITEM,
                    signoff.PASS,
                    comment="Checked in staging (demo data)",
                    evidence="https://ci.example.com/demo/evidence",
                ),
                clock=clock,
            )
            signed += 1
    # Links go out for what is still open, so the mailbox has real emails to click.
    sent = signoffs.issue_links(session, package, settings=links, clock=clock)
    yield (
        f"package {DEMO_PACKAGE}: submitted, {signed} demo sign-offs recorded, "
        f"{len(sent)} sign-off emails queued"
    )
