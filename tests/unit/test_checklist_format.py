"""Checklist files: samples parse, bad files fail where expected, schema and linter agree."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.checklist_format.schema import checklist_json_schema
from gatekeeper.checklist_format.validator import load_checklist_file, parse_checklist
from gatekeeper.domain.checklist import (
    EVIDENCE_KINDS,
    MAX_FILE_BYTES,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    SLUG_PATTERN,
    Checklist,
    ChecklistInvalid,
    Problem,
    canonical_json,
    content_digest,
)

REPO = Path(__file__).resolve().parents[2]
# The sample checklists; checklists/freezes.yaml beside them is the freeze calendar.
SAMPLES = sorted(p for p in (REPO / "checklists").glob("*.yaml") if p.name != "freezes.yaml")
CORPUS = REPO / "tests" / "data" / "invalid"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text("utf-8"))
COMMITTED = sorted(name for name, entry in EXPECTED.items() if not entry.get("generated"))
OVERSIZE = "oversize-2mb.yaml"
PAYMENTS = (REPO / "checklists" / "payments-api.yaml").read_text("utf-8")

FORMAT_CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(
    checklist_json_schema(), format_checker=FORMAT_CHECKER
)


def oversize_bytes() -> bytes:
    """A real checklist padded with comment lines past 2 MiB (generated, never committed)."""
    padding_line = b"# " + b"padding so the file is larger than the size limit " * 2 + b"\n"
    body = PAYMENTS.encode("utf-8")
    lines = (2 * 1024 * 1024 - len(body)) // len(padding_line) + 1
    data = body + padding_line * lines
    assert len(data) > 2 * 1024 * 1024
    return data


def corpus_bytes(name: str) -> bytes:
    return oversize_bytes() if name == OVERSIZE else (CORPUS / name).read_bytes()


def problems_of(data: bytes, path: str = "x.yaml") -> list[Problem]:
    with pytest.raises(ChecklistInvalid) as caught:
        parse_checklist(data, path)
    return caught.value.problems


def position_of(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based line and column of the start of the n-th `needle` in `text`, found independently."""
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


# --- valid samples -----------------------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_sample_parses(sample: Path) -> None:
    checklist = load_checklist_file(sample)
    assert checklist.application == sample.stem
    assert checklist.sections
    assert checklist.user_validation.key_users
    assert checklist.user_validation.scenarios


def test_there_are_samples() -> None:
    assert len(SAMPLES) >= 3


# --- the invalid corpus ------------------------------------------------------------------------


def test_corpus_files_and_expectations_match() -> None:
    on_disk = {p.name for p in CORPUS.glob("*.yaml")}
    assert on_disk == set(COMMITTED)
    assert len(on_disk) >= 28
    generated = set(EXPECTED) - set(COMMITTED)
    assert generated == {OVERSIZE}
    assert not (CORPUS / OVERSIZE).exists()


def test_expectations_are_well_formed() -> None:
    for name, entry in EXPECTED.items():
        assert {"line", "col", "message", "count", "schema_rejects"} <= entry.keys(), name
        assert entry["line"] >= 1, name
        assert entry["col"] >= 1, name
        assert entry["count"] >= 1, name
        assert entry["schema_rejects"] in (True, False, None), name


@pytest.mark.parametrize("name", [*COMMITTED, OVERSIZE])
def test_corpus_file_fails_exactly_where_expected(name: str) -> None:
    entry = EXPECTED[name]
    problems = problems_of(corpus_bytes(name), f"checklists/{name}")
    expected = (entry["line"], entry["col"])
    matching = [
        p for p in problems if (p.line, p.col) == expected and entry["message"] in p.message
    ]
    assert matching, f"no problem at {expected} containing {entry['message']!r}: {problems}"
    assert len(problems) == entry["count"], problems
    if entry["count"] == 1:
        assert problems[0] is matching[0]
    assert all(p.path == f"checklists/{name}" for p in problems)
    assert problems == sorted(problems, key=lambda p: (p.line, p.col))


