"""JSON Schema (draft 2020-12) of checklist files, for editors and other tools.

The linter (`validator.parse_checklist`) stays the authority: it also checks what a JSON Schema
cannot express — unique ids, groups that exist, quorum against the number of signers, separation of
duties, well-formed email addresses, and YAML-level rules (anchors, aliases, tags, duplicate keys,
BOM, tabs, size, YAML 1.1 numbers such as `010` or `0x10` that load as valid integers).
The schema is stricter in one place: it cannot strip values, so a line break the linter strips
from the end of a one-line value (a folded `>` block ends with one) is refused here.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.domain.checklist import (
    DEPLOY_ENVIRONMENT_PATTERN,
    DEPLOY_PLACE_KEYS,
    DEPLOY_PLACE_PATTERNS,
    EVIDENCE_KINDS,
    MAX_CONFIRM_HOURS,
    MAX_QUORUM,
    MAX_REVIEW_EVERY_DAYS,
    MAX_REVIEW_WITHIN_HOURS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    MAX_VERSION,
    MULTI_LINE_FORBIDDEN,
    ONE_LINE_FORBIDDEN,
    SCHEMA_VERSION,
    SLUG_PATTERN,
)

SCHEMA_ID = f"https://gatekeeper.invalid/schema/checklist-{SCHEMA_VERSION}.json"

# Text must hold something other than white space: the linter strips values and rejects empty ones.
_NOT_BLANK = r"\S"


def _text(
    description: str, max_chars: int = MAX_TEXT_CHARS, *, multiline: bool = False
) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_chars,
        "pattern": _NOT_BLANK,
        "not": {"pattern": MULTI_LINE_FORBIDDEN if multiline else ONE_LINE_FORBIDDEN},
        "description": description,
    }


def _ref(name: str, description: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}", "description": description}


def _emails(description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "items": {"$ref": "#/$defs/email"},
        "description": description,
    }


def _object(
    description: str, properties: dict[str, Any], required: tuple[str, ...]
) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _window(*, blackout: bool) -> dict[str, Any]:
    """A freeze window or blackout: starts/ends, or rrule/duration/timezone (the linter also
    checks the rule, the duration, the zone and that ends is after starts)."""
    scope: dict[str, Any] = {
        "environments": {
            "type": "array",
            "items": _text("An environment."),
            "description": "The environments it holds back.",
        }
    }
    if not blackout:
        scope["applications"] = {
            "type": "array",
            "items": _ref("slug", "An application."),
            "description": "The applications it holds back.",
        }
    common = {
        "id": _ref("slug", "The window's id, unique in the file."),
        "title": _text("What the window is called.", MAX_TITLE_CHARS),
        "reason": _text("Why releases wait."),
        "applies_to": _object("Where it applies (default: everywhere).", scope, ()),
    }
    instant = {"type": "string", "description": "ISO 8601 with its UTC offset."}
    fixed = {**common, "starts": instant, "ends": instant}
    recurring = {
        **common,
        "rrule": _text("An RFC 5545 recurrence rule, FREQ=…;BY…", 500),
        "duration": _text("ISO 8601 duration of each occurrence: P1D, PT4H.", 500),
        "timezone": _text("IANA time zone of the rule: Europe/Paris.", 500),
    }
    return {
        "description": "A freeze window: starts and ends, or rrule, duration and timezone.",
        "oneOf": [
            _object(
                "A window with a start and an end.",
                fixed,
                ("id", "title", "reason", "starts", "ends"),
            ),
            _object(
                "A recurring window.",
                recurring,
                ("id", "title", "reason", "rrule", "duration", "timezone"),
            ),
        ],
    }


def _place(platform: str, description: str) -> dict[str, Any]:
    key = DEPLOY_PLACE_KEYS[platform]
    return _object(
        "A project and one of its environments.",
        {
            key: {
                "type": "string",
                "pattern": f"^{DEPLOY_PLACE_PATTERNS[platform]}$",
                "description": description,
            },
            "environment": {
                "type": "string",
                "pattern": f"^{DEPLOY_ENVIRONMENT_PATTERN}$",
                "description": "The environment's name.",
            },
        },
        (key, "environment"),
    )


def checklist_json_schema() -> dict[str, Any]:
    """The schema of one checklist file (schema 1), built from the domain's constants."""
    defs: dict[str, Any] = {
        "slug": {
            "type": "string",
            "pattern": SLUG_PATTERN,
            "description": "Lower-case letters, digits and inner hyphens.",
        },
        "email": {
            "type": "string",
            "minLength": 1,
            "format": "email",
            "not": {"pattern": ONE_LINE_FORBIDDEN},
            "description": "An email address.",
        },
        "quorum": {
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_QUORUM},
                {"const": "all"},
            ],
            "description": 'A whole number (1, 2, …) or "all".',
        },
        "item": _object(
            "One check that named people sign off before a release.",
            {
                "id": _ref("slug", "Item id, unique in the whole file."),
                "text": _text("What the signers confirm, as one sentence."),
                "signers": {
                    "oneOf": [
                        _ref("slug", "The name of a group defined under `groups`."),
                        _emails("The people who may sign this item."),
                    ],
                    "description": "A group name or a list of emails. Key users of this "
                    "application cannot be the only signers (separation of duties).",
                },
                "quorum": _ref(
                    "quorum",
                    'How many of the signers must pass the item (default 1; "all" for every '
                    "signer); at most the number of signers.",
                ),
                "evidence": {
                    "enum": list(EVIDENCE_KINDS),
                    "default": EVIDENCE_KINDS[0],
                    "description": "What a signer attaches when passing the item "
                    f"({', '.join(EVIDENCE_KINDS)}; default {EVIDENCE_KINDS[0]}).",
                },
            },
            ("id", "text", "signers"),
        ),
        "section": _object(
            "A titled group of items.",
            {
                "id": _ref("slug", "Section id, unique in the file."),
                "title": _text("Section heading shown to signers.", MAX_TITLE_CHARS),
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"$ref": "#/$defs/item"},
                    "description": "The checks of this section.",
                },
            },
            ("id", "title", "items"),
        ),
        "key_user": _object(
            "A business user who validates the release in their own scenarios.",
            {
                "email": _ref("email", "Where the sign-off link is sent."),
                "name": _text("Full name.", MAX_TITLE_CHARS),
                "role": _text("Role in the business (optional).", MAX_TITLE_CHARS),
            },
            ("email", "name"),
        ),
        "consumer": _object(
            "A downstream system told about each release.",
            {
                "name": _text("System name.", MAX_TITLE_CHARS),
                "contact": _ref("email", "Who is told about each release."),
            },
            ("name", "contact"),
        ),
    }
    top = _object(
        "A release-gate checklist for one application.",
        {
            "schema": {
                "type": "integer",
                "const": SCHEMA_VERSION,
                "description": f"Format version of this file; always {SCHEMA_VERSION}.",
            },
            "application": _ref("slug", "The application's id, unique across checklists."),
            "title": _text("The application's name as people say it.", MAX_TITLE_CHARS),
            "version": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_VERSION,
                "description": "Checklist version, a decimal whole number; bump it on every "
                "change.",
            },
            "owner": _ref("email", "Team address that owns this checklist."),
            "description": _text(
                "What the application does and why its releases matter (may span lines).",
                multiline=True,
            ),
            "governance": _object(
                "Who reviews changes to this checklist, and how often.",
                {
                    "review_every_days": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_REVIEW_EVERY_DAYS,
                        "description": "Days between reviews of the checklist "
                        f"(1 to {MAX_REVIEW_EVERY_DAYS}).",
                    },
                    "reviewers": _emails("Governance reviewers who approve new versions."),
                },
                ("review_every_days", "reviewers"),
            ),
            "groups": {
                "type": "object",
                "description": "Named signer groups: group name to a list of emails.",
                "propertyNames": {"$ref": "#/$defs/slug"},
                "additionalProperties": _emails("Members of the group."),
            },
            "sections": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/section"},
                "description": "The technical checks, in the order signers see them.",
            },
            "user_validation": _object(
                "Business validation by key users; required in every checklist.",
                {
                    "key_users": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"$ref": "#/$defs/key_user"},
                        "description": "The key users who validate (at least one).",
                    },
                    "quorum": _ref(
                        "quorum",
                        'How many key users must pass (default "all"); at most the number of key '
                        "users.",
                    ),
                    "scenarios": {
                        "type": "array",
                        "minItems": 1,
                        "items": _text("One scenario to try."),
                        "description": "What key users try before they sign (at least one).",
                    },
                    "confirm_after_release": _object(
                        "After the release, ask each key user whether it still works.",
                        {
                            "after_hours": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": MAX_CONFIRM_HOURS,
                                "description": "Hours after the release before asking "
                                "(default 24; 0 asks nobody).",
                            },
                            "window_hours": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_CONFIRM_HOURS,
                                "description": "Hours key users have to answer (default 72).",
                            },
                        },
                        (),
                    ),
                    "blackouts": {
                        "type": "array",
                        "items": _window(blackout=True),
                        "description": "Business blackouts: no release of this application in "
                        "them (the gate shows FREEZE_WINDOW).",
                    },
                },
                ("key_users", "scenarios"),
            ),
            "consumers": {
                "type": "array",
                "items": {"$ref": "#/$defs/consumer"},
                "description": "Downstream systems told about each release (optional).",
            },
            "addresses": {
                "type": "array",
                "items": _text(
                    "One reference: a finding (F-12), a proposed scenario (P-3) or a ticket id.", 64
                ),
                "description": "Findings, proposals or tickets this checklist addresses.",
            },
            "deputies": {
                "type": "object",
                "description": "Who may sign in a signer's or key user's place while they are "
                "away: their email to a list of deputies' emails (optional).",
                "propertyNames": {"$ref": "#/$defs/email"},
                "additionalProperties": _emails("The deputies of this person."),
            },
            "deploy_targets": {
                "type": "array",
                "items": {
                    "oneOf": [
                        _object(
                            "A GitHub environment whose deployments wait on the gate.",
                            {"github": _place("github", "owner/name of the repository.")},
                            ("github",),
                        ),
                        _object(
                            "A GitLab protected environment whose deployments wait on the gate.",
                            {"gitlab": _place("gitlab", "Full path of the project.")},
                            ("gitlab",),
                        ),
                        _object(
                            "An Azure DevOps environment whose Invoke REST API check names "
                            "this target.",
                            {
                                "azure_devops": _place(
                                    "azure_devops", "The project's name ($(System.TeamProject))."
                                )
                            },
                            ("azure_devops",),
                        ),
                    ]
                },
                "description": "CI platform deployments held until the gate decides (optional).",
            },
            "emergency": _object(
                "Allows an emergency release of this application (optional; without it, none).",
                {
                    "approvers": {
                        "oneOf": [
                            _ref("slug", "The name of a group defined under `groups`."),
                            _emails("The people who may authorise an emergency release."),
                        ],
                        "description": "A group name or a list of emails.",
                    },
                    "quorum": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_QUORUM,
                        "description": "How many approvers must authorise (default 2); at most "
                        "the number of approvers.",
                    },
                    "required_items": {
                        "type": "array",
                        "items": _text("An item as `section.item`.", 129),
                        "description": "Items that must still pass in an emergency.",
                    },
                    "review_within_hours": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_REVIEW_WITHIN_HOURS,
                        "description": "Hours after the release by which the post-implementation "
                        "review is due (default 48).",
                    },
                },
                ("approvers",),
            ),
        },
        (
            "schema",
            "application",
            "title",
            "version",
            "owner",
            "governance",
            "sections",
            "user_validation",
        ),
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"Gatekeeper checklist (schema {SCHEMA_VERSION})",
        **top,
        "$defs": defs,
    }
