"""Reading the gate locally or from a remote server; CLI output and exit codes."""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

EXIT_OPEN = 0
EXIT_BLOCKED = 1
EXIT_PENDING = 3
EXIT_ERROR = 4
# A released package's gate is open (it was open when released): re-running a deploy pipeline
# re-deploys what was released and passes; a cancelled package is blocked.
EXIT_BY_STATUS = {"open": EXIT_OPEN, "blocked": EXIT_BLOCKED, "pending": EXIT_PENDING}
# A --wait progress line names this many people at most; the timeout line names everyone.
NAMED_ON_PROGRESS = 5
# --wait pauses between polls: 2 s, growing by half each time nothing changed, up to 15 s; a
# pause is drawn from the last JITTER of its step.
FIRST_PAUSE = 2.0
LONGEST_PAUSE = 15.0
GROWTH = 1.5
JITTER = 0.2


class GateUnavailable(Exception):
    """The gate could not be read; the CLI fails closed with exit code 4."""


def remote_reader(
    base_url: str, token: str, *, timeout: float = 10.0
) -> Callable[[str], dict[str, Any]]:
    """Read the gate from a Gatekeeper server's JSON API.

    Polls are conditional: the reader sends back the ETag of the gate it holds, and the server
    answers 304, with no body, while that is still the gate.
    """
    root = base_url.rstrip("/")
    held: dict[str, tuple[str, dict[str, Any]]] = {}  # package -> (ETag, its gate)

    def read(package: str) -> dict[str, Any]:
        url = f"{root}/api/v1/packages/{urllib.parse.quote(package, safe='')}/gate"
        if not url.startswith(("http://", "https://")):
            raise GateUnavailable(f"--url must be an http(s) URL, got {base_url!r}")
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if package in held:
            headers["If-None-Match"] = held[package][0]
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                body = json.loads(response.read())
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and package in held:
                return held[package][1]
            raise GateUnavailable(_error_message(exc)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise GateUnavailable(f"cannot reach {root}: {getattr(exc, 'reason', exc)}") from None
        except ValueError:
            raise GateUnavailable(f"{root} did not answer with JSON") from None
        if not isinstance(body, dict) or body.get("status") not in EXIT_BY_STATUS:
            raise GateUnavailable(f"{root} answered without a gate status")
        if etag:
            held[package] = (etag, body)
        return body

    return read


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        envelope = json.loads(exc.read())
        message = envelope["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason
    return f"HTTP {exc.code}: {message}"


def shown_status(gate: dict[str, Any]) -> str:
    """The status people are shown, as the badge shows it: "released" while a released
    package's gate holds (the server's GateResult.shown_status, from the JSON)."""
    if gate.get("state") == "released" and gate["status"] == "open":
        return "released"
    status: str = gate["status"]
    return status


def progress_line(gate: dict[str, Any]) -> str:
    progress = gate["progress"]
    waiting = gate.get("waiting_on", [])
    people = f", waiting on {len(waiting)} {'person' if len(waiting) == 1 else 'people'}"
    return (
        f"{gate['package']} revision {gate['revision']}: {shown_status(gate).upper()} — "
        f"{progress['signed']} of {progress['required']} required sign-offs"
        f"{people if waiting else ''}"
    )


def wait_line(gate: dict[str, Any]) -> str:
    """A --wait progress line: the counts and who the gate is waiting on now."""
    waiting = gate.get("waiting_on", [])
    if not waiting:
        return progress_line(gate)
    named = ", ".join(waiting[:NAMED_ON_PROGRESS])
    more = len(waiting) - NAMED_ON_PROGRESS
    return f"{progress_line(gate)}: {named}" + (f" and {more} more" if more > 0 else "")


def _where(blocker: dict[str, Any]) -> str:
    return "/".join(p for p in (blocker.get("application"), blocker.get("item")) if p)


def timeout_line(gate: dict[str, Any], timeout: float) -> str:
    """What a --wait that ran out of time is still waiting for: who, and which blockers."""
    who = ", ".join(gate.get("waiting_on", [])) or "nobody"
    blockers = ", ".join(f"{b['code']} {_where(b)}".strip() for b in gate["blockers"])
    return (
        f"timed out after {timeout:g} s: {gate['package']} is still "
        f"{shown_status(gate).upper()}, waiting on {who} ({blockers or 'no blockers'})"
    )


def describe(gate: dict[str, Any]) -> str:
    lines = [progress_line(gate)]
    release = gate.get("release")
    if release:
        lines.append(
            f"  released {release['released_at']} by {release['released_by']} at digest "
            f"{release['digest']}"
        )
    for blocker in gate["blockers"]:
        lines.append(f"  {blocker['code']} {_where(blocker)}: {blocker['message']}")
    for warning in gate.get("warnings", []):
        lines.append(f"  warning {warning['code']}: {warning['message']}")
    lines.append(f"  digest {gate['digest']}")
    return "\n".join(lines)


def pauses(
    interval: float | None, *, uniform: Callable[[float, float], float] = random.uniform
) -> Iterator[float]:
    """The pauses between --wait polls: FIRST_PAUSE growing to LONGEST_PAUSE, or `interval`
    every time. Each is shortened by up to JITTER at random, so pipelines started by the same
    push do not poll in step; none is ever longer than the step it was drawn from."""
    step = interval or FIRST_PAUSE
    longest = interval or LONGEST_PAUSE
    while True:
        yield step * uniform(1 - JITTER, 1)
        step = min(longest, step * GROWTH)


def wait_for_decision(
    read: Callable[[str], dict[str, Any]],
    package: str,
    *,
    first: dict[str, Any],
    timeout: float,
    interval: float | None,
    on_change: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    uniform: Callable[[float, float], float] = random.uniform,
) -> dict[str, Any]:
    """Poll while the gate is pending; stop at open, blocked or the timeout (still pending).

    `on_change` hears of the first answer and of each one that differs from the one before it
    (revision, counts, who is waited on): a CI log shows progress, not one line per poll. A
    change starts the pauses again from the shortest: sign-offs tend to come together.
    """
    deadline = monotonic() + timeout
    gate = first
    last: tuple[Any, ...] | None = None
    waits = pauses(interval, uniform=uniform)
    while gate["status"] == "pending":
        seen = _progress_of(gate)
        if seen != last:
            if last is not None:
                waits = pauses(interval, uniform=uniform)
            on_change(gate)
            last = seen
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        sleep(min(next(waits), remaining))
        gate = read(package)
    return gate


def _progress_of(gate: dict[str, Any]) -> tuple[Any, ...]:
    progress = gate["progress"]
    return (
        gate["revision"],
        gate["status"],
        progress["signed"],
        progress["required"],
        tuple(gate.get("waiting_on", [])),
    )
