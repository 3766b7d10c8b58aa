"""Checklist specification (schema 1): value types, cross-field rules, canonical form."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gatekeeper.domain.errors import ValidationFailed
from gatekeeper.domain.freeze import WindowSpec

SCHEMA_VERSION = 1
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
SLUG_RE = re.compile(SLUG_PATTERN)
EVIDENCE_KINDS = ("none", "url", "text")
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 12
MAX_TITLE_CHARS = 200
MAX_TEXT_CHARS = 2000
MAX_REVIEW_EVERY_DAYS = 3650
MAX_VERSION = 10**9
MAX_QUORUM = 1000
# Characters no checklist text may hold: C0 and C1 controls, line and paragraph separators, and
# the bidirectional controls that make text display differently from what it says (Trojan
# Source). One-line fields (ids, titles, names, emails, scenarios, …) refuse all of them; the
# multi-line description keeps line feeds and tabs. Regular-expression classes that Python and
# JSON Schema (ECMA-262) read alike, so the linter and the published schema refuse the same text.
_BIDI_CONTROLS = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
ONE_LINE_FORBIDDEN = rf"[\u0000-\u001f\u007f-\u009f\u2028\u2029{_BIDI_CONTROLS}]"
MULTI_LINE_FORBIDDEN = rf"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029{_BIDI_CONTROLS}]"

Quorum = int | Literal["all"]
Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a checklist file, at a 1-based line and column."""

    path: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "col": self.col, "message": self.message}


