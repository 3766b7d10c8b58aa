"""Layering is enforced: inner layers never import outer ones (see ENGINEERING.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gatekeeper"

# layer -> gatekeeper layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "checklist_format": {"domain"},
    "db": {"domain"},
    "notify": {"domain", "db", "metrics"},
    "services": {"domain", "db", "notify", "checklist_format", "signing", "metrics"},
    # Adapters stand side by side: web and api never import each other or the app factory;
    # what they share lives in runtime (wiring) and origin (who is asking).
    "web": {
        "domain",
        "db",
        "services",
        "notify",
        "runtime",
        "origin",
        "settings",
        "signing",
        "redaction",
        "metrics",
        "logs",
        "http_policy",
    },
    # api/gate_polls.py answers polls before Flask does: it counts and logs them itself.
    "api": {
        "domain",
        "db",
        "services",
        "runtime",
        "origin",
        "settings",
        "signing",
        "http_policy",
        "metrics",
        "logs",
    },
    # CI platforms' endpoints: adapters like api, standing beside it.
    "integrations": {"domain", "db", "services", "runtime", "origin", "settings", "signing"},
    "cli": {
        "domain",
        "db",
        "services",
        "app",
        "runtime",
        "settings",
        "checklist_format",
        "notify",
        "gate_client",
        "signing",
        "web",
    },
    "gate_client": set(),
    "signing": {"domain"},
    # What may be logged: standard library only, so the gunicorn config can use it.
    "redaction": set(),
    # Operators' instruments: metrics (prometheus-client only, so any layer may count) and the
    # JSON log format (masked like the text logs).
    "metrics": set(),
    "logs": {"redaction"},
    # What every HTTP answer carries (security headers, request ids): standard library only.
    "http_policy": set(),
    "gunicorn_config": {"redaction", "logs"},
    "app": {
        "domain",
        "db",
        "web",
        "api",
        "integrations",
        "runtime",
        "settings",
        "notify",
        "services",
    },
    "runtime": {"domain", "services", "settings"},
    "origin": {"db"},
    "wsgi": {"app"},
    # Settings validate role names (GATEKEEPER_OIDC_ROLE_MAP) with the domain's rules.
    "settings": {"domain"},
    "__init__": set(),
}
# third-party packages a layer must never touch
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "services": {
        "flask",
        "flask_sqlalchemy",
        "flask_wtf",
        "flask_login",
        "werkzeug",
        "itsdangerous",
    },
    "db": {"flask_wtf", "flask_login"},
}


def layer_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def imports_of(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "gatekeeper":
            found.extend(f"gatekeeper.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_inward(path: Path) -> None:
    layer = layer_of(path)
    assert layer in ALLOWED, f"{path} is in an unknown layer {layer!r}; add it to ALLOWED"
    for module in imports_of(path):
        top = module.split(".")[0]
        if top == "gatekeeper":
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            assert target == layer or target in ALLOWED[layer], (
                f"{path.relative_to(PACKAGE)} ({layer}) imports {module} ({target})"
            )
        elif layer == "domain":
            assert top in sys.stdlib_module_names or top == "__future__", (
                f"domain must use the standard library only; {path.name} imports {module}"
            )
        else:
            assert top not in FORBIDDEN_THIRD_PARTY.get(layer, set()), (
                f"{path.relative_to(PACKAGE)} ({layer}) must not import {module}"
            )


def test_the_remote_gate_client_path_imports_no_framework() -> None:
    """`gatekeeper gate check --url` must start fast: the gate command module and the client
    import neither Flask, SQLAlchemy nor Alembic at module level."""
    heavy = {"flask", "flask_sqlalchemy", "flask_migrate", "sqlalchemy", "alembic", "werkzeug"}
    for path in (PACKAGE / "cli" / "__init__.py", PACKAGE / "cli" / "gate.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        for node in top_level:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                assert (name or "").split(".")[0] not in heavy, f"{path.name} imports {name}"
                assert not (name or "").startswith(("gatekeeper.services", "gatekeeper.db"))


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import flask\nfrom gatekeeper.web import errors\nfrom gatekeeper import api\n")
    assert imports_of(bad) == ["flask", "gatekeeper.web", "gatekeeper.api"]
    assert "web" not in ALLOWED["services"]
