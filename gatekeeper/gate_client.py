"""Reading the gate locally or from a remote server; CLI output and exit codes."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

EXIT_OPEN = 0
EXIT_BLOCKED = 1
EXIT_PENDING = 3
EXIT_ERROR = 4
EXIT_BY_STATUS = {"open": EXIT_OPEN, "blocked": EXIT_BLOCKED, "pending": EXIT_PENDING}


class GateUnavailable(Exception):
    """The gate could not be read; the CLI fails closed with exit code 4."""


def remote_reader(
    base_url: str, token: str, *, timeout: float = 10.0
) -> Callable[[str], dict[str, Any]]:
    """Read the gate from a Gatekeeper server's JSON API."""
    root = base_url.rstrip("/")

    def read(package: str) -> dict[str, Any]:
        url = f"{root}/api/v1/packages/{urllib.parse.quote(package, safe='')}/gate"
        if not url.startswith(("http://", "https://")):
            raise GateUnavailable(f"--url must be an http(s) URL, got {base_url!r}")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise GateUnavailable(_error_message(exc)) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise GateUnavailable(f"cannot reach {root}: {getattr(exc, 'reason', exc)}") from None
        except ValueError:
            raise GateUnavailable(f"{root} did not answer with JSON") from None
        if not isinstance(body, dict) or body.get("status") not in EXIT_BY_STATUS:
            raise GateUnavailable(f"{root} answered without a gate status")
        return body

    return read


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        envelope = json.loads(exc.read())
        message = envelope["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason
    return f"HTTP {exc.code}: {message}"


def progress_line(gate: dict[str, Any]) -> str:
    progress = gate["progress"]
    waiting = gate.get("waiting_on", [])
    people = f", waiting on {len(waiting)} {'person' if len(waiting) == 1 else 'people'}"
    return (
        f"{gate['package']} revision {gate['revision']}: {gate['status'].upper()} — "
        f"{progress['signed']} of {progress['required']} required sign-offs"
        f"{people if waiting else ''}"
    )


def describe(gate: dict[str, Any]) -> str:
    lines = [progress_line(gate)]
    for blocker in gate["blockers"]:
        where = "/".join(p for p in (blocker.get("application"), blocker.get("item")) if p)
        lines.append(f"  {blocker['code']} {where}: {blocker['message']}")
    for warning in gate.get("warnings", []):
        lines.append(f"  warning {warning['code']}: {warning['message']}")
    lines.append(f"  digest {gate['digest']}")
    return "\n".join(lines)


def wait_for_decision(
    read: Callable[[str], dict[str, Any]],
    package: str,
    *,
    first: dict[str, Any],
    timeout: float,
    interval: float,
    on_progress: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll while the gate is pending; stop at open, blocked or the timeout (still pending)."""
    deadline = monotonic() + timeout
    gate = first
    while gate["status"] == "pending":
        on_progress(gate)
        remaining = deadline - monotonic()
        if remaining <= 0:
            break
        sleep(min(interval, remaining))
        gate = read(package)
    return gate
