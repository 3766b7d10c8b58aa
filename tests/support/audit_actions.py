"""Every kind of audit event the code can write, found in its source: the `action` of every call
to `services/audit.py`'s record functions, and of every function that hands its own `action`
parameter on to one of them (its callers' actions count instead)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.domain import deploy_gate, finding, governance

PACKAGE = Path(__file__).resolve().parents[2] / "gatekeeper"
AUDIT_MODULE = PACKAGE / "services" / "audit.py"
# The actions built at run time, by their source text, with every value the part in braces can
# take. A new f-string action fails the walk until its values are listed here.
BUILT: dict[str, Iterable[str]] = {
    "f'checklist.{review.outcome}'": [
        *governance.REVIEW_OUTCOME.values(),
        governance.PARTIALLY_APPROVED,
    ],
    "f\"confirmation.{('reminded' if reminder else 'requested')}\"": ["reminded", "requested"],
    "f'action_item.{item.state}'": ["done", "dropped"],
    "f'finding.{state}'": sorted(
        after
        for (_, action), after in finding.FINDING_TRANSITIONS.items()
        if action in (finding.ACCEPT, finding.DECLINE)
    ),
    "f'deployment.{decision}'": [deploy_gate.APPROVED, deploy_gate.REJECTED],
    # A freeze calendar review moves its version to one of these states.
    "f'freezes.{stored.state}'": [governance.APPROVED, governance.CHANGES_REQUESTED],
}


@dataclass(frozen=True)
class Recorder:
    """A function that writes an audit event with the action its caller passes."""

    parameter: str
    position: int | None  # where the action sits among positional arguments, if it may


@dataclass(frozen=True)
class Call:
    where: str
    action: ast.expr
    function: ast.FunctionDef | None  # the function the call is made in


# audit.record and audit.record_package_event take `action` as a keyword only.
BASE = {"record": Recorder("action", None), "record_package_event": Recorder("action", None)}


def _callee(call: ast.Call, recorders: dict[str, Recorder]) -> Recorder | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in recorders:
        is_audit = isinstance(func.value, ast.Name) and func.value.id == "audit"
        return recorders[func.attr] if is_audit or func.attr not in BASE else None
    if isinstance(func, ast.Name) and func.id in recorders and func.id not in BASE:
        return recorders[func.id]
    return None


def _positional(function: ast.FunctionDef) -> list[str]:
    return [a.arg for a in (*function.args.posonlyargs, *function.args.args)]


def _parameters(function: ast.FunctionDef) -> list[str]:
    return [*_positional(function), *(a.arg for a in function.args.kwonlyargs)]


def _calls(path: Path, tree: ast.Module, recorders: dict[str, Recorder]) -> Iterator[Call]:
    def visit(node: ast.AST, function: ast.FunctionDef | None) -> Iterator[Call]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Call) and (callee := _callee(child, recorders)):
                action = next((k.value for k in child.keywords if k.arg == callee.parameter), None)
                if action is None and callee.position is not None:
                    action = child.args[callee.position]
                assert action is not None, f"{path}:{child.lineno}: no action passed"
                yield Call(f"{path.relative_to(PACKAGE.parent)}:{child.lineno}", action, function)
            yield from visit(child, child if isinstance(child, ast.FunctionDef) else function)

    yield from visit(tree, None)


def _handed_on(call: Call) -> bool:
    return (
        isinstance(call.action, ast.Name)
        and call.function is not None
        and call.action.id in _parameters(call.function)
    )


def audit_actions() -> dict[str, str]:
    """Every action the code can write -> the first source line that writes it."""
    trees = {
        path: ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != AUDIT_MODULE  # the record functions themselves
    }
    recorders = dict(BASE)
    while True:
        grown = dict(recorders)
        for path, tree in trees.items():
            for call in _calls(path, tree, recorders):
                if _handed_on(call) and call.function is not None:
                    name = call.action.id  # type: ignore[attr-defined]
                    positional = _positional(call.function)
                    grown[call.function.name] = Recorder(
                        name, positional.index(name) if name in positional else None
                    )
        if grown == recorders:
            break
        recorders = grown
    found: dict[str, str] = {}
    for path, tree in trees.items():
        for call in _calls(path, tree, recorders):
            for action in [] if _handed_on(call) else _values(call):
                found.setdefault(action, call.where)
    return found


def _values(call: Call) -> Iterable[str]:
    expression = call.action
    if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
        return [expression.value]
    if isinstance(expression, ast.JoinedStr):
        source = ast.unparse(expression)
        if source not in BUILT:
            raise AssertionError(f"{call.where}: list the values {source} can take in BUILT")
        prefix = source[2 : source.index("{")]
        return [prefix + value for value in BUILT[source]]
    raise AssertionError(
        f"{call.where}: write the audit action as a literal or an f-string, so that "
        "tests/support/audit_actions.py finds it"
    )
