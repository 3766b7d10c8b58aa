"""Generated data of any size, shared by the size-dependent tests and the benchmarks (bench/).

It imports only gatekeeper, so `python -m bench.<name>` run from the checkout can use it without
pytest or the tests' fixtures.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.orm import Session

from gatekeeper.db.models import SignoffRequest
from gatekeeper.domain import governance, signoff
from gatekeeper.domain.clock import Clock
from gatekeeper.services import checklists, packages
from gatekeeper.services.checklists import checklist_of

EVIDENCE = "https://ci.example.com/builds/42"
# Who the tests' and benchmarks' checklist syncs name as the author: no sample's reviewer.
CHECKLIST_AUTHOR = "checklist-author@example.com"


def write_checklists(
    directory: Path,
    *,
    applications: int,
    items: int,
    prefix: str,
    key_users: int = 1,
    scenarios: int = 1,
) -> list[str]:
    """`applications` valid checklists of `items` items (10 per section); returns the slugs."""
    directory.mkdir(parents=True, exist_ok=True)
    slugs = []
    for a in range(applications):
        slug = f"{prefix}-{a:02d}"
        slugs.append(slug)
        lines = [
            "schema: 1",
            f"application: {slug}",
            f"title: Generated application {a}",
            "version: 1",
            "owner: owner@example.com",
            "governance:",
            "  review_every_days: 90",
            "  reviewers: [release-board@example.com]",
            "sections:",
        ]
        for i in range(items):
            if i % 10 == 0:
                lines += [
                    f"  - id: section-{i // 10}",
                    f"    title: Section {i // 10}",
                    "    items:",
                ]
            lines += [
                f"      - id: item-{i}",
                f"        text: Technical item {i} of {slug} was checked",
                f"        signers: [engineer-{i % 3}@example.com]",
            ]
        lines += ["user_validation:", "  key_users:"]
        for k in range(key_users):
            lines += [
                f"    - email: {key_user(prefix, a, k)}",
                f"      name: Key user {a}.{k}",
                "      role: Operations",
            ]
        lines += ["  scenarios:"]
        lines += [f"    - Use {slug} for everyday task {s}" for s in range(scenarios)]
        (directory / f"{slug}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return slugs


def key_user(prefix: str, application: int, index: int) -> str:
    return f"user-{prefix}-{application:02d}-{index}@example.com"


def sync_and_approve(session: Session, directory: Path, clock: Clock) -> None:
    """Sync every checklist in `directory` and approve each new version by its first reviewer.
    A freeze calendar among them stays pending: tests that want freezes approve them."""
    for outcome in checklists.sync_checklists(
        session, directory, clock=clock, declared_authors=[CHECKLIST_AUTHOR]
    ):
        if outcome.status != "created" or outcome.kind == checklists.FREEZES:
            continue
        stored = checklists.get_version(session, outcome.application, outcome.version)
        checklists.review_version(
            session,
            application=outcome.application,
            version=outcome.version,
            action=governance.APPROVE,
            reviewer=checklist_of(stored).governance.reviewers[0],
            consulted="the key users named in the checklist",
            clock=clock,
        )


def package_spec(
    key: str, applications: Iterable[packages.ApplicationSpec]
) -> packages.PackageSpec:
    """A production release of `applications`, not planned for any date."""
    return packages.PackageSpec(
        key=key,
        title=f"Release {key}",
        environment="production",
        planned_for=None,
        applications=tuple(applications),
    )


def positive_decision(request: SignoffRequest) -> signoff.Decision:
    """A decision that satisfies `request`, with whatever evidence its item asks for."""
    if request.kind == signoff.ITEM:
        return signoff.Decision(signoff.ITEM, signoff.PASS, comment="checked", evidence=EVIDENCE)
    version = request.package_application.checklist_version
    assert version is not None
    scenarios = len(checklist_of(version).user_validation.scenarios)
    return signoff.Decision(
        signoff.KEY_USER, signoff.CONFIRMED, scenarios_confirmed=tuple(range(scenarios))
    )
