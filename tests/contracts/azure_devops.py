"""Azure DevOps' side of an "Invoke REST API" check in callback mode, for the local fake.

What Azure Pipelines sends the check, and the one call that answers it, as documented at
https://learn.microsoft.com/azure/devops/pipelines/process/invoke-checks and
https://learn.microsoft.com/rest/api/azure/devops/distributedtask/events/post-event
"""

from __future__ import annotations

import base64
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Response

API_VERSION = "7.1-preview.1"
PROJECT_ID = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c"
HUB_NAME = "build"
JOB_ID = "4b3a4f7c-0000-4e7e-9b1a-7c2a1d1d1f01"
TIMELINE_ID = "c1f2b7d0-5a3e-4b8f-9d0e-2f3a4b5c6d7e"
AUTH_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.job-access-token"


# The headers Azure Pipelines sets by default on the check's call ("Pass pipeline run
# information to checks", invoke-checks page): each is a pipeline variable's value.
#   PlanUrl: $(system.CollectionUri)       ProjectId: $(system.TeamProjectId)
#   HubName: $(system.HostType)            PlanId: $(system.PlanId)
#   JobId: $(system.JobId)                 TimelineId: $(system.TimelineId)
#   TaskInstanceId: $(system.TaskInstanceId)  AuthToken: $(system.AccessToken)
def check_headers(
    collection_uri: str, *, plan_id: str, task_instance_id: str, secret: str | None
) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "PlanUrl": collection_uri,
        "ProjectId": PROJECT_ID,
        "HubName": HUB_NAME,
        "PlanId": plan_id,
        "JobId": JOB_ID,
        "TimelineId": TIMELINE_ID,
        "TaskInstanceId": task_instance_id,
        "AuthToken": AUTH_TOKEN,
    }
    if secret is not None:
        # A generic service connection's user name and password, sent as Basic authentication
        # (https://learn.microsoft.com/azure/devops/pipelines/library/service-endpoints#generic).
        basic = base64.b64encode(f"azure-pipelines:{secret}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    return headers


# Events - Post Event: POST {organization}/{scopeIdentifier}/_apis/distributedtask/hubs/
# {hubName}/plans/{planId}/events?api-version=7.1-preview.1, where PlanUrl is the organisation's
# collection URI (with its trailing slash) and the scope identifier is the project id.
def events_path(org_path: str, plan_id: str) -> str:
    return f"{org_path}{PROJECT_ID}/_apis/distributedtask/hubs/{HUB_NAME}/plans/{plan_id}/events"


# The decision's body ("Send a decision back to Azure DevOps", invoke-checks page), with
# `Authorization: Bearer {AuthToken}`.
def task_completed(task_instance_id: str, result: str) -> dict[str, Any]:
    return {"name": "TaskCompleted", "taskId": task_instance_id, "jobId": JOB_ID, "result": result}


def expect_task_completed(
    server: HTTPServer, org_path: str, plan_id: str, task_instance_id: str, result: str
) -> None:
    """The fake accepts exactly the documented call (Post Event answers 200 with no body)."""
    server.expect_request(
        events_path(org_path, plan_id),
        method="POST",
        query_string={"api-version": API_VERSION},
        headers={"Authorization": f"Bearer {AUTH_TOKEN}"},
        json=task_completed(task_instance_id, result),
    ).respond_with_response(Response(status=200))