class ChecklistInvalid(ValidationFailed):
    """A checklist file failed validation; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        summary = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(
            f"checklist invalid: {summary}{more}", details=[p.to_dict() for p in problems]
        )


def required_count(quorum: Quorum, eligible: int) -> int:
    return eligible if quorum == "all" else quorum


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    text: str
    signers: tuple[str, ...]
    signers_group: str | None = None
    quorum: Quorum = 1
    evidence: str = "none"

    @property
    def required(self) -> int:
        return required_count(self.quorum, len(self.signers))


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    items: tuple[Item, ...]


@dataclass(frozen=True, slots=True)
class KeyUser:
    email: str
    name: str
    role: str = ""


# A year: a confirmation asked for later than that is not about this release any more.
MAX_CONFIRM_HOURS = 24 * 366
DEFAULT_CONFIRM_AFTER_HOURS = 24
DEFAULT_CONFIRM_WINDOW_HOURS = 72


@dataclass(frozen=True, slots=True)
class ConfirmAfterRelease:
    """When key users are asked "still working after go-live?", and for how long they may
    answer; `after_hours` 0 asks nobody."""

    after_hours: int = DEFAULT_CONFIRM_AFTER_HOURS
    window_hours: int = DEFAULT_CONFIRM_WINDOW_HOURS

    @property
    def enabled(self) -> bool:
        return self.after_hours > 0


@dataclass(frozen=True, slots=True)
class UserValidation:
    key_users: tuple[KeyUser, ...]
    scenarios: tuple[str, ...]
    quorum: Quorum = "all"
    confirm_after_release: ConfirmAfterRelease = ConfirmAfterRelease()
    # Business blackouts the key users declare: no release of this application in them.
    blackouts: tuple[WindowSpec, ...] = ()

    @property
    def required(self) -> int:
        return required_count(self.quorum, len(self.key_users))

    @property
    def emails(self) -> tuple[str, ...]:
        return tuple(k.email for k in self.key_users)


@dataclass(frozen=True, slots=True)
class Governance:
    review_every_days: int
    reviewers: tuple[str, ...]


DEPLOY_PLATFORMS = ("github", "gitlab", "azure_devops")
# What names the place a platform deploys from, in `deploy_targets`.
DEPLOY_PLACE_KEYS = {"github": "repository", "gitlab": "project", "azure_devops": "project"}
_AZURE_SPECIALS = r'\\/:*?"<>|;#$*{},+=\[\]'
# (regular expressions, matched whole) A GitHub `owner/name` or a GitLab
# `group/subgroup/project` path; an Azure DevOps project's name as Azure allows it (up to 64
# characters, spaces included, none of its reserved ones, not starting with `_` or `.`, not
# ending with `.`); an environment's name without white space.
DEPLOY_PLACE_PATTERNS = {
    "github": r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+",
    "gitlab": r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+",
    "azure_devops": rf"[^{_AZURE_SPECIALS}\s._]([^{_AZURE_SPECIALS}\t\n\r\f\v]{{0,62}}"
    rf"[^{_AZURE_SPECIALS}\s.])?",
}
DEPLOY_ENVIRONMENT_PATTERN = r"[^\s/]\S{0,254}"


@dataclass(frozen=True, slots=True)
class DeployTarget:
    """Where a platform deploys this application: a GitHub repository (`owner/name`), a GitLab
    project path or an Azure DevOps project, and one of its environments. Such a deployment
    waits on the gate."""

    platform: str
    project: str
    environment: str

    def to_dict(self) -> dict[str, dict[str, str]]:
        place = DEPLOY_PLACE_KEYS[self.platform]
        return {self.platform: {place: self.project, "environment": self.environment}}


DEFAULT_EMERGENCY_QUORUM = 2
DEFAULT_REVIEW_WITHIN_HOURS = 48
MAX_REVIEW_WITHIN_HOURS = 24 * 90


@dataclass(frozen=True, slots=True)
class Emergency:
    """Who may authorise an emergency release of the application, which items must pass even
    then (`section.item` ids), and how soon after release the deferred rest must be reviewed."""

    approvers: tuple[str, ...]
    approvers_group: str | None = None
    quorum: int = DEFAULT_EMERGENCY_QUORUM
    required_items: tuple[str, ...] = ()
    review_within_hours: int = DEFAULT_REVIEW_WITHIN_HOURS

    def to_dict(self) -> dict[str, Any]:
        return {
            "approvers": self.approvers_group
            if self.approvers_group is not None
            else list(self.approvers),
            "quorum": self.quorum,
            "required_items": list(self.required_items),
            "review_within_hours": self.review_within_hours,
        }


@dataclass(frozen=True, slots=True)
class Consumer:
    name: str
    contact: str


@dataclass(frozen=True, slots=True)
class Checklist:
    application: str
    title: str
    version: int
    owner: str
    governance: Governance
    sections: tuple[Section, ...]
    user_validation: UserValidation
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    consumers: tuple[Consumer, ...] = ()
    description: str = ""
    addresses: tuple[str, ...] = ()
    deploy_targets: tuple[DeployTarget, ...] = ()
    # Who may sign in a signer's or key user's place while they are away.
    deputies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    emergency: Emergency | None = None
    schema: int = SCHEMA_VERSION

    def deputies_of(self, person: str) -> tuple[str, ...]:
        return self.deputies.get(person, ())

    def items(self) -> Iterator[tuple[Section, Item]]:
        for section in self.sections:
            for item in section.items:
                yield section, item

    def to_canonical(self) -> dict[str, Any]:
        """The content that defines a version; formatting and comments of the YAML do not count."""
        doc: dict[str, Any] = {
            "schema": self.schema,
            "application": self.application,
            "title": self.title,
            "version": self.version,
            "owner": self.owner,
            "governance": {
                "review_every_days": self.governance.review_every_days,
                "reviewers": list(self.governance.reviewers),
            },
            "groups": {name: list(members) for name, members in self.groups.items()},
            "sections": [
                {
                    "id": s.id,
                    "title": s.title,
                    "items": [
                        {
                            "id": i.id,
                            "text": i.text,
                            "signers": i.signers_group
                            if i.signers_group is not None
                            else list(i.signers),
                            "quorum": i.quorum,
                            "evidence": i.evidence,
                        }
                        for i in s.items
                    ],
                }
                for s in self.sections
            ],
            "user_validation": {
                "key_users": [
                    {"email": k.email, "name": k.name, "role": k.role}
                    for k in self.user_validation.key_users
                ],
                "quorum": self.user_validation.quorum,
                "scenarios": list(self.user_validation.scenarios),
            },
            "consumers": [{"name": c.name, "contact": c.contact} for c in self.consumers],
        }
        confirm = self.user_validation.confirm_after_release
        # Only when it differs from the defaults: versions written before the setting existed
        # keep their content hash.
        if confirm != ConfirmAfterRelease():
            doc["user_validation"]["confirm_after_release"] = {
                "after_hours": confirm.after_hours,
                "window_hours": confirm.window_hours,
            }
        if self.user_validation.blackouts:
            doc["user_validation"]["blackouts"] = [
                w.to_canonical() for w in self.user_validation.blackouts
            ]
        if self.description:
            doc["description"] = self.description
        if self.addresses:
            doc["addresses"] = list(self.addresses)
        # Only when declared: the digest of every checklist without targets stays what it was.
        if self.deploy_targets:
            doc["deploy_targets"] = [t.to_dict() for t in self.deploy_targets]
        if self.deputies:
            doc["deputies"] = {person: list(d) for person, d in self.deputies.items()}
        if self.emergency is not None:
            doc["emergency"] = self.emergency.to_dict()
        return doc

    @classmethod
    def from_canonical(cls, doc: Mapping[str, Any]) -> Checklist:
        groups = {name: tuple(members) for name, members in doc.get("groups", {}).items()}

        def item(raw: Mapping[str, Any]) -> Item:
            signers = raw["signers"]
            if isinstance(signers, str):
                return Item(
                    raw["id"], raw["text"], groups[signers], signers, raw["quorum"], raw["evidence"]
                )
            return Item(
                raw["id"], raw["text"], tuple(signers), None, raw["quorum"], raw["evidence"]
            )

        uv = doc["user_validation"]
        emergency = None
        if (raw := doc.get("emergency")) is not None:
            approvers = raw["approvers"]
            emergency = Emergency(
                groups[approvers] if isinstance(approvers, str) else tuple(approvers),
                approvers if isinstance(approvers, str) else None,
                raw["quorum"],
                tuple(raw["required_items"]),
                raw["review_within_hours"],
            )
        return cls(
            schema=doc["schema"],
            application=doc["application"],
            title=doc["title"],
            version=doc["version"],
            owner=doc["owner"],
            description=doc.get("description", ""),
            governance=Governance(
                doc["governance"]["review_every_days"], tuple(doc["governance"]["reviewers"])
            ),
            groups=groups,
            sections=tuple(
                Section(s["id"], s["title"], tuple(item(i) for i in s["items"]))
                for s in doc["sections"]
            ),
            user_validation=UserValidation(
                tuple(KeyUser(k["email"], k["name"], k.get("role", "")) for k in uv["key_users"]),
                tuple(uv["scenarios"]),
                uv["quorum"],
                ConfirmAfterRelease(**uv.get("confirm_after_release", {})),
                tuple(WindowSpec.from_canonical(w) for w in uv.get("blackouts", ())),
            ),
            consumers=tuple(Consumer(c["name"], c["contact"]) for c in doc.get("consumers", [])),
            addresses=tuple(doc.get("addresses", ())),
            deploy_targets=tuple(
                DeployTarget(
                    platform, place.get("repository") or place["project"], place["environment"]
                )
                for raw in doc.get("deploy_targets", ())
                for platform, place in raw.items()
            ),
            deputies={p: tuple(d) for p, d in doc.get("deputies", {}).items()},
            emergency=emergency,
        )


def canonical_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def rule_violations(checklist: Checklist) -> list[tuple[Path, str]]:
    """Rules that relate fields to each other; each violation names the path it belongs to."""
    found: list[tuple[Path, str]] = []
    section_ids: set[str] = set()
    item_ids: set[str] = set()
    key_user_emails = set(checklist.user_validation.emails)
    for s_index, section in enumerate(checklist.sections):
        if section.id in section_ids:
            found.append((("sections", s_index, "id"), f"duplicate section id {section.id!r}"))
        section_ids.add(section.id)
        for i_index, item in enumerate(section.items):
            at: Path = ("sections", s_index, "items", i_index)
            if item.id in item_ids:
                found.append(
                    ((*at, "id"), f"duplicate item id {item.id!r} (item ids are unique per file)")
                )
            item_ids.add(item.id)
            if len(set(item.signers)) != len(item.signers):
                found.append(((*at, "signers"), "a signer is listed more than once"))
            if item.quorum != "all" and item.quorum > len(set(item.signers)):
                found.append(
                    (
                        (*at, "quorum"),
                        f"quorum {item.quorum} is more than the {len(set(item.signers))} "
                        "signer(s) of this item",
                    )
                )
            if item.signers and set(item.signers) <= key_user_emails:
                found.append(
                    (
                        (*at, "signers"),
                        "separation of duties: the only signers of this technical item are key "
                        "users of the same application; add an engineer who is not a key user",
                    )
                )
    uv = checklist.user_validation
    seen_users: set[str] = set()
    for index, key_user in enumerate(uv.key_users):
        if key_user.email in seen_users:
            found.append(
                (
                    ("user_validation", "key_users", index, "email"),
                    f"key user {key_user.email} is listed twice",
                )
            )
        seen_users.add(key_user.email)
    if uv.quorum != "all" and uv.quorum > len(uv.key_users):
        found.append(
            (
                ("user_validation", "quorum"),
                f"quorum {uv.quorum} is more than the {len(uv.key_users)} key user(s)",
            )
        )
    if len(set(uv.scenarios)) != len(uv.scenarios):
        found.append((("user_validation", "scenarios"), "a scenario is listed twice"))
    found.extend(_deputy_violations(checklist))
    if checklist.emergency is not None:
        found.extend(_emergency_violations(checklist, checklist.emergency))
    return found


def _deputy_violations(checklist: Checklist) -> list[tuple[Path, str]]:
    """Deputies are bound by the checklist: only its own people have them, nobody deputises for
    themselves, and separation of duties holds for a deputy as it does for the person."""
    found: list[tuple[Path, str]] = []
    engineers = {s for _, item in checklist.items() for s in item.signers}
    # A key user who also signs technical items never validates (the gate's rule), so only
    # the others are on the validating side.
    validating = {k for k in checklist.user_validation.emails if k not in engineers}
    engineer_deputies = {d for p in engineers for d in checklist.deputies_of(p)}
    for person, deputies in checklist.deputies.items():
        if person not in engineers and person not in validating:
            found.append(
                (("deputies", person), f"{person} is not a signer or key user of this checklist")
            )
        if len(set(deputies)) != len(deputies):
            found.append((("deputies", person), "a deputy is listed more than once"))
        for index, deputy in enumerate(deputies):
            at: Path = ("deputies", person, index)
            if deputy == person:
                found.append((at, f"{person} cannot be their own deputy"))
            elif person in validating and (deputy in engineers or deputy in engineer_deputies):
                found.append(
                    (
                        at,
                        f"separation of duties: {deputy} signs technical items of "
                        f"{checklist.application} (or deputises for someone who does), so "
                        f"cannot validate it for key user {person}",
                    )
                )
            elif person in engineers and deputy in validating:
                found.append(
                    (
                        at,
                        f"separation of duties: {deputy} is a key user of "
                        f"{checklist.application}, so cannot sign its technical items for "
                        f"{person}",
                    )
                )
    return found


def _emergency_violations(checklist: Checklist, emergency: Emergency) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    approvers = len(set(emergency.approvers))
    if emergency.quorum > approvers:
        found.append(
            (
                ("emergency", "quorum"),
                f"quorum {emergency.quorum} is more than the {approvers} emergency approver(s)",
            )
        )
    known = {f"{s.id}.{i.id}" for s, i in checklist.items()}
    for index, ref in enumerate(emergency.required_items):
        if ref not in known:
            found.append(
                (
                    ("emergency", "required_items", index),
                    f"unknown item {ref!r}: name an item as section.item "
                    f"({', '.join(sorted(known))})",
                )
            )
    return found
