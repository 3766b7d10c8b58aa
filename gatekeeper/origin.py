"""Where a request comes from, as the audit trail records it: shared by the web UI and the API."""

from __future__ import annotations

from flask import request

from gatekeeper.db.unit_of_work import Origin


def request_origin() -> Origin:
    return Origin(client_address=request.remote_addr, user_agent=request.user_agent.string or None)