def test_the_error_message_names_file_line_and_column() -> None:
    name = "unknown-group.yaml"
    with pytest.raises(ChecklistInvalid) as caught:
        load_checklist_file(CORPUS / name, display=f"checklists/{name}")
    entry = EXPECTED[name]
    assert str(caught.value.problems[0]).startswith(
        f"checklists/{name}:{entry['line']}:{entry['col']}: "
    )
    assert caught.value.details == [p.to_dict() for p in caught.value.problems]


def test_oversize_file_reports_its_real_size_at_1_1(tmp_path: Path) -> None:
    data = oversize_bytes()
    big = tmp_path / "big.yaml"
    big.write_bytes(data)
    for problems in (problems_of(data), _load_problems(big)):
        assert len(problems) == 1
        problem = problems[0]
        assert (problem.line, problem.col) == (1, 1)
        assert f"file is {len(data)} bytes" in problem.message
        assert f"limited to {MAX_FILE_BYTES} bytes" in problem.message


def _load_problems(path: Path) -> list[Problem]:
    with pytest.raises(ChecklistInvalid) as caught:
        load_checklist_file(path)
    return caught.value.problems


def test_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    problems = _load_problems(tmp_path / "missing.yaml")
    assert len(problems) == 1
    assert "cannot read file" in problems[0].message


def test_all_errors_are_reported_at_once() -> None:
    text = (
        PAYMENTS.replace("title: Payments API", "title: no")
        .replace("version: 7", "version: 1.10")
        .replace("evidence: text", "evidence: screenshot")
    )
    problems = problems_of(text.encode())
    assert [(p.line, p.col) for p in problems] == [
        position_of(text, "no\n"),
        position_of(text, "1.10"),
        position_of(text, "screenshot"),
    ]
    assert "true/false" in problems[0].message
    assert "decimal number" in problems[1].message
    assert "screenshot" in problems[2].message


def test_rule_violations_are_all_reported_too() -> None:
    text = PAYMENTS.replace("quorum: 2", "quorum: 4").replace("- id: operations", "- id: security")
    problems = problems_of(text.encode())
    assert len(problems) == 2
    assert [(p.line, p.col) for p in problems] == [
        position_of(text, "4\n"),
        position_of(text, "security", 1),
    ]


@pytest.mark.parametrize("occurrence", range(PAYMENTS.count("evidence: url")))
def test_line_numbers_point_at_the_broken_value(occurrence: int) -> None:
    marker = "evidence: url"
    index = -1
    for _ in range(occurrence + 1):
        index = PAYMENTS.index(marker, index + 1)
    text = PAYMENTS[:index] + "evidence: screenshot" + PAYMENTS[index + len(marker) :]
    (problem,) = problems_of(text.encode())
    line, col = position_of(text, "screenshot")
    assert line > 10  # deep in the file, not a default 0 or 1
    assert (problem.line, problem.col) == (line, col)


def test_corpus_positions_are_real_lines() -> None:
    file_level = {"utf8-bom.yaml", "empty.yaml", OVERSIZE}
    for name, entry in EXPECTED.items():
        if name in file_level:
            assert (entry["line"], entry["col"]) == (1, 1), name
            continue
        text = (CORPUS / name).read_bytes().decode("utf-8", "replace")
        assert 1 < entry["line"] <= text.count("\n") + 1, name
        line_text = text.split("\n")[entry["line"] - 1]
        assert entry["col"] <= len(line_text), name


def test_columns_count_characters_not_bytes() -> None:
    (problem,) = problems_of(b"title: Caf\xc3\xa9 \xff\n")
    assert (problem.line, problem.col) == (1, 13)
    assert "not valid UTF-8" in problem.message
    (problem,) = problems_of("a: b\ntitle: «Café» \x07\n".encode())
    assert (problem.line, problem.col) == (2, 15)
    assert "U+0007" in problem.message


