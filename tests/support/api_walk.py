"""Walking the JSON API from its OpenAPI document: every write operation, the fields its request
body declares, and the fields the server alone decides (what the responses report, what the
database stores, and the names attackers try)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gatekeeper.api.openapi import openapi_document
from gatekeeper.db.base import Base
from tests.functional.api_helpers import API_PREFIX, resolve

DOCUMENT = openapi_document("http://gatekeeper.test")
WRITE_METHODS = ("post", "put", "patch", "delete")
# Names clients try beyond what the document and the tables spell out.
TEMPTING = (
    "id",
    "status",
    "state",
    "digest",
    "approved",
    "approved_at",
    "approved_by",
    "released_at",
    "revision",
    "gate_version",
    "created_by",
    "created_at",
    "owner",
    "role",
    "is_admin",
)


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str  # lower case, as the document spells it
    path: str  # /packages/{key}/submit, relative to /api/v1
    spec: dict[str, Any]

    @property
    def body_schema(self) -> dict[str, Any] | None:
        body = self.spec.get("requestBody")
        if body is None:
            return None
        return resolve(DOCUMENT, body["content"]["application/json"]["schema"])

    @property
    def declared(self) -> frozenset[str]:
        """Top-level fields its request body may carry."""
        schema = self.body_schema
        return frozenset(schema.get("properties", {})) if schema else frozenset()

    def url(self, **values: str) -> str:
        path = self.path
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, f"no value for a parameter of {path}"
        return API_PREFIX + path

    def __str__(self) -> str:
        return self.operation_id


def write_operations() -> list[Operation]:
    """Every operation of the document that is not a read, in document order."""
    return [
        Operation(spec["operationId"], method, path, spec)
        for path, item in DOCUMENT["paths"].items()
        for method, spec in item.items()
        if method in WRITE_METHODS
    ]


def _properties(node: Any) -> Iterator[str]:
    """Every property name anywhere under `node`, following $refs."""
    if isinstance(node, dict):
        node = resolve(DOCUMENT, node)
        for name, child in node.get("properties", {}).items():
            yield name
            yield from _properties(child)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                yield from _properties(node[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key, ()):
                yield from _properties(child)


def response_fields() -> frozenset[str]:
    """Every field any documented response reports."""
    found: set[str] = set()
    for item in DOCUMENT["paths"].values():
        for method, spec in item.items():
            if method == "parameters":
                continue
            for response in spec["responses"].values():
                content = resolve(DOCUMENT, response).get("content", {})
                for media in content.values():
                    found.update(_properties(media["schema"]))
    return frozenset(found)


def stored_columns() -> frozenset[str]:
    """Every column name of every table."""
    return frozenset(c.name for t in Base.metadata.tables.values() for c in t.columns)


def server_decided(declared: frozenset[str]) -> list[str]:
    """What a client must never set through a body that declares `declared`."""
    return sorted((response_fields() | stored_columns() | set(TEMPTING)) - declared)


def hostile_value(name: str) -> object:
    """A plausible, tempting value for a server-decided field of that name."""
    if name.endswith("_at") or name in ("planned_for", "due_at"):
        return "2020-01-01T00:00:00+00:00"
    if name in ("state", "status"):
        return "released"
    if name in ("digest", "release_digest", "sha256", "hash", "prev_hash", "audit_head"):
        return "sha256:" + "0" * 64
    if name == "id" or name.endswith(("_id", "_revision")) or name in ("revision", "version"):
        return 4242
    if name.endswith("_by") or name in ("owner", "signer", "reviewer", "author", "actor"):
        return "mallory@example.com"
    if name in ("role",):
        return "admin"
    if name in ("is_admin", "active", "approved"):
        return True
    return "injected"
