"""Hostile-input-safe YAML reading into positioned nodes (no anchors, aliases or tags)."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from gatekeeper.domain.checklist import MAX_DEPTH, MAX_FILE_BYTES, Problem

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

_RESOLVER = yaml.resolver.Resolver()
STR_TAG = "tag:yaml.org,2002:str"
_ALLOWED_EXPLICIT_TAGS = {STR_TAG, "!"}
_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class Scalar:
    raw: str
    tag: str
    plain: bool
    line: int
    col: int


@dataclass(slots=True)
class Mapping:
    line: int
    col: int
    entries: dict[str, tuple[Scalar, Node]] = field(default_factory=dict)


@dataclass(slots=True)
class Sequence:
    line: int
    col: int
    items: list[Node] = field(default_factory=list)


Node = Scalar | Mapping | Sequence


class TreeError(Exception):
    """The file cannot be read as one YAML document; problems say where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems


def _position_of_offset(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters, like YAML marks) of a byte offset into UTF-8 data."""
    line = data.count(b"\n", 0, offset) + 1
    line_start = data.rfind(b"\n", 0, offset) + 1
    col = len(data[line_start:offset].decode("utf-8", "replace")) + 1
    return line, col


def oversize_problem(path: str, size: int) -> Problem:
    return Problem(
        path, 1, 1, f"file is {size} bytes; checklists are limited to {MAX_FILE_BYTES} bytes"
    )


def _decode(data: bytes, path: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise TreeError([oversize_problem(path, len(data))])
    if data.startswith(_BOM):
        raise TreeError(
            [
                Problem(
                    path, 1, 1, "file starts with a byte-order mark; save it as UTF-8 without BOM"
                )
            ]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position_of_offset(data, exc.start)
        raise TreeError([Problem(path, line, col, "file is not valid UTF-8")]) from None
    if "\t" in text:
        for number, line_text in enumerate(text.splitlines(), start=1):
            indent = line_text[: len(line_text) - len(line_text.lstrip(" \t"))]
            if "\t" in indent:
                raise TreeError(
                    [
                        Problem(
                            path,
                            number,
                            indent.index("\t") + 1,
                            "tab character in indentation; YAML indents with spaces only",
                        )
                    ]
                )
    return text


def read_tree(data: bytes, path: str) -> tuple[Node, list[Problem]]:
    """Parse one YAML document into positioned nodes.

    Problems that leave a usable tree (duplicate keys, anchors, tags) are returned beside it so the
    validator can report everything at once; problems that leave no tree raise TreeError.
    """
    text = _decode(data, path)
    problems: list[Problem] = []
    stack: list[Mapping | Sequence] = []
    pending_keys: list[Scalar | None] = []
    root: Node | None = None
    documents = 0

    def add(node: Node, line: int, col: int) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        parent = stack[-1]
        if isinstance(parent, Sequence):
            parent.items.append(node)
            return
        key = pending_keys[-1]
        if key is None:
            if not isinstance(node, Scalar):
                problems.append(Problem(path, line, col, "mapping keys must be plain text"))
                pending_keys[-1] = Scalar("", STR_TAG, False, line, col)
                return
            if node.tag not in (STR_TAG, "alias"):  # an alias key is reported as an alias
                problems.append(
                    Problem(
                        path,
                        line,
                        col,
                        f"key {node.raw!r} is read by YAML as {describe_tag(node.tag)}; "
                        "put it in quotes",
                    )
                )
            pending_keys[-1] = node
            return
        pending_keys[-1] = None
        if key.raw in parent.entries:
            first = parent.entries[key.raw][0]
            problems.append(
                Problem(
                    path,
                    key.line,
                    key.col,
                    f"duplicate key {key.raw!r} (first defined at line {first.line})",
                )
            )
            return
        parent.entries[key.raw] = (key, node)

    def check_anchor_and_tag(event: yaml.Event, line: int, col: int) -> None:
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            problems.append(
                Problem(path, line, col, f"anchors (&{anchor}) are not allowed; repeat the value")
            )
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _ALLOWED_EXPLICIT_TAGS:
            problems.append(Problem(path, line, col, f"YAML tags ({tag}) are not allowed"))

    try:
        for event in yaml.parse(text, Loader=_Loader):
            start = event.start_mark
            line, col = (start.line + 1, start.column + 1) if start else (1, 1)
            if isinstance(event, yaml.ScalarEvent):
                check_anchor_and_tag(event, line, col)
                plain = not event.style
                if event.tag == STR_TAG or not plain:
                    tag = STR_TAG
                else:
                    tag = _RESOLVER.resolve(  # type: ignore[no-untyped-call]
                        yaml.ScalarNode, event.value, event.implicit
                    )
                add(Scalar(event.value, tag, plain, line, col), line, col)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                check_anchor_and_tag(event, line, col)
                if len(stack) >= MAX_DEPTH:
                    problems.append(
                        Problem(path, line, col, f"nesting deeper than {MAX_DEPTH} levels")
                    )
                    raise TreeError(problems)
                node: Mapping | Sequence = (
                    Mapping(line, col)
                    if isinstance(event, yaml.MappingStartEvent)
                    else Sequence(line, col)
                )
                add(node, line, col)
                stack.append(node)
                pending_keys.append(None)
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                stack.pop()
                pending_keys.pop()
            elif isinstance(event, yaml.AliasEvent):
                problems.append(
                    Problem(
                        path,
                        line,
                        col,
                        f"aliases (*{event.anchor}) are not allowed; repeat the value",
                    )
                )
                add(Scalar("", "alias", False, line, col), line, col)
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    problems.append(
                        Problem(path, line, col, "a checklist file holds exactly one YAML document")
                    )
                    raise TreeError(problems)
    except yaml.reader.ReaderError as exc:
        # libyaml gives a byte offset into the UTF-8 text, the pure-Python reader a character offset
        offset = exc.position
        if _Loader is yaml.SafeLoader:  # pragma: no cover - PyYAML built without libyaml
            offset = len(text[: exc.position].encode("utf-8"))
        line, col = _position_of_offset(data, offset)
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        problems.append(
            Problem(
                path,
                line,
                col,
                f"character U+{character:04X} is not allowed in YAML ({exc.reason}); remove it",
            )
        )
        raise TreeError(problems) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(path, line, col, f"YAML syntax error: {exc.problem or exc}"))
        raise TreeError(problems) from None
    except yaml.YAMLError as exc:
        problems.append(Problem(path, 1, 1, f"YAML error: {exc}"))
        raise TreeError(problems) from None
    if root is None:
        raise TreeError([Problem(path, 1, 1, "file is empty")])
    return root, problems


_TAG_NAMES = {
    "tag:yaml.org,2002:bool": "a true/false value",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a decimal number",
    "tag:yaml.org,2002:null": "an empty value (null)",
    "tag:yaml.org,2002:timestamp": "a date",
    "tag:yaml.org,2002:merge": "a merge key",
    "alias": "an alias",
}


def describe_tag(tag: str) -> str:
    return _TAG_NAMES.get(tag, tag)