HUGE = "9" * 5000
WHOLE_NUMBER_FIELDS = [
    # (old text, new text, field label)
    ("version: 7\n", f"version: {HUGE}\n", "version"),
    ("schema: 1\n", f"schema: {HUGE}\n", "schema"),
    ("review_every_days: 90\n", f"review_every_days: -{HUGE}\n", "governance.review_every_days"),
    ("        quorum: 2\n", f"        quorum: {HUGE}\n", "sections[0].items[1].quorum"),
    ("  quorum: all\n  scenarios:", f"  quorum: +{HUGE}\n  scenarios:", "user_validation.quorum"),
]


@pytest.mark.parametrize(("old", "new", "field"), WHOLE_NUMBER_FIELDS)
def test_a_huge_whole_number_is_a_problem_not_a_crash(old: str, new: str, field: str) -> None:
    assert PAYMENTS.count(old) == 1, old
    text = PAYMENTS.replace(old, new)
    (problem,) = problems_of(text.encode())
    assert (problem.line, problem.col) == position_of(text, new.strip().split(": ")[1])
    assert problem.message.startswith(f"{field}: must be between ")
    assert problem.message.endswith("found a 5000-digit number")


@pytest.mark.parametrize("digits", [11, 4300, 4301, 100_000])
def test_no_length_of_number_crashes(digits: int) -> None:
    (problem,) = problems_of(PAYMENTS.replace("version: 7", "version: " + "1" * digits).encode())
    assert f"found a {digits}-digit number" in problem.message


def test_a_whole_number_at_its_bound_is_accepted() -> None:
    text = PAYMENTS.replace("version: 7", "version: 1000000000")
    assert parse_checklist(text.encode(), "x.yaml").version == 10**9
    (problem,) = problems_of(PAYMENTS.replace("version: 7", "version: 1000000001").encode())
    assert "must be between 1 and 1000000000, found 1000000001" in problem.message


ONE_LINE_FIELDS = [
    # (old text, field label): every one-line field of a checklist, one of each kind
    ("application: payments-api", "application"),
    ("title: Payments API", "title"),
    ("owner: payments-team@example.com", "owner"),
    ("    title: Build and package", "sections[0].title"),
    ("      - id: artifacts-from-ci", "sections[0].items[0].id"),
    ("        text: Dependency scan shows no unresolved critical findings",
     "sections[1].items[0].text"),
    ("        evidence: text", "sections[0].items[1].evidence"),
    ("      name: Dana Ortiz", "user_validation.key_users[0].name"),
    ("      role: Settlement operations", "user_validation.key_users[0].role"),
    ("    - email: settlement-lead@example.com", "user_validation.key_users[0].email"),
    ("    - Search a payment by its card's last four digits and open its history",
     "user_validation.scenarios[2]"),
    ("  - name: finance-ledger", "consumers[1].name"),
    ("    contact: ledger-team@example.com", "consumers[1].contact"),
    ("  reviewers: [release-board@example.com]", "governance.reviewers[0]"),
]  # fmt: skip
FORBIDDEN = [
    ("\\r\\n", "U+000D (a line break)"),
    ("\\n", "U+000A (a line break)"),
    ("\\t", "U+0009 (a tab)"),
    ("\\0", "U+0000 (a control character)"),
    ("\\e[31m", "U+001B (a control character)"),
    ("\\x85", "U+0085 (a line break)"),
    ("\\u2028", "U+2028 (a line break)"),
    ("\\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("\\u2066", "U+2066 (LEFT-TO-RIGHT ISOLATE)"),
    ("\\u200f", "U+200F (RIGHT-TO-LEFT MARK)"),
    ("\\u061c", "U+061C (ARABIC LETTER MARK)"),
]


def _with_escape(line: str, escape: str) -> str:
    """`line` with its value double-quoted and `escape` (YAML escape syntax) inside it."""
    prefix, _, value = line.rpartition(": ") if ": " in line else line.rpartition("- ")
    separator = ": " if ": " in line else "- "
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1]
        return f'{prefix}{separator}["{inner[:2]}{escape}{inner[2:]}"]'
    return f'{prefix}{separator}"{value[:2]}{escape}{value[2:]}"'


