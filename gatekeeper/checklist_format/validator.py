"""Turn a positioned YAML tree into a Checklist, reporting every problem as path:line:col."""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path as FilePath
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from gatekeeper.checklist_format.recurrence import RuleInvalid, rule_of
from gatekeeper.checklist_format.yaml_tree import (
    STR_TAG,
    Mapping,
    Node,
    Scalar,
    Sequence,
    TreeError,
    describe_tag,
    oversize_problem,
    read_tree,
)
from gatekeeper.domain import proposal as proposal_rules
from gatekeeper.domain.checklist import (
    DEFAULT_EMERGENCY_QUORUM,
    DEFAULT_REVIEW_WITHIN_HOURS,
    DEPLOY_ENVIRONMENT_PATTERN,
    DEPLOY_PLACE_KEYS,
    DEPLOY_PLACE_PATTERNS,
    DEPLOY_PLATFORMS,
    EVIDENCE_KINDS,
    MAX_CONFIRM_HOURS,
    MAX_FILE_BYTES,
    MAX_QUORUM,
    MAX_REVIEW_EVERY_DAYS,
    MAX_REVIEW_WITHIN_HOURS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    MAX_VERSION,
    MULTI_LINE_FORBIDDEN,
    ONE_LINE_FORBIDDEN,
    SCHEMA_VERSION,
    SLUG_RE,
    Checklist,
    ChecklistInvalid,
    ConfirmAfterRelease,
    Consumer,
    DeployTarget,
    Emergency,
    Governance,
    Item,
    KeyUser,
    Path,
    Problem,
    Quorum,
    Section,
    UserValidation,
    rule_violations,
)
from gatekeeper.domain.freeze import Calendar, WindowSpec, window_problems

# No leading zeros: YAML 1.1 reads `010` as octal 8, so it must not pass here as 10.
_DECIMAL_RE = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_INT_TAG = "tag:yaml.org,2002:int"
_EXPECTED_KINDS = {Mapping: "a mapping (key: value)", Sequence: "a list", Scalar: "a single value"}
_ONE_LINE_FORBIDDEN_RE = re.compile(ONE_LINE_FORBIDDEN)
_MULTI_LINE_FORBIDDEN_RE = re.compile(MULTI_LINE_FORBIDDEN)
_LINE_BREAKS = frozenset("\n\r\x85\u2028\u2029")


