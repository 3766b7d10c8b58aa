"""What changed between two versions of a checklist: sections, items, key users, scenarios."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gatekeeper.domain.checklist import Checklist, Item, KeyUser, Section

ADDED = "added"
REMOVED = "removed"
REWORDED = "reworded"  # an item's text changed
CHANGED = "changed"  # something other than the text changed (signers, quorum, evidence, place)
RETITLED = "retitled"  # a section kept its id but got a new title


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One named value that differs; values are rendered as text for people to read."""

    field: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class SectionChange:
    id: str
    change: str
    old_title: str = ""
    new_title: str = ""


@dataclass(frozen=True, slots=True)
class ItemChange:
    id: str
    section: str  # the section id the item is in (the new one, or the old one when removed)
    change: str
    old_text: str = ""
    new_text: str = ""
    details: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyUserChange:
    email: str
    change: str
    details: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True)
class ChecklistDiff:
    application: str
    old_version: int
    new_version: int
    fields: tuple[FieldChange, ...]
    sections: tuple[SectionChange, ...]
    items: tuple[ItemChange, ...]
    key_users: tuple[KeyUserChange, ...]
    scenarios_added: tuple[str, ...]
    scenarios_removed: tuple[str, ...]

    @property
    def unchanged(self) -> bool:
        return not (
            self.fields
            or self.sections
            or self.items
            or self.key_users
            or self.scenarios_added
            or self.scenarios_removed
        )


def _text(values: Iterable[str]) -> str:
    return ", ".join(values) or "(none)"


def _compare(field: str, old: object, new: object) -> list[FieldChange]:
    return [] if old == new else [FieldChange(field, str(old), str(new))]


def _signers(item: Item) -> str:
    members = _text(item.signers)
    return f"group {item.signers_group} ({members})" if item.signers_group else members


def _item_details(
    old: Item, new: Item, old_section: str, new_section: str
) -> tuple[FieldChange, ...]:
    return tuple(
        _compare("section", old_section, new_section)
        + _compare("signers", _signers(old), _signers(new))
        + _compare("quorum", old.quorum, new.quorum)
        + _compare("evidence", old.evidence, new.evidence)
    )


def _items_by_id(checklist: Checklist) -> dict[str, tuple[Section, Item]]:
    return {item.id: (section, item) for section, item in checklist.items()}


def _section_changes(old: Checklist, new: Checklist) -> list[SectionChange]:
    before = {s.id: s for s in old.sections}
    after = {s.id: s for s in new.sections}
    changes: list[SectionChange] = []
    for section in new.sections:
        previous = before.get(section.id)
        if previous is None:
            changes.append(SectionChange(section.id, ADDED, new_title=section.title))
        elif previous.title != section.title:
            changes.append(SectionChange(section.id, RETITLED, previous.title, section.title))
    changes.extend(
        SectionChange(s.id, REMOVED, old_title=s.title) for s in old.sections if s.id not in after
    )
    return changes


def _item_changes(old: Checklist, new: Checklist) -> list[ItemChange]:
    before = _items_by_id(old)
    after = _items_by_id(new)
    changes: list[ItemChange] = []
    for item_id, (section, item) in after.items():
        if item_id not in before:
            changes.append(ItemChange(item_id, section.id, ADDED, new_text=item.text))
            continue
        old_section, old_item = before[item_id]
        details = _item_details(old_item, item, old_section.id, section.id)
        if old_item.text != item.text:
            changes.append(
                ItemChange(item_id, section.id, REWORDED, old_item.text, item.text, details)
            )
        elif details:
            changes.append(ItemChange(item_id, section.id, CHANGED, item.text, item.text, details))
    changes.extend(
        ItemChange(item_id, section.id, REMOVED, old_text=item.text)
        for item_id, (section, item) in before.items()
        if item_id not in after
    )
    return changes


def _key_user_changes(old: Checklist, new: Checklist) -> list[KeyUserChange]:
    before = {k.email: k for k in old.user_validation.key_users}
    after = {k.email: k for k in new.user_validation.key_users}

    def details(a: KeyUser, b: KeyUser) -> tuple[FieldChange, ...]:
        return tuple(_compare("name", a.name, b.name) + _compare("role", a.role, b.role))

    changes: list[KeyUserChange] = []
    for email, key_user in after.items():
        if email not in before:
            changes.append(KeyUserChange(email, ADDED))
        elif found := details(before[email], key_user):
            changes.append(KeyUserChange(email, CHANGED, found))
    changes.extend(KeyUserChange(email, REMOVED) for email in before if email not in after)
    return changes


def _groups(checklist: Checklist) -> dict[str, str]:
    return {name: _text(members) for name, members in checklist.groups.items()}


def _field_changes(old: Checklist, new: Checklist) -> list[FieldChange]:
    found = (
        _compare("title", old.title, new.title)
        + _compare("owner", old.owner, new.owner)
        + _compare("description", old.description, new.description)
        + _compare(
            "review every (days)",
            old.governance.review_every_days,
            new.governance.review_every_days,
        )
        + _compare(
            "governance reviewers",
            _text(old.governance.reviewers),
            _text(new.governance.reviewers),
        )
        + _compare("key-user quorum", old.user_validation.quorum, new.user_validation.quorum)
        + _compare(
            "consumers",
            _text(f"{c.name} <{c.contact}>" for c in old.consumers),
            _text(f"{c.name} <{c.contact}>" for c in new.consumers),
        )
        + _compare("addresses findings", _text(old.addresses), _text(new.addresses))
    )
    old_groups, new_groups = _groups(old), _groups(new)
    for name in sorted(set(old_groups) | set(new_groups)):
        found += _compare(
            f"group {name}", old_groups.get(name, "(none)"), new_groups.get(name, "(none)")
        )
    return found


def diff_checklists(old: Checklist, new: Checklist) -> ChecklistDiff:
    """Everything a reviewer must notice going from `old` to `new` (any two versions)."""
    old_scenarios = set(old.user_validation.scenarios)
    new_scenarios = set(new.user_validation.scenarios)
    return ChecklistDiff(
        application=new.application,
        old_version=old.version,
        new_version=new.version,
        fields=tuple(_field_changes(old, new)),
        sections=tuple(_section_changes(old, new)),
        items=tuple(_item_changes(old, new)),
        key_users=tuple(_key_user_changes(old, new)),
        scenarios_added=tuple(s for s in new.user_validation.scenarios if s not in old_scenarios),
        scenarios_removed=tuple(s for s in old.user_validation.scenarios if s not in new_scenarios),
    )
