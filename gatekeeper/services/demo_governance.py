"""Governance sample data for `gatekeeper demo`: a released package with a problem reported
after it (an open finding), and a pending new checklist version that addresses the finding."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gatekeeper.checklist_format.validator import load_checklist_file
from gatekeeper.db.models import Package
from gatekeeper.domain import gate as gate_rules
from gatekeeper.domain import signoff
from gatekeeper.domain.checklist import ChecklistInvalid
from gatekeeper.domain.clock import Clock
from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.domain.finding import Report
from gatekeeper.services import checklists, findings, packages, reviews
from gatekeeper.services.checklists import checklist_of
from gatekeeper.services.governance import GovernanceSettings

RELEASED_PACKAGE = "2026.10-demo"
APPLICATION = "payments-api"
RELEASE_MANAGER = "release-manager@example.com"
REPORTER = "refunds-desk@example.com"
AUTHOR = "demo-author@example.com"
# Generated checklist versions live in the instance folder: checklists/ stays the samples.
GENERATED = "demo-checklists"
MERGED = "demo-sync"
NEW_SCENARIO = (
    "Refund more than 1,000 EUR from the back-office screen and see it leave the refund "
    "queue within a minute"
)


def sync_source(session: Session, samples: Path, instance: Path) -> Path:
    """What `gatekeeper demo` syncs: the samples, with the newer versions an earlier demo run
    generated for this database in their place (so a second run does not try to go back to the
    samples' versions). Generated files the database does not hold yet are left out: they belong
    to another database, and the governance step writes its own."""
    generated = instance / GENERATED
    stored = {e.application.slug: max(v.version for v in e.versions) for e in _entries(session)}
    overrides = []
    for path in sorted(generated.glob("*.yaml")) if generated.is_dir() else []:
        try:
            checklist = load_checklist_file(path)
        except ChecklistInvalid:
            continue
        if stored.get(checklist.application, 0) >= checklist.version:
            overrides.append(path)
    session.rollback()
    if not overrides:
        return samples
    merged = instance / MERGED
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir(parents=True)
    replaced = {path.name for path in overrides}
    for path in checklists.checklist_files([samples]):
        if path.name not in replaced:
            shutil.copyfile(path, merged / path.name)
    for path in overrides:
        shutil.copyfile(path, merged / path.name)
    return merged


def _entries(session: Session) -> list[checklists.CatalogueEntry]:
    return [e for e in checklists.catalogue(session) if e.versions]


def prepare(
    session: Session,
    *,
    clock: Clock,
    governance: GovernanceSettings,
    samples: Path,
    instance: Path,
) -> Iterator[str]:
    sample = samples / f"{APPLICATION}.yaml"
    if not sample.is_file():
        return
    if session.scalar(sa.select(Package.id).where(Package.key == RELEASED_PACKAGE)) is not None:
        return
    package = _released_package(session, clock=clock, governance=governance)
    yield (
        f"package {RELEASED_PACKAGE}: released; its key users and consumers were emailed a "
        "link to report a problem found after release"
    )
    finding = findings.record_report(
        session,
        package=package,
        application=APPLICATION,
        reporter=REPORTER,
        report=Report(
            what_happened="Refunds over 1,000 EUR stayed 'queued' for hours after the release; "
            "smaller refunds went through within a minute.",
            impact="14 customers waited a day for their money; the refunds desk answered the "
            "calls by hand.",
            could_have_caught="A scenario refunding a large amount: the release was only "
            "tried with small refunds.",
        ),
        settings=governance,
        clock=clock,
    )
    yield f"finding {finding.ref} on {APPLICATION}: reported after {RELEASED_PACKAGE}, open"
    version, written = _write_next_version(session, sample, instance, finding.ref)
    reviews.sync_and_request_reviews(
        session,
        _with_generated(samples, instance, written),
        clock=clock,
        declared_authors=[AUTHOR],
        settings=governance,
    )
    yield (
        f"checklist {APPLICATION} v{version}: pending review (addresses {finding.ref}); its "
        "reviewers were emailed a review link"
    )


def _with_generated(samples: Path, instance: Path, written: Path) -> Path:
    """The samples with the version this run generated in its sample's place, to sync now."""
    merged = instance / MERGED
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir(parents=True)
    for path in checklists.checklist_files([samples]):
        shutil.copyfile(written if path.name == written.name else path, merged / path.name)
    return merged


def _released_package(session: Session, *, clock: Clock, governance: GovernanceSettings) -> Package:
    """A small package, signed off by everyone and released last month (in the story)."""
    spec = packages.PackageSpec(
        key=RELEASED_PACKAGE,
        title="October release: refunds screen filters",
        environment="production",
        planned_for=clock.now().date(),
        applications=(
            packages.ApplicationSpec(
                APPLICATION, "7.3.2", "New filters on the refunds screen; no change to amounts."
            ),
        ),
    )
    packages.create_package(session, spec, assembler=RELEASE_MANAGER, clock=clock)
    packages.submit_package(session, RELEASED_PACKAGE, actor=RELEASE_MANAGER, clock=clock)
    for request in packages.pending_requests(session, RELEASED_PACKAGE):
        version = request.package_application.checklist_version
        if version is None:
            continue
        checklist = checklist_of(version)
        if request.kind == signoff.ITEM:
            item = next(i for s, i in checklist.items() if i.id == request.item_id)
            evidence = {
                "url": "https://ci.example.com/demo/evidence",
                "text": "Checked in staging (demo data)",
            }.get(item.evidence, "")
            decision = signoff.Decision(signoff.ITEM, signoff.PASS, evidence=evidence)
        else:
            decision = signoff.Decision(
                signoff.KEY_USER,
                signoff.CONFIRMED,
                scenarios_confirmed=tuple(range(len(checklist.user_validation.scenarios))),
            )
        packages.record_signoff(session, request.id, decision, clock=clock)
    gate = packages.evaluate_gate(
        session, RELEASED_PACKAGE, clock=clock, overdue_policy=gate_rules.BLOCK_OVERDUE
    )
    package, _ = packages.release_package(
        session,
        RELEASED_PACKAGE,
        digest=gate.digest,
        actor=RELEASE_MANAGER,
        notes="Demo data",
        clock=clock,
        overdue_policy=gate_rules.BLOCK_OVERDUE,
        reports=governance,
    )
    return package


def _write_next_version(
    session: Session, sample: Path, instance: Path, ref: str
) -> tuple[int, Path]:
    """The sample's YAML as its next version: one more key-user scenario, addressing `ref`."""
    entry = checklists.catalogue_entry(session, APPLICATION)
    stored = max(v.version for v in entry.versions) if entry else 0
    text = sample.read_text(encoding="utf-8")
    text, bumped = re.subn(r"(?m)^version: \d+$", f"version: {stored + 1}", text, count=1)
    # The sample lists its scenarios last in user_validation, right before `consumers:`.
    text, added = re.subn(r"(?m)^consumers:$", f"    - {NEW_SCENARIO}\nconsumers:", text, count=1)
    if not (bumped and added):
        raise ValidationFailed(f"{sample} no longer has the shape the demo expects")
    text = text.rstrip("\n") + f"\naddresses: [{ref}]\n"
    target = instance / GENERATED / sample.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return stored + 1, target
