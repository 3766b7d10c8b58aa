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


class LinkUnusable(GatekeeperError):
    """An emailed link that was genuine but can no longer be used; `reason` picks the page."""

    code = "link_unusable"
    # "decided": someone else already took the decision the link asked for (a governance review).
    # "handed": its signer is away and what it asked went to their deputies.
    REASONS = ("used", "expired", "superseded", "revoked", "decided", "handed")

    def __init__(self, reason: str, message: str, *, details: Any = None) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        super().__init__(message, details=details)
        self.reason = reason


class TokenExpired(GatekeeperError):
    code = "token_expired"


class TokenInvalid(GatekeeperError):
    code = "token_invalid"


class Unavailable(GatekeeperError):
    """A dependency (database lock, SMTP) is busy; the caller should retry later."""

    code = "unavailable"


class DatabaseUnreadable(Unavailable):
    """The database answers with damage (a corrupted file): retrying will not mend it."""

    code = "database_unreadable"