@pytest.mark.parametrize(("old", "field"), ONE_LINE_FIELDS)
@pytest.mark.parametrize(("escape", "shown"), FORBIDDEN)
def test_one_line_fields_refuse_control_and_bidi_characters(
    old: str, field: str, escape: str, shown: str
) -> None:
    assert PAYMENTS.count(old) == 1, old
    new = _with_escape(old, escape)
    text = PAYMENTS.replace(old, new)
    problems = problems_of(text.encode())
    assert problems, new
    line, _ = position_of(text, new)
    mine = [p for p in problems if p.line == line and p.message.startswith(f"{field}: contains ")]
    assert mine, problems
    assert shown in mine[0].message


def test_a_bidi_override_typed_as_is_is_refused_where_it_stands() -> None:
    text = PAYMENTS.replace("title: Payments API", "title: Payments \u202eIPA")
    (problem,) = problems_of(text.encode())
    assert (problem.line, problem.col) == position_of(text, "Payments \u202e")
    assert problem.message == (
        "title: contains U+202E (RIGHT-TO-LEFT OVERRIDE), an invisible control that changes "
        "how the text around it reads; remove it"
    )


DESCRIPTION = PAYMENTS[PAYMENTS.index("description: >-") : PAYMENTS.index("governance:")]


def test_the_description_keeps_line_breaks_and_tabs_but_nothing_else() -> None:
    quoted = PAYMENTS.replace(DESCRIPTION, 'description: "Card\\tcapture\\nand refunds"\n')
    literal = PAYMENTS.replace(DESCRIPTION, DESCRIPTION.replace(">-", "|-"))
    assert parse_checklist(quoted.encode(), "x.yaml").description == "Card\tcapture\nand refunds"
    assert "\n" in parse_checklist(literal.encode(), "x.yaml").description
    for escape, shown in [
        ("\\r", "U+000D (a line break); of such characters this field allows only new lines"),
        ("\\e", "U+001B (a control character)"),
        ("\\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ]:
        text = PAYMENTS.replace(DESCRIPTION, f'description: "Card{escape}capture"\n')
        (problem,) = problems_of(text.encode())
        assert problem.message.startswith(f"description: contains {shown}")


@pytest.mark.parametrize(("escape", "valid"), [("", True), ("\u202e", False), ("\r\n", False)])
def test_the_schema_refuses_the_same_characters(escape: str, valid: bool) -> None:
    data = yaml.safe_load(PAYMENTS)
    data["title"] = f"Payments{escape}"
    data["user_validation"]["scenarios"][0] += escape
    data["description"] = f"two\nlines\twith a tab{escape.replace(chr(10), '')}"
    assert SCHEMA_VALIDATOR.is_valid(data) is valid
    data = yaml.safe_load(PAYMENTS)
    data["title"] = "Payments\n"
    assert not SCHEMA_VALIDATOR.is_valid(data), "a trailing line break is a line break too"


def test_leading_zero_is_not_read_as_decimal() -> None:
    (problem,) = problems_of(PAYMENTS.replace("version: 7", "version: 07").encode())
    assert "written in decimal" in problem.message
    checklist = parse_checklist(PAYMENTS.replace("version: 7", "version: 70").encode(), "x.yaml")
    assert checklist.version == 70


GROUPS_BLOCK = (
    "groups:\n  build-engineers: [ana@example.com, raj@example.com]\n"
    "  payments-engineers: [li@example.com, tomas@example.com, raj@example.com]\n"
)
SCAN_TEXT = "text: Dependency scan shows no unresolved critical findings"
SECOND_KEY_USER = (
    "    - email: refunds-desk@example.com\n      name: Malik Henderson\n"
    "      role: Customer refunds desk\n"
)
OPERATIONS = PAYMENTS[PAYMENTS.index("  - id: operations") : PAYMENTS.index("user_validation:")]
OPERATIONS_EMPTY = "  - id: operations\n    title: Operations readiness\n    items: []\n"
ONE_MISTAKE = [
    # (old text, new text, where the problem is, message part)
    ("title: Payments API", "title: " + "T" * 201, "TTT", "is 201 characters; the limit is 200"),
    ("title: Payments API", "title: ~", "~", "title: is empty"),
    ("title: Payments API", "title: '  '", "'  '", "title: is empty"),
    ("version: 7", "version: {major: 7}", "{major", "expected a whole number, found a mapping"),
    ("review_every_days: 90", "review_every_days: 0", "0\n  rev", "must be between 1 and 3650"),
    ("review_every_days: 90", "review_every_days: ~", "~", "found an empty value (null) '~'"),
    ("        quorum: 1\n", "        quorum: most\n", "most", 'must be a whole number or "all"'),
    ("        quorum: 1\n", "        quorum: 0\n", "0\n    ", "between 1 and 1000, found 0"),
    (GROUPS_BLOCK, "groups: [ana@example.com]\n", "[ana", "expected a mapping of group name"),
    ("  build-engineers:", "  Build_Engineers:", "Build_", "'Build_Engineers' is not a valid"),
    (GROUPS_BLOCK, GROUPS_BLOCK + "  2024: [ana@example.com]\n", "2024", "read by YAML as a num"),
    (SCAN_TEXT, "text: [Dependency scan]", "[Dep", "items[0].text: expected text, found a list"),
    ("      name: Dana Ortiz\n", "", "email: settlement", "missing required field 'name'"),
    ("contact: ledger-team@example.com", "contact: ledger-team", "ledger-team\n", "not a valid"),
    ("consumers:\n", "addresses: [F-1, '']\nconsumers:\n", "''", "addresses[1]: is empty"),
    ("consumers:\n", "addresses: [P-3, P-0]\nconsumers:\n", "P-0", "named like P-3"),
    (SECOND_KEY_USER, "    - refunds-desk@example.com\n", "refunds-desk", "expected a mapping"),
    (OPERATIONS, OPERATIONS_EMPTY, "[]", "sections[2].items: needs at least 1 entry"),
    ("  payments-engineers:", '  "": [ana@example.com]\n  payments-engineers:', '""', "group name"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "needle", "message"), ONE_MISTAKE)
def test_one_mistake_one_problem_at_its_place(
    old: str, new: str, needle: str, message: str
) -> None:
    assert old in PAYMENTS
    text = PAYMENTS.replace(old, new, 1)
    problems = problems_of(text.encode())
    assert [(p.line, p.col) for p in problems] == [position_of(text, needle)], problems
    assert message in problems[0].message


# --- the JSON Schema ---------------------------------------------------------------------------


def _walk(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            found.append((f"{where}/properties/{name}", sub))
        for key, value in node.items():
            found.extend(_walk(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_walk(value, f"{where}/{index}"))
    return found


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = checklist_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://gatekeeper.invalid/schema/checklist-1.json"
    assert schema["title"]
    json.dumps(schema)  # plain JSON, ready to publish


def test_every_field_has_a_description_and_objects_are_closed() -> None:
    schema = checklist_json_schema()
    fields = _walk(schema)
    assert len(fields) > 25
    for where, sub in fields:
        assert sub.get("description"), f"{where} has no description"

    def closed(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node["additionalProperties"] is False
            for value in node.values():
                closed(value)
        elif isinstance(node, list):
            for value in node:
                closed(value)

    closed(schema)


def test_schema_is_built_from_the_domain_constants() -> None:
    schema = checklist_json_schema()
    defs = schema["$defs"]
    assert defs["slug"]["pattern"] == SLUG_PATTERN
    assert defs["item"]["properties"]["evidence"]["enum"] == list(EVIDENCE_KINDS)
    assert schema["properties"]["title"]["maxLength"] == MAX_TITLE_CHARS
    assert defs["item"]["properties"]["text"]["maxLength"] == MAX_TEXT_CHARS
    assert schema["required"] == [
        "schema",
        "application",
        "title",
        "version",
        "owner",
        "governance",
        "sections",
        "user_validation",
    ]
    assert defs["item"]["required"] == ["id", "text", "signers"]
    assert schema["properties"]["user_validation"]["required"] == ["key_users", "scenarios"]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_every_sample_validates_under_the_schema(sample: Path) -> None:
    data = yaml.safe_load(sample.read_bytes())
    errors = [e.message for e in SCHEMA_VALIDATOR.iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (1, True),
        ("all", True),
        (0, False),
        ("some", False),
        (1.5, False),
        (True, False),
    ],
)
def test_schema_quorum(value: object, valid: bool) -> None:
    data = yaml.safe_load(PAYMENTS)
    data["sections"][0]["items"][0]["quorum"] = value
    data["user_validation"]["quorum"] = value
    assert SCHEMA_VALIDATOR.is_valid(data) is valid


@pytest.mark.parametrize("name", [*COMMITTED, OVERSIZE])
def test_schema_and_linter_agree_on_the_corpus(name: str) -> None:
    entry = EXPECTED[name]
    data = corpus_bytes(name)
    if entry["schema_rejects"] is None:
        # PyYAML converts integers with int(), which refuses more than 4300 digits (ValueError)
        with pytest.raises((yaml.YAMLError, ValueError)):
            yaml.safe_load(data)
        return
    loaded = yaml.safe_load(data)
    # is_valid stops at the first error, so the alias bomb is never walked in full
    assert SCHEMA_VALIDATOR.is_valid(loaded) is not entry["schema_rejects"]


# --- canonical form and digest -----------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_canonical_form_round_trips(sample: Path) -> None:
    checklist = load_checklist_file(sample)
    canonical = checklist.to_canonical()
    assert Checklist.from_canonical(canonical) == checklist
    assert Checklist.from_canonical(json.loads(canonical_json(canonical))) == checklist


def _digest(text: str) -> str:
    return content_digest(parse_checklist(text.encode(), "x.yaml").to_canonical())


def test_digest_ignores_comments_formatting_and_key_order() -> None:
    original = _digest(PAYMENTS)
    no_comments = "\n".join(line for line in PAYMENTS.split("\n") if not line.startswith("#"))
    commented = PAYMENTS.replace("sections:\n", "# technical checks\nsections:  # ordered\n")
    block_list = PAYMENTS.replace(
        "  reviewers: [release-board@example.com]",
        "  reviewers:\n    - 'release-board@example.com'",
    )
    reordered_keys = PAYMENTS.replace("title: Payments API\nversion: 7\n", "").replace(
        "schema: 1\n", 'schema: 1\nversion: 7\ntitle: "Payments API"\n'
    )
    swapped_item_keys = PAYMENTS.replace(
        "        quorum: 1\n        evidence: url\n", "        evidence: url\n        quorum: 1\n"
    )
    folded = PAYMENTS.replace(
        "description: >-\n  Card capture, refunds and end-of-day settlement for the back office.\n",
        "description: >-\n  Card capture, refunds and end-of-day\n"
        "  settlement for the back office.\n",
    )
    variants = [no_comments, commented, block_list, reordered_keys, swapped_item_keys, folded]
    for variant in variants:
        assert variant != PAYMENTS
        assert _digest(variant) == original


def test_digest_changes_when_the_content_changes() -> None:
    original = _digest(PAYMENTS)
    changed_text = PAYMENTS.replace("a tagged commit", "a signed tag")
    changed_order = PAYMENTS.replace(
        "    - Refund a card payment from the back-office screen and see it in the refund queue "
        "within a minute\n",
        "",
    ).replace(
        "  scenarios:\n",
        "  scenarios:\n    - Refund a card payment from the back-office screen and see it in the "
        "refund queue within a minute\n",
    )
    changed_default = PAYMENTS.replace("        quorum: 1\n", "")  # same meaning, same digest
    assert _digest(changed_text) != original
    assert _digest(changed_order) != original
    assert _digest(changed_default) == original


# --- nothing but a Checklist or ChecklistInvalid, whatever the input ------------------------------

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=2),
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _parse_or_problems(data: bytes) -> Checklist | list[Problem]:
    """Anything other than a Checklist or ChecklistInvalid propagates and fails the test."""
    try:
        return parse_checklist(data, "fuzz.yaml")
    except ChecklistInvalid as exc:
        problems = exc.problems
    assert problems
    for problem in problems:
        assert problem.path == "fuzz.yaml"
        assert problem.line >= 1
        assert problem.col >= 1
        assert problem.message
    return problems


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    _parse_or_problems(data)


@FUZZ
@given(st.text(max_size=2000))
def test_arbitrary_text_never_crashes(text: str) -> None:
    _parse_or_problems(text.encode("utf-8", "surrogatepass"))


YAML_BITS = [
    ":", "-", " ", "  ", "\n", "\t", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!!int ",
    "? ", "|", ">", "'", '"', "#", "---\n", "...\n", "%YAML 1.1\n", "~", "null", "no", "on", "yes",
    "0x1F", "010", "1.10", "1e3", "1:30", ".inf", "2024-01-01", "<<: ", "all", "0", "-1",
    "@", "@example.com", "\ufeff", "\x00", "\x1b", "\u2028", "\r", "é",
]  # fmt: skip


@st.composite
def mutated_sample(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from([p.read_text("utf-8") for p in SAMPLES]))
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "drop"]))
        lines = text.split("\n")
        if operation in ("duplicate", "drop"):
            index = draw(st.integers(0, len(lines) - 1))
            if operation == "duplicate":
                lines.insert(index, lines[index])
            else:
                del lines[index]
            text = "\n".join(lines)
            continue
        at = draw(st.integers(0, len(text)))
        width = draw(st.integers(0, 12)) if operation != "insert" else 0
        bit = "" if operation == "delete" else draw(st.sampled_from(YAML_BITS))
        text = text[:at] + bit + text[at + width :]
    return text


