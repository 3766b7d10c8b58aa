"""The submission plan: who will be asked to sign what, before a package is submitted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gatekeeper.domain.checklist import Checklist
from gatekeeper.domain.signoff import technical_signers


@dataclass(frozen=True, slots=True)
class PlannedApplication:
    """An application as the release manager picked it, with its latest approved checklist."""

    application: str
    version_label: str
    checklist: Checklist | None


@dataclass(frozen=True, slots=True)
class PlannedRequirement:
    """One thing that will need sign-off: an item, or an application's key-user validation."""

    application: str
    section: str | None  # the section title; None for key-user validation
    item_id: str | None
    text: str
    asked: tuple[str, ...]  # who will get a request
    excluded: tuple[str, ...]  # listed, but not asked (separation of duties)
    needed: int
    evidence: str = "none"

    @property
    def reachable(self) -> bool:
        return len(self.asked) >= self.needed


@dataclass(frozen=True, slots=True)
class ApplicationPlan:
    application: str
    version_label: str
    checklist_version: int | None
    requirements: tuple[PlannedRequirement, ...]
    scenarios: tuple[str, ...]

    @property
    def required(self) -> int:
        return sum(r.needed for r in self.requirements)

    @property
    def requests(self) -> int:
        """One per person asked per requirement: what submitting creates."""
        return sum(len(r.asked) for r in self.requirements)


@dataclass(frozen=True, slots=True)
class PersonPlan:
    email: str
    asks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    applications: tuple[ApplicationPlan, ...]
    people: tuple[PersonPlan, ...]
    problems: tuple[str, ...]

    @property
    def required(self) -> int:
        return sum(a.required for a in self.applications)

    @property
    def requests(self) -> int:
        return sum(a.requests for a in self.applications)


def _application_plan(
    picked: PlannedApplication, checklist: Checklist, assembler: str
) -> ApplicationPlan:
    requirements: list[PlannedRequirement] = []
    for section, item in checklist.items():
        requirements.append(
            PlannedRequirement(
                application=picked.application,
                section=section.title,
                item_id=item.id,
                text=item.text,
                asked=tuple(s for s in item.signers if s != assembler),
                excluded=tuple(s for s in item.signers if s == assembler),
                needed=item.required,
                evidence=item.evidence,
            )
        )
    engineers = technical_signers(checklist)
    key_users = checklist.user_validation.emails
    requirements.append(
        PlannedRequirement(
            application=picked.application,
            section=None,
            item_id=None,
            text="Key-user validation: the key users confirm every scenario still works",
            asked=tuple(u for u in key_users if u != assembler and u not in engineers),
            excluded=tuple(u for u in key_users if u == assembler or u in engineers),
            needed=checklist.user_validation.required,
        )
    )
    return ApplicationPlan(
        picked.application,
        picked.version_label,
        checklist.version,
        tuple(requirements),
        checklist.user_validation.scenarios,
    )


def plan_submission(applications: Sequence[PlannedApplication], *, assembler: str) -> Plan:
    """Mirror what submitting will request (same exclusions as the gate), person by person."""
    plans: list[ApplicationPlan] = []
    problems: list[str] = []
    asks: dict[str, list[str]] = {}
    for picked in sorted(applications, key=lambda a: a.application):
        if picked.checklist is None:
            problems.append(
                f"{picked.application} has no approved checklist: the gate will be blocked "
                "until a governance reviewer approves one"
            )
            plans.append(ApplicationPlan(picked.application, picked.version_label, None, (), ()))
            continue
        plan = _application_plan(picked, picked.checklist, assembler)
        plans.append(plan)
        for requirement in plan.requirements:
            what = (
                f"{requirement.application}: {requirement.section} › {requirement.text}"
                if requirement.section is not None
                else f"{requirement.application}: key-user validation"
            )
            for person in requirement.asked:
                asks.setdefault(person, []).append(what)
            if not requirement.reachable:
                problems.append(
                    f"{what} needs {requirement.needed} sign-off(s) but only "
                    f"{len(requirement.asked)} listed signer(s) may sign (separation of duties)"
                )
    people = tuple(PersonPlan(email, tuple(items)) for email, items in sorted(asks.items()))
    return Plan(tuple(plans), people, tuple(problems))