def _label(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "document"


def _kind(node: Node) -> str:
    return _EXPECTED_KINDS[type(node)]


def _forbidden_character(value: str, *, multiline: bool) -> str | None:
    """Why `value` cannot be stored as checklist text, or None when it can."""
    found = (_MULTI_LINE_FORBIDDEN_RE if multiline else _ONE_LINE_FORBIDDEN_RE).search(value)
    if found is None:
        return None
    character = found.group()
    code = f"U+{ord(character):04X}"
    if unicodedata.category(character) == "Cf":
        return (
            f"contains {code} ({unicodedata.name(character)}), an invisible control that "
            "changes how the text around it reads; remove it"
        )
    if character in _LINE_BREAKS:
        shown = f"{code} (a line break)"
    elif character == "\t":
        shown = f"{code} (a tab)"
    else:
        shown = f"{code} (a control character)"
    if multiline:
        return f"contains {shown}; of such characters this field allows only new lines and tabs"
    return f"contains {shown}; a one-line field cannot hold line breaks, tabs or control characters"


class _Reader:
    """Reads typed values out of nodes; each failed read records a problem and returns None."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []
        self.about_aliases: list[Problem] = []

    def fail(self, node: Node | Scalar, where: Path, message: str) -> None:
        problem = Problem(self.path, node.line, node.col, f"{_label(where)}: {message}")
        self.problems.append(problem)
        if isinstance(node, Scalar) and node.tag == "alias":
            self.about_aliases.append(problem)  # read_tree reports the alias itself; not shown

    def shown(self) -> list[Problem]:
        return [p for p in self.problems if not any(p is a for a in self.about_aliases)]

    def mapping(
        self, node: Node, where: Path, required: Iterable[str], optional: Iterable[str] = ()
    ) -> Mapping | None:
        if not isinstance(node, Mapping):
            self.fail(node, where, f"expected {_kind(Mapping(0, 0))}, found {_kind(node)}")
            return None
        required = tuple(required)
        known = (*required, *optional)
        for key, (key_node, _) in node.entries.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f"; known fields: {', '.join(known)}"
                )
                self.fail(key_node, (*where, key), f"unknown field {key!r}{hint}")
        for key in required:
            if key not in node.entries:
                self.fail(node, where, f"missing required field {key!r}")
        return node

    def sequence(self, node: Node, where: Path, *, at_least: int = 1) -> list[Node] | None:
        if not isinstance(node, Sequence):
            self.fail(node, where, f"expected a list, found {_kind(node)}")
            return None
        if len(node.items) < at_least:
            self.fail(
                node, where, f"needs at least {at_least} entr{'y' if at_least == 1 else 'ies'}"
            )
            return None
        return node.items

    def text(
        self, node: Node, where: Path, *, max_chars: int = MAX_TEXT_CHARS, multiline: bool = False
    ) -> str | None:
        if not isinstance(node, Scalar):
            self.fail(node, where, f"expected text, found {_kind(node)}")
            return None
        if node.tag != STR_TAG:
            if node.tag == "tag:yaml.org,2002:null":
                self.fail(node, where, "is empty")
            else:
                self.fail(
                    node,
                    where,
                    f"expected text, but {node.raw!r} is read by YAML as {describe_tag(node.tag)}; "
                    "put it in quotes",
                )
            return None
        value = node.raw.strip()
        if not value:
            self.fail(node, where, "is empty")
            return None
        if len(value) > max_chars:
            self.fail(node, where, f"is {len(value)} characters; the limit is {max_chars}")
            return None
        if (refused := _forbidden_character(value, multiline=multiline)) is not None:
            self.fail(node, where, refused)
            return None
        return value

    def integer(self, node: Node, where: Path, *, minimum: int, maximum: int) -> int | None:
        if not isinstance(node, Scalar):
            self.fail(node, where, f"expected a whole number, found {_kind(node)}")
            return None
        if node.tag == "tag:yaml.org,2002:float":
            self.fail(
                node,
                where,
                f"must be a whole number; {node.raw!r} is read as a decimal number "
                "(versions and counts are integers: 1, 2, 3, …)",
            )
            return None
        if node.tag != _INT_TAG or not _DECIMAL_RE.match(node.raw):
            what = "text" if node.tag == STR_TAG else describe_tag(node.tag)
            self.fail(
                node, where, f"must be a whole number written in decimal, found {what} {node.raw!r}"
            )
            return None
        digits = node.raw.lstrip("+-")
        if len(digits) > len(str(max(abs(minimum), abs(maximum)))):
            # Out of range whatever the digits; and int() refuses more than 4300 of them.
            self.fail(
                node,
                where,
                f"must be between {minimum} and {maximum}, found a {len(digits)}-digit number",
            )
            return None
        value = int(node.raw)
        if not minimum <= value <= maximum:
            self.fail(node, where, f"must be between {minimum} and {maximum}, found {value}")
            return None
        return value

    def slug(self, node: Node, where: Path) -> str | None:
        value = self.text(node, where, max_chars=64)
        if value is not None and not SLUG_RE.fullmatch(value):
            self.fail(
                node,
                where,
                f"{value!r} is not a valid id: use lower-case letters, digits and inner hyphens",
            )
            return None
        return value

    def email(self, node: Node, where: Path) -> str | None:
        value = self.text(node, where, max_chars=254)
        if value is None:
            return None
        try:
            return _normalized_email(value)
        except EmailNotValidError as exc:
            self.fail(node, where, f"{value!r} is not a valid email address ({exc})")
            return None

    def emails(self, node: Node, where: Path) -> tuple[str, ...] | None:
        items = self.sequence(node, where)
        if items is None:
            return None
        found = [self.email(item, (*where, index)) for index, item in enumerate(items)]
        return None if None in found else tuple(e for e in found if e is not None)

    def quorum(self, node: Node, where: Path, maximum: int) -> Quorum | None:
        if isinstance(node, Scalar) and node.tag == STR_TAG:
            if node.raw == "all":
                return "all"
            self.fail(node, where, f'must be a whole number or "all", found {node.raw!r}')
            return None
        return self.integer(node, where, minimum=1, maximum=maximum)


@functools.lru_cache(maxsize=4096)
def _normalized_email(value: str) -> str:
    # The same people sign many checklists; validating each address once keeps lint fast.
    return str(validate_email(value, check_deliverability=False).normalized).lower()


def _value(entries: Mapping, key: str) -> Node | None:
    entry = entries.entries.get(key)
    return entry[1] if entry else None


def _build(reader: _Reader, root: Node) -> Checklist | None:
    top = reader.mapping(
        root,
        (),
        required=(
            "schema",
            "application",
            "title",
            "version",
            "owner",
            "governance",
            "sections",
            "user_validation",
        ),
        optional=(
            "description",
            "groups",
            "consumers",
            "addresses",
            "deploy_targets",
            "deputies",
            "emergency",
        ),
    )
    if top is None:
        return None

    def get(key: str) -> Node | None:
        return _value(top, key)

    schema_node = get("schema")
    if schema_node is not None:
        schema = reader.integer(schema_node, ("schema",), minimum=1, maximum=1000)
        if schema is not None and schema != SCHEMA_VERSION:
            reader.fail(
                schema_node,
                ("schema",),
                f"unsupported schema {schema}; this Gatekeeper reads schema {SCHEMA_VERSION}",
            )
    application = reader.slug(n, ("application",)) if (n := get("application")) else None
    title = reader.text(n, ("title",), max_chars=MAX_TITLE_CHARS) if (n := get("title")) else None
    version = (
        reader.integer(n, ("version",), minimum=1, maximum=MAX_VERSION)
        if (n := get("version"))
        else None
    )
    owner = reader.email(n, ("owner",)) if (n := get("owner")) else None
    description = (
        reader.text(n, ("description",), multiline=True) if (n := get("description")) else ""
    )

    governance = None
    if (n := get("governance")) is not None and (
        g := reader.mapping(n, ("governance",), required=("review_every_days", "reviewers"))
    ):
        every = (
            reader.integer(
                v, ("governance", "review_every_days"), minimum=1, maximum=MAX_REVIEW_EVERY_DAYS
            )
            if (v := _value(g, "review_every_days"))
            else None
        )
        reviewers = (
            reader.emails(v, ("governance", "reviewers")) if (v := _value(g, "reviewers")) else None
        )
        if every is not None and reviewers is not None:
            governance = Governance(every, reviewers)

    groups: dict[str, tuple[str, ...]] = {}
    groups_ok = True
    if (n := get("groups")) is not None:
        if not isinstance(n, Mapping):
            reader.fail(
                n, ("groups",), f"expected a mapping of group name to emails, found {_kind(n)}"
            )
            groups_ok = False
        else:
            for name, (key_node, members_node) in n.entries.items():
                if not SLUG_RE.fullmatch(name):
                    reader.fail(key_node, ("groups", name), f"{name!r} is not a valid group name")
                    groups_ok = False
                members = reader.emails(members_node, ("groups", name))
                if members is None:
                    groups_ok = False
                else:
                    groups[name] = members

    sections: list[Section] = []
    sections_ok = True
    if (n := get("sections")) is not None and (raw_sections := reader.sequence(n, ("sections",))):
        for s_index, s_node in enumerate(raw_sections):
            at: Path = ("sections", s_index)
            s_map = reader.mapping(s_node, at, required=("id", "title", "items"))
            if s_map is None:
                sections_ok = False
                continue
            s_id = reader.slug(v, (*at, "id")) if (v := _value(s_map, "id")) else None
            s_title = (
                reader.text(v, (*at, "title"), max_chars=MAX_TITLE_CHARS)
                if (v := _value(s_map, "title"))
                else None
            )
            items: list[Item] = []
            items_ok = True
            raw_items = (
                reader.sequence(v, (*at, "items")) if (v := _value(s_map, "items")) else None
            )
            for i_index, i_node in enumerate(raw_items or ()):
                item = _read_item(reader, i_node, (*at, "items", i_index), groups, groups_ok)
                if item is None:
                    items_ok = False
                else:
                    items.append(item)
            if s_id and s_title and raw_items is not None and items_ok:
                sections.append(Section(s_id, s_title, tuple(items)))
            else:
                sections_ok = False
    else:
        sections_ok = False

    user_validation = _read_user_validation(reader, get("user_validation"))

    consumers: list[Consumer] = []
    if (n := get("consumers")) is not None and (
        raw_consumers := reader.sequence(n, ("consumers",), at_least=0)
    ) is not None:
        for c_index, c_node in enumerate(raw_consumers):
            at = ("consumers", c_index)
            c_map = reader.mapping(c_node, at, required=("name", "contact"))
            if c_map is None:
                continue
            consumer = (
                reader.text(v, (*at, "name"), max_chars=MAX_TITLE_CHARS)
                if (v := _value(c_map, "name"))
                else None
            )
            contact = reader.email(v, (*at, "contact")) if (v := _value(c_map, "contact")) else None
            if consumer and contact:
                consumers.append(Consumer(consumer, contact))

    addresses: list[str] = []
    if (n := get("addresses")) is not None and (
        raw_addresses := reader.sequence(n, ("addresses",), at_least=0)
    ) is not None:
        for a_index, a_node in enumerate(raw_addresses):
            finding = reader.text(a_node, ("addresses", a_index), max_chars=64)
            if finding and proposal_rules.malformed_ref(finding):
                # A mistyped proposal id would silently adopt nothing.
                reader.fail(
                    a_node,
                    ("addresses", a_index),
                    f"{finding!r} is not a proposal id; a proposed scenario is named like P-3",
                )
            elif finding:
                addresses.append(finding)

    deploy_targets = _read_deploy_targets(reader, get("deploy_targets"))
    deputies = _read_deputies(reader, get("deputies"))
    emergency = _read_emergency(reader, n, groups, groups_ok) if (n := get("emergency")) else None

    if (
        reader.problems
        or not (sections_ok and groups_ok)
        or application is None
        or title is None
        or version is None
        or owner is None
        or governance is None
        or user_validation is None
    ):
        return None
    return Checklist(
        application=application,
        title=title,
        version=version,
        owner=owner,
        description=description or "",
        governance=governance,
        groups=groups,
        sections=tuple(sections),
        user_validation=user_validation,
        consumers=tuple(consumers),
        addresses=tuple(addresses),
        deploy_targets=deploy_targets,
        deputies=deputies,
        emergency=emergency,
    )


def _read_deputies(reader: _Reader, node: Node | None) -> dict[str, tuple[str, ...]]:
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        reader.fail(
            node, ("deputies",), f"expected a mapping of email to deputies, found {_kind(node)}"
        )
        return {}
    deputies: dict[str, tuple[str, ...]] = {}
    for raw, (key_node, value_node) in node.entries.items():
        person = reader.email(key_node, ("deputies", raw))
        listed = reader.emails(value_node, ("deputies", raw))
        if person is not None and listed is not None:
            deputies[person] = listed
    return deputies


def _people(
    reader: _Reader,
    node: Node | None,
    at: Path,
    groups: dict[str, tuple[str, ...]],
    groups_ok: bool,
) -> tuple[tuple[str, ...] | None, str | None]:
    """A list of emails, or the name of a group: (the people, the group name if one was named).
    An unknown group is reported only when the groups themselves read cleanly."""
    if node is None:
        return None, None
    if isinstance(node, Scalar) and node.tag == STR_TAG:
        if node.raw in groups:
            return groups[node.raw], node.raw
        if groups_ok:
            known = ", ".join(groups) or "none are defined"
            reader.fail(node, at, f"unknown group {node.raw!r} (groups: {known})")
        return None, node.raw
    return reader.emails(node, at), None


def _read_emergency(
    reader: _Reader, node: Node, groups: dict[str, tuple[str, ...]], groups_ok: bool
) -> Emergency | None:
    at: Path = ("emergency",)
    found = reader.mapping(
        node,
        at,
        required=("approvers",),
        optional=("quorum", "required_items", "review_within_hours"),
    )
    if found is None:
        return None
    before = len(reader.problems)
    approvers, group = _people(
        reader, _value(found, "approvers"), (*at, "approvers"), groups, groups_ok
    )
    quorum: int | None = DEFAULT_EMERGENCY_QUORUM
    if (v := _value(found, "quorum")) is not None:
        quorum = reader.integer(v, (*at, "quorum"), minimum=1, maximum=MAX_QUORUM)
    required: list[str] = []
    if (v := _value(found, "required_items")) is not None:
        for index, r_node in enumerate(
            reader.sequence(v, (*at, "required_items"), at_least=0) or ()
        ):
            ref = reader.text(r_node, (*at, "required_items", index), max_chars=129)
            if ref is not None:
                required.append(ref)
    hours: int | None = DEFAULT_REVIEW_WITHIN_HOURS
    if (v := _value(found, "review_within_hours")) is not None:
        hours = reader.integer(
            v, (*at, "review_within_hours"), minimum=1, maximum=MAX_REVIEW_WITHIN_HOURS
        )
    if len(reader.problems) > before or approvers is None or quorum is None or hours is None:
        return None
    return Emergency(approvers, group, quorum, tuple(required), hours)


_PLACE_RES = {platform: re.compile(p) for platform, p in DEPLOY_PLACE_PATTERNS.items()}
_ENVIRONMENT_RE = re.compile(DEPLOY_ENVIRONMENT_PATTERN)


def _read_deploy_targets(reader: _Reader, node: Node | None) -> tuple[DeployTarget, ...]:
    if node is None:
        return ()
    raw = reader.sequence(node, ("deploy_targets",), at_least=0)
    targets: list[DeployTarget] = []
    for index, t_node in enumerate(raw or ()):
        at: Path = ("deploy_targets", index)
        t_map = reader.mapping(t_node, at, required=(), optional=DEPLOY_PLATFORMS)
        if t_map is None:
            continue
        platforms = [k for k in t_map.entries if k in DEPLOY_PLATFORMS]
        if len(t_map.entries) != 1 or len(platforms) != 1:
            reader.fail(t_node, at, "name exactly one platform: github, gitlab or azure_devops")
            continue
        platform = platforms[0]
        place = DEPLOY_PLACE_KEYS[platform]
        p_node = _value(t_map, platform)
        assert p_node is not None  # the key was just read from this mapping
        p_map = reader.mapping(p_node, (*at, platform), required=(place, "environment"))
        if p_map is None:
            continue
        project = reader.text(v, (*at, platform, place)) if (v := _value(p_map, place)) else None
        environment = (
            reader.text(v, (*at, platform, "environment"))
            if (v := _value(p_map, "environment"))
            else None
        )
        if project is not None and not _PLACE_RES[platform].fullmatch(project):
            where = (*at, platform, place)
            kind = "an Azure DevOps project name" if platform == "azure_devops" else "a path"
            reader.fail(_value(p_map, place) or p_node, where, f"{project!r} is not {kind}")
            continue
        if environment is not None and not _ENVIRONMENT_RE.fullmatch(environment):
            where = (*at, platform, "environment")
            reader.fail(
                _value(p_map, "environment") or p_node, where, f"{environment!r} is not valid"
            )
            continue
        if project and environment:
            targets.append(DeployTarget(platform, project, environment))
    return tuple(targets)


def _read_item(
    reader: _Reader, node: Node, at: Path, groups: dict[str, tuple[str, ...]], groups_ok: bool
) -> Item | None:
    i_map = reader.mapping(
        node, at, required=("id", "text", "signers"), optional=("quorum", "evidence")
    )
    if i_map is None:
        return None
    before = len(reader.problems)
    item_id = reader.slug(v, (*at, "id")) if (v := _value(i_map, "id")) else None
    text = reader.text(v, (*at, "text")) if (v := _value(i_map, "text")) else None
    signers, group = _people(reader, _value(i_map, "signers"), (*at, "signers"), groups, groups_ok)
    quorum: Quorum | None = 1
    if (v := _value(i_map, "quorum")) is not None:
        quorum = reader.quorum(v, (*at, "quorum"), maximum=MAX_QUORUM)
    evidence: str | None = "none"
    if (v := _value(i_map, "evidence")) is not None:
        evidence = reader.text(v, (*at, "evidence"), max_chars=16)
        if evidence is not None and evidence not in EVIDENCE_KINDS:
            reader.fail(
                v,
                (*at, "evidence"),
                f"must be one of {', '.join(EVIDENCE_KINDS)}, found {evidence!r}",
            )
            evidence = None
    if len(reader.problems) > before or not (item_id and text and signers and quorum and evidence):
        return None
    return Item(item_id, text, signers, group, quorum, evidence)


def _read_user_validation(reader: _Reader, node: Node | None) -> UserValidation | None:
    if node is None:
        return None
    at: Path = ("user_validation",)
    uv = reader.mapping(
        node,
        at,
        required=("key_users", "scenarios"),
        optional=("quorum", "confirm_after_release", "blackouts"),
    )
    if uv is None:
        return None
    key_users: list[KeyUser] = []
    users_ok = False
    if (v := _value(uv, "key_users")) is not None and (
        raw_users := reader.sequence(v, (*at, "key_users"))
    ):
        users_ok = True
        for k_index, k_node in enumerate(raw_users):
            k_at = (*at, "key_users", k_index)
            k_map = reader.mapping(k_node, k_at, required=("email", "name"), optional=("role",))
            if k_map is None:
                users_ok = False
                continue
            email = reader.email(e, (*k_at, "email")) if (e := _value(k_map, "email")) else None
            name = (
                reader.text(e, (*k_at, "name"), max_chars=MAX_TITLE_CHARS)
                if (e := _value(k_map, "name"))
                else None
            )
            role = (
                reader.text(e, (*k_at, "role"), max_chars=MAX_TITLE_CHARS)
                if (e := _value(k_map, "role"))
                else ""
            )
            if email and name and role is not None:
                key_users.append(KeyUser(email, name, role))
            else:
                users_ok = False
    scenarios: list[str] = []
    scenarios_ok = False
    if (v := _value(uv, "scenarios")) is not None and (
        raw_scenarios := reader.sequence(v, (*at, "scenarios"))
    ):
        found = [reader.text(s, (*at, "scenarios", i)) for i, s in enumerate(raw_scenarios)]
        scenarios = [s for s in found if s]
        scenarios_ok = len(scenarios) == len(found)
    quorum: Quorum | None = "all"
    if (v := _value(uv, "quorum")) is not None:
        quorum = reader.quorum(v, (*at, "quorum"), maximum=MAX_QUORUM)
    confirm: ConfirmAfterRelease | None = ConfirmAfterRelease()
    if (v := _value(uv, "confirm_after_release")) is not None:
        confirm = _read_confirm_after_release(reader, v, (*at, "confirm_after_release"))
    blackouts: tuple[WindowSpec, ...] | None = ()
    if (v := _value(uv, "blackouts")) is not None:
        blackouts = _read_windows(reader, v, (*at, "blackouts"), blackout=True)
    if (
        users_ok
        and scenarios_ok
        and quorum is not None
        and confirm is not None
        and blackouts is not None
    ):
        return UserValidation(tuple(key_users), tuple(scenarios), quorum, confirm, blackouts)
    return None


_FIXED = ("starts", "ends")
_RECURRING = ("rrule", "duration", "timezone")
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


def _read_instant(reader: _Reader, node: Node, where: Path) -> datetime | None:
    """An ISO 8601 date and time with its UTC offset (quoted or not)."""
    if not isinstance(node, Scalar) or node.tag not in (STR_TAG, _TIMESTAMP_TAG):
        reader.fail(node, where, "expected a date and time such as 2026-12-18T18:00:00+01:00")
        return None
    try:
        found = datetime.fromisoformat(node.raw.strip())
    except ValueError:
        reader.fail(node, where, f"{node.raw!r} is not an ISO 8601 date and time")
        return None
    if found.tzinfo is None:
        reader.fail(node, where, f"{node.raw!r} has no UTC offset; add one (+01:00, Z)")
        return None
    return found


def _read_windows(
    reader: _Reader, node: Node, at: Path, *, blackout: bool
) -> tuple[WindowSpec, ...] | None:
    """Freeze windows or blackouts: each `starts`/`ends`, or `rrule`/`duration`/`timezone`."""
    raw = reader.sequence(node, at, at_least=0)
    if raw is None:
        return None
    before = len(reader.problems)
    windows: list[WindowSpec] = []
    seen: set[str] = set()
    for index, w_node in enumerate(raw):
        window = _read_window(reader, w_node, (*at, index), blackout=blackout)
        if window is None:
            continue
        if window.id in seen:
            where = (*at, index, "id")
            reader.fail(_locate(w_node, ("id",)), where, f"duplicate window id {window.id!r}")
        seen.add(window.id)
        windows.append(window)
    return tuple(windows) if len(reader.problems) == before else None


def _read_window(reader: _Reader, node: Node, at: Path, *, blackout: bool) -> WindowSpec | None:
    w_map = reader.mapping(
        node, at, required=("id", "title", "reason"), optional=(*_FIXED, *_RECURRING, "applies_to")
    )
    if w_map is None:
        return None
    before = len(reader.problems)
    given = {k for k in w_map.entries if k in (*_FIXED, *_RECURRING)}
    if given not in (set(_FIXED), set(_RECURRING)):
        reader.fail(
            node,
            at,
            "unknown window shape: give starts and ends, or rrule, duration and timezone"
            + (f" (found {', '.join(sorted(given))})" if given else ""),
        )
    window_id = reader.slug(v, (*at, "id")) if (v := _value(w_map, "id")) else None
    title = (
        reader.text(v, (*at, "title"), max_chars=MAX_TITLE_CHARS)
        if (v := _value(w_map, "title"))
        else None
    )
    reason = reader.text(v, (*at, "reason")) if (v := _value(w_map, "reason")) else None
    times = {
        name: _read_instant(reader, v, (*at, name))
        for name in _FIXED
        if (v := _value(w_map, name)) is not None
    }
    texts = {
        name: reader.text(v, (*at, name), max_chars=500)
        for name in _RECURRING
        if (v := _value(w_map, name)) is not None
    }
    environments: tuple[str, ...] = ()
    applications: tuple[str, ...] = ()
    if (v := _value(w_map, "applies_to")) is not None:
        scope = _read_scope(reader, v, (*at, "applies_to"), blackout=blackout)
        if scope is not None:
            environments, applications = scope
    if len(reader.problems) > before or window_id is None or title is None or reason is None:
        return None
    spec = WindowSpec(
        window_id,
        title,
        reason,
        starts=times.get("starts"),
        ends=times.get("ends"),
        rrule=texts.get("rrule") or "",
        duration=texts.get("duration") or "",
        timezone=texts.get("timezone") or "",
        environments=environments,
        applications=applications,
    )
    for name, message in window_problems(spec):
        reader.fail(_locate(node, (name,)), (*at, name), message)
    if spec.recurring and not any(name == "timezone" for name, _ in window_problems(spec)):
        try:
            rule_of(spec.rrule, ZoneInfo(spec.timezone))
        except RuleInvalid as exc:
            reader.fail(
                _locate(node, ("rrule",)), (*at, "rrule"), f"not a usable RFC 5545 rule: {exc}"
            )
    return spec if len(reader.problems) == before else None


def _read_scope(
    reader: _Reader, node: Node, at: Path, *, blackout: bool
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    names = ("environments",) if blackout else ("environments", "applications")
    scope = reader.mapping(node, at, required=(), optional=names)
    if scope is None:
        return None
    found: dict[str, tuple[str, ...]] = {}
    for name in names:
        if (v := _value(scope, name)) is None:
            continue
        items = reader.sequence(v, (*at, name))
        read = [
            reader.slug(i, (*at, name, n))
            if name == "applications"
            else reader.text(i, (*at, name, n), max_chars=255)
            for n, i in enumerate(items or ())
        ]
        found[name] = tuple(r for r in read if r is not None)
    return found.get("environments", ()), found.get("applications", ())


def _build_calendar(reader: _Reader, root: Node) -> Calendar | None:
    top = reader.mapping(root, (), required=("schema", "kind", "version", "governance", "freezes"))
    if top is None:
        return None
    schema_node = _value(top, "schema")
    if schema_node is not None:
        schema = reader.integer(schema_node, ("schema",), minimum=1, maximum=1000)
        if schema is not None and schema != SCHEMA_VERSION:
            reader.fail(schema_node, ("schema",), f"unsupported schema {schema}")
    version = (
        reader.integer(v, ("version",), minimum=1, maximum=MAX_VERSION)
        if (v := _value(top, "version"))
        else None
    )
    reviewers = None
    if (v := _value(top, "governance")) is not None and (
        g := reader.mapping(v, ("governance",), required=("reviewers",))
    ):
        reviewers = (
            reader.emails(r, ("governance", "reviewers")) if (r := _value(g, "reviewers")) else None
        )
    windows = (
        _read_windows(reader, v, ("freezes",), blackout=False)
        if (v := _value(top, "freezes")) is not None
        else None
    )
    if reader.problems or version is None or reviewers is None or windows is None:
        return None
    return Calendar(version, reviewers, windows)


FREEZES_KIND = "freezes"


def _kind_of(root: Node) -> str | None:
    """The document's `kind:` (checklists have none)."""
    if isinstance(root, Mapping) and (found := _value(root, "kind")) is not None:
        return found.raw if isinstance(found, Scalar) else ""
    return None


def parse_document(data: bytes, path: str) -> Checklist | Calendar:
    """A checklist, or the freeze calendar (`kind: freezes`); ChecklistInvalid listing every
    problem otherwise."""
    try:
        root, tree_problems = read_tree(data, path)
    except TreeError as exc:
        raise ChecklistInvalid(exc.problems) from None
    kind = _kind_of(root)
    if kind is None:
        return _checklist_of_tree(root, tree_problems, path)
    reader = _Reader(path)
    if kind != FREEZES_KIND:
        reader.fail(
            _locate(root, ("kind",)),
            ("kind",),
            f"unknown kind {kind!r}; the only kind is {FREEZES_KIND!r} (checklists have none)",
        )
        raise ChecklistInvalid(reader.problems)
    calendar = _build_calendar(reader, root)
    if calendar is None or tree_problems:
        raise ChecklistInvalid(sorted(tree_problems + reader.shown(), key=_position))
    return calendar


def _read_confirm_after_release(
    reader: _Reader, node: Node, at: Path
) -> ConfirmAfterRelease | None:
    found = reader.mapping(node, at, required=(), optional=("after_hours", "window_hours"))
    if found is None:
        return None
    before = len(reader.problems)
    hours: dict[str, int] = {}
    for name, minimum in (("after_hours", 0), ("window_hours", 1)):
        if (v := _value(found, name)) is not None and (
            value := reader.integer(v, (*at, name), minimum=minimum, maximum=MAX_CONFIRM_HOURS)
        ) is not None:
            hours[name] = value
    if len(reader.problems) > before:
        return None
    return ConfirmAfterRelease(**hours)


def _locate(root: Node, path: Path) -> Node:
    node = root
    for part in path:
        if isinstance(node, Mapping) and isinstance(part, str) and part in node.entries:
            node = node.entries[part][1]
        elif isinstance(node, Sequence) and isinstance(part, int) and part < len(node.items):
            node = node.items[part]
        else:
            break
    return node


def parse_checklist(data: bytes, path: str) -> Checklist:
    """Read one checklist file's bytes; raise ChecklistInvalid listing every problem."""
    try:
        root, tree_problems = read_tree(data, path)
    except TreeError as exc:
        raise ChecklistInvalid(exc.problems) from None
    return _checklist_of_tree(root, tree_problems, path)


def _checklist_of_tree(root: Node, tree_problems: list[Problem], path: str) -> Checklist:
    reader = _Reader(path)
    checklist = _build(reader, root)
    if checklist is None or tree_problems:
        raise ChecklistInvalid(sorted(tree_problems + reader.shown(), key=_position))
    for where, message in rule_violations(checklist):
        reader.fail(_locate(root, where), where, message)
    if reader.problems:
        raise ChecklistInvalid(sorted(reader.problems, key=_position))
    return checklist


def _position(problem: Problem) -> tuple[int, int]:
    return problem.line, problem.col


def load_checklist_file(path: FilePath, display: str | None = None) -> Checklist:
    found = load_document_file(path, display)
    if isinstance(found, Calendar):
        shown = display or str(path)
        raise ChecklistInvalid(
            [Problem(shown, 1, 1, "this is the freeze calendar, not a checklist")]
        )
    return found


def load_document_file(path: FilePath, display: str | None = None) -> Checklist | Calendar:
    """A checklist file or the freeze calendar file, read with the same limits."""
    shown = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ChecklistInvalid([oversize_problem(shown, size)])
        data = path.read_bytes()
    except OSError as exc:
        raise ChecklistInvalid(
            [Problem(shown, 1, 1, f"cannot read file: {exc.strerror}")]
        ) from None
    return parse_document(data, shown)