@FUZZ
@given(mutated_sample())
def test_mutated_samples_never_crash(text: str) -> None:
    _parse_or_problems(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(
    st.sampled_from(["title", "application", "owner", "version", "schema"]),
    st.text(max_size=40),
)
def test_any_scalar_in_a_field_never_crashes(field: str, value: str) -> None:
    text = re.sub(rf"(?m)^{field}: .*$", lambda _: f"{field}: {value}", PAYMENTS, count=1)
    _parse_or_problems(text.encode("utf-8", "surrogatepass"))


# --- user_validation.confirm_after_release -----------------------------------------------------

PAYMENTS_SAMPLE = Path(__file__).parents[2] / "checklists" / "payments-api.yaml"


def _with_confirm(block: str) -> str:
    text = PAYMENTS_SAMPLE.read_text(encoding="utf-8")
    return re.sub(r"(?m)^(  scenarios:\n)", block + r"\g<1>", text, count=1)


def test_confirm_after_release_is_read_with_its_defaults() -> None:
    text = _with_confirm("  confirm_after_release:\n    after_hours: 0\n")
    confirm = parse_checklist(text.encode(), "x.yaml").user_validation.confirm_after_release
    assert (confirm.after_hours, confirm.window_hours, confirm.enabled) == (0, 72, False)
    plain = parse_checklist(PAYMENTS_SAMPLE.read_bytes(), "x.yaml").user_validation
    assert (plain.confirm_after_release.after_hours, plain.confirm_after_release.window_hours) == (
        24,
        72,
    )


@pytest.mark.parametrize(
    ("block", "needle", "message"),
    [
        ("    after_hours: -1\n", "-1", "between 0 and"),
        ("    window_hours: 0\n", "0\n", "between 1 and"),
        ("    after_hours: '24'\n", "'24'", "whole number"),
        ("    after_hours: 1.5\n", "1.5", "decimal"),
        ("    every_hours: 3\n", "every_hours", "every_hours"),
    ],
)
def test_confirm_after_release_errors_name_file_line_and_column(
    block: str, needle: str, message: str
) -> None:
    text = _with_confirm("  confirm_after_release:\n" + block)
    (problem,) = problems_of(text.encode(), "checklists/payments-api.yaml")
    line, col = position_of(text, needle, text[: text.index("confirm_after_release")].count(needle))
    assert (problem.path, problem.line, problem.col) == ("checklists/payments-api.yaml", line, col)
    assert message in problem.message


def test_confirm_after_release_is_in_the_json_schema() -> None:
    text = _with_confirm("  confirm_after_release:\n    after_hours: 2\n    window_hours: 8\n")
    jsonschema.validate(yaml.safe_load(text), checklist_json_schema())
    bad = yaml.safe_load(_with_confirm("  confirm_after_release:\n    window_hours: 0\n"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, checklist_json_schema())


# --- deputies ------------------------------------------------------------------------------------

# The sample without its own deputies, so that each test gives its own.
BARE = PAYMENTS[: PAYMENTS.index("# While one of them is away")]
DEPUTIES = """deputies:
  settlement-lead@example.com: [settlement-deputy@example.com]
  stranger@example.com: [someone@example.com]
  ana@example.com: [ana@example.com]
  refunds-desk@example.com: [sec-oncall@example.com]
  raj@example.com: [refunds-desk@example.com]
  li@example.com: [not-an-address]
"""


def test_deputies_parse_and_each_bad_one_is_reported_at_its_line_and_column() -> None:
    good = BARE + DEPUTIES.splitlines(keepends=True)[0] + DEPUTIES.splitlines(True)[1]
    parsed = parse_checklist(good.encode(), "p.yaml")
    assert parsed.deputies == {"settlement-lead@example.com": ("settlement-deputy@example.com",)}
    text = BARE + DEPUTIES
    found = [str(p) for p in problems_of(text.encode(), "p.yaml")]
    assert len(found) == 1  # a bad address stops the cross-field rules
    line, col = position_of(text, "not-an-address")
    assert found[0].startswith(f"p.yaml:{line}:{col}: deputies.li@example.com[0]:")
    text = BARE + DEPUTIES.replace("  li@example.com: [not-an-address]\n", "")
    found = [str(p) for p in problems_of(text.encode(), "p.yaml")]
    expected = [
        ("[someone@example.com]", "is not a signer or key user of this checklist"),
        ("ana@example.com]", "cannot be their own deputy"),
        ("sec-oncall@example.com]", "signs technical items of payments-api"),
        ("refunds-desk@example.com]\n", "is a key user of payments-api"),
    ]
    assert len(found) == len(expected)
    for problem, (needle, message) in zip(found, expected, strict=True):
        line, col = position_of(text, needle, text.count(needle) - 1)
        assert problem.startswith(f"p.yaml:{line}:{col}: deputies."), problem
        assert message in problem


def test_deputies_must_be_a_mapping() -> None:
    (problem,) = problems_of((BARE + "deputies: [a@example.com]\n").encode(), "p.yaml")
    assert "expected a mapping of email to deputies" in problem.message


def test_the_schema_knows_deputies() -> None:
    doc = yaml.safe_load(BARE + DEPUTIES.splitlines(True)[0] + DEPUTIES.splitlines(True)[1])
    SCHEMA_VALIDATOR.validate(doc)
    doc["deputies"] = {"not an address": ["x@example.com"]}
    assert not SCHEMA_VALIDATOR.is_valid(doc)
