"""Which package a CI platform's deployment belongs to, and what Gatekeeper tells the platform.

Pure rules shared by every platform adapter: the verdict comes from the gate alone, and the
texts are the gate's own explainable blockers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gatekeeper.domain.gate import BLOCKED, OPEN, GateResult

APPROVED = "approved"
REJECTED = "rejected"
WAITING = "waiting"
# GitHub accepts at most 10 status reports per deployment.
REPORT_LIMIT = 10
# GitHub's comments are Markdown of at most 1,024 characters.
COMMENT_LIMIT = 1024
# A sha names a deployment from its first 7 hex digits on, as git abbreviates it.
_SHA_PREFIX = re.compile(r"[0-9a-f]{7,64}")


@dataclass(frozen=True)
class Candidate:
    """An application version in an in-review package, shipped to a deploy target."""

    package: str
    version: str


def matching_packages(candidates: Iterable[Candidate], *, ref: str, sha: str) -> list[str]:
    """The packages whose application version equals the deployment's ref, or is a prefix of
    its sha of at least 7 hex digits; sorted, each once."""
    sha = sha.lower()
    found = {
        c.package
        for c in candidates
        if c.version == ref
        or (_SHA_PREFIX.fullmatch(c.version.lower()) and sha.startswith(c.version.lower()))
    }
    return sorted(found)


def verdict(gate: GateResult) -> str:
    """Open approves and blocked rejects; pending waits. A blocked gate may become open again
    (a failed item re-signed in a new revision), but a platform cannot be told "not yet" and
    "no" at once: the deployment is rejected, and a re-run after the fix is approved."""
    if gate.status == OPEN:
        return APPROVED
    if gate.status == BLOCKED:
        return REJECTED
    return WAITING


def _cut(text: str) -> str:
    return text if len(text) <= COMMENT_LIMIT else text[: COMMENT_LIMIT - 1] + "…"


def blockers_text(gate: GateResult) -> str:
    return "; ".join(f"{b.code}: {b.message}" for b in gate.blockers) or "none"


def comment(gate: GateResult, board_url: str) -> str:
    """What the platform shows: the decision or who is waited on, and the board's link."""
    decided = verdict(gate)
    head = f"Gatekeeper package {gate.package} rev {gate.revision}"
    if decided == APPROVED:
        text = f"{head}: gate open (digest {gate.digest})."
    elif decided == REJECTED:
        text = f"{head}: gate blocked. {blockers_text(gate)}."
    else:
        who = ", ".join(gate.waiting_on) or "the sign-offs still due"
        text = f"{head}: waiting on {who} ({gate.signed}/{gate.required} signed)."
    return _cut(f"{text} Board: {board_url}")


def no_package(project: str, environment: str, ref: str, sha: str) -> str:
    return _cut(
        f"Gatekeeper: no package in review ships {ref} or {sha[:12]} to {environment} of "
        f"{project}; assemble and submit one, then re-run the deployment."
    )


def ambiguous(packages: Sequence[str], sha: str) -> str:
    return _cut(
        f"Gatekeeper: {sha[:12]} matches more than one package in review "
        f"({', '.join(packages)}); deploy a ref that names one version."
    )
