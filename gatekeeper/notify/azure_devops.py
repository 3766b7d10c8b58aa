"""Call Azure DevOps back once the gate decides an "Invoke REST API" check in callback mode.

The check's request said where to answer (PlanUrl, ProjectId, HubName, PlanId), what (JobId,
TaskInstanceId) and with which job access token (AuthToken, valid 48 hours);
integrations/azure_devops keeps them as the callback's plan_url, project_id, hub_name, plan_id,
job_id, task_instance_id and auth_token. The answer is one `TaskCompleted` event, posted with
that token as a bearer token. Documented at
https://learn.microsoft.com/azure/devops/pipelines/process/invoke-checks
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

from gatekeeper.notify import webhooks

API_VERSION = "7.1-preview.1"
# The gate's verdict, as the check's result.
RESULTS = {"approved": "succeeded", "rejected": "failed"}


class Outcome(NamedTuple):
    status: int | None
    error: str


def events_url(callback: Mapping[str, str]) -> str:
    """`POST {PlanUrl}{ProjectId}/_apis/distributedtask/hubs/{HubName}/plans/{PlanId}/events`."""
    base = callback["plan_url"]
    base = base if base.endswith("/") else base + "/"

    def part(key: str) -> str:
        return quote(callback[key], safe="")

    return (
        f"{base}{part('project_id')}/_apis/distributedtask/hubs/{part('hub_name')}"
        f"/plans/{part('plan_id')}/events?api-version={API_VERSION}"
    )


def task_completed(callback: Mapping[str, str], state: str) -> dict[str, str]:
    return {
        "name": "TaskCompleted",
        "taskId": callback["task_instance_id"],
        "jobId": callback["job_id"],
        "result": RESULTS[state],
    }


def post_event(
    callback: Mapping[str, str],
    call: Mapping[str, Any],
    *,
    timeout: float,
    allow_private: bool,
) -> Outcome:
    """One `TaskCompleted` post for `call`'s decision. It goes through the webhooks' guard:
    the address is checked after DNS resolution and pinned, and no redirect is followed, so the
    job token reaches only the host the check named, and never an internal one."""
    try:
        target = webhooks.resolve(events_url(callback), allow_private=allow_private)
    except webhooks.RefusedTarget as refused:
        return Outcome(None, f"refused: {refused}")
    except LookupError as exc:
        return Outcome(None, str(exc))
    body = json.dumps(task_completed(callback, call["state"]))
    headers = {"Authorization": f"Bearer {callback['auth_token']}"}
    attempt = webhooks.post(target, body, headers, timeout=timeout)
    return Outcome(attempt.status_code, attempt.error)
