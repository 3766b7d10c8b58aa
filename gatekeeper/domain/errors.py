"""Domain errors; adapters map each class to an HTTP status and a stable error code."""

from __future__ import annotations

from typing import Any


class GatekeeperError(Exception):
    """Base of every error a user may be shown; `message` is written for people."""

    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(GatekeeperError):
    code = "not_found"


class Unauthenticated(GatekeeperError):
    """No credentials, or credentials that are unknown, malformed or revoked."""

    code = "unauthenticated"


class PermissionDenied(GatekeeperError):
    code = "permission_denied"


class ValidationFailed(GatekeeperError):
    code = "validation_failed"


class Conflict(GatekeeperError):
    code = "conflict"


class TokenExpired(GatekeeperError):
    code = "token_expired"


class TokenInvalid(GatekeeperError):
    code = "token_invalid"


class Unavailable(GatekeeperError):
    """A dependency (database lock, SMTP) is busy; the caller should retry later."""

    code = "unavailable"
