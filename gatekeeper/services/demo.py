"""Sample data for `gatekeeper demo`: approved sample checklists and a package in review."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.db.models import Application, ChecklistVersion, Package, SignoffRequest
from gatekeeper.domain import signoff
from gatekeeper.domain.checklist import ChecklistInvalid, content_digest
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.domain.governance import APPROVE, APPROVED, PENDING_REVIEW
from gatekeeper.services import checklists, freezes, packages, reviews, signoffs, users
from gatekeeper.services.governance import GovernanceSettings
from gatekeeper.services.signoffs import LinkSettings

DEMO_CONSULTED = "Demo data: the key users named in the checklist"
DEMO_AUTHOR = "demo-author@example.com"
# The samples the demo syncs when some of them must be left out (see sync_samples).
SYNC_FOLDER = "demo-sync"


def prepare(
    session: Session,
    *,
    clock: Clock,
    links: LinkSettings,
    governance: GovernanceSettings,
    samples: Path,
    instance: Path,
) -> Iterator[str]:
    yield from sync_samples(session, samples, instance=instance, clock=clock, governance=governance)
    yield from demo_accounts(session, clock=clock)
    yield from sample_package(session, clock=clock, links=links)


def sync_samples(
    session: Session,
    samples: Path,
    *,
    instance: Path,
    clock: Clock,
    governance: GovernanceSettings,
) -> Iterator[str]:
    """Store the samples' new versions and approve each application's first one. A sample that
    this database already holds a newer version of (or the same version with other content) is
    left as stored: the demo starts with what is there, and `checklists sync` explains it."""
    report = checklists.lint_paths([samples])
    if not report.files:
        raise ValidationFailed(f"no checklist files (*.yaml, *.yml) found in {samples}")
    if not report.ok:
        raise ChecklistInvalid(report.problems)
    stored = {
        e.application.slug: e.versions[-1] for e in checklists.catalogue(session) if e.versions
    }
    kept: set[str] = set()
    for result in report.files:
        checklist = result.checklist
        if result.calendar is not None:
            planned = freezes.plan_sync(session, result.calendar, result.path)
            if planned.status == "conflict":
                kept.add(result.path)
                yield f"freeze calendar: keeping the stored version ({planned.error})"
            continue
        assert checklist is not None
        held = stored.get(checklist.application)
        if held is None or checklist.version > held.version:
            continue
        if held.version == checklist.version and held.sha256 == content_digest(
            checklist.to_canonical()
        ):
            continue
        kept.add(result.path)
        yield (
            f"checklist {checklist.application}: keeping the stored v{held.version} "
            f"({result.path} says v{checklist.version})"
        )
    source = _copy_without(report.files, kept, instance / SYNC_FOLDER) if kept else samples
    outcomes = (
        checklists.sync_checklists(session, source, clock=clock, declared_authors=[DEMO_AUTHOR])
        if source
        else []
    )
    for outcome in outcomes:
        what = "" if outcome.kind == checklists.FREEZES else "checklist "
        yield f"{what}{outcome.application} v{outcome.version}: {outcome.status}"
    yield from approve_pending(session, clock=clock)
    for outcome in outcomes:
        if outcome.kind == checklists.FREEZES:
            if outcome.status == "created":
                yield (
                    f"freeze calendar v{outcome.version}: pending review; a reviewer approves it "
                    f"with: gatekeeper freezes review --version {outcome.version} --approve "
                    "--reviewer release-board@example.com"
                )
            continue
        version = checklists.get_version(session, outcome.application, outcome.version)
        if outcome.status == "created" and version.state == PENDING_REVIEW:
            reviews.request_reviews(
                session, version, reason=reviews.NEW_VERSION, settings=governance, clock=clock
            )
            yield (
                f"checklist {outcome.application} v{outcome.version}: pending review; its "
                "reviewers were emailed a review link"
            )


def _copy_without(files: list[checklists.FileResult], kept: set[str], folder: Path) -> Path | None:
    """The sample files except `kept`, copied into `folder` (None when nothing is left)."""
    shutil.rmtree(folder, ignore_errors=True)
    rest = [Path(f.path) for f in files if f.path not in kept]
    if not rest:
        return None
    folder.mkdir(parents=True)
    for path in rest:
        shutil.copyfile(path, folder / path.name)
    return folder


def approve_pending(session: Session, *, clock: Clock) -> Iterator[str]:
    """Bootstrap: approve the first version of each application, so packages have one to pin.
    Later versions wait for a real review."""
    has_approved = sa.select(ChecklistVersion.application_id).where(
        ChecklistVersion.state == APPROVED
    )
    pending = session.execute(
        sa.select(Application.slug, ChecklistVersion.version)
        .join(ChecklistVersion)
        .where(
            ChecklistVersion.state == PENDING_REVIEW,
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
            action=APPROVE,
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


@dataclass(frozen=True)
class PackageCounts:
    """A package in the README's words: requests to people, sign-offs recorded, and what the
    gate counts (required sign-offs, with each quorum capping what an item contributes)."""

    requests: int
    people: int
    signoffs: int
    signed: int
    required: int
    waiting_on: int


def package_counts(
    session: Session, key: str, *, clock: Clock, overdue_policy: str
) -> PackageCounts:
    package = packages.get_package(session, key)
    current = (
        sa.select(SignoffRequest)
        .where(SignoffRequest.package_id == package.id, SignoffRequest.revision == package.revision)
        .subquery()
    )
    requests, people, answered = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(sa.distinct(current.c.signer)),
            sa.func.count().filter(current.c.state == signoff.SIGNED),
        )
    ).one()
    gate = packages.evaluate_gate(session, key, clock=clock, overdue_policy=overdue_policy)
    return PackageCounts(
        requests=requests,
        people=people,
        signoffs=answered,
        signed=gate.signed,
        required=gate.required,
        waiting_on=len(gate.waiting_on),
    )


def sample_package(session: Session, *, clock: Clock, links: LinkSettings) -> Iterator[str]:
    """A package in review with some sign-offs in, so the gate has something to explain."""
    stored = session.scalar(sa.select(Package).where(Package.key == DEMO_PACKAGE))
    if stored is not None:
        counts = package_counts(
            session, DEMO_PACKAGE, clock=clock, overdue_policy=links.overdue_policy
        )
        yield (
            f"package {DEMO_PACKAGE}: {stored.state.replace('_', ' ')} (as stored): the gate "
            f"counts {counts.signed} of {counts.required} required sign-offs, waiting on "
            f"{counts.waiting_on} people"
        )
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
    # Links go out for what is still open, so the mailbox has real emails to click.
    sent = signoffs.issue_links(session, package, settings=links, clock=clock)
    counts = package_counts(session, DEMO_PACKAGE, clock=clock, overdue_policy=links.overdue_policy)
    yield (
        f"package {DEMO_PACKAGE}: submitted: {counts.requests} requests to {counts.people} people"
    )
    yield (
        f"package {DEMO_PACKAGE}: {counts.signoffs} sign-offs recorded as demo data; the gate "
        f"counts {counts.signed} of {counts.required} required sign-offs, waiting on "
        f"{counts.waiting_on} people"
    )
    yield (
        f"package {DEMO_PACKAGE}: {len(sent)} people emailed their sign-off link (one email "
        "each, listing all their requests)"
    )
