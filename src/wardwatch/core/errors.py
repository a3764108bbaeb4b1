"""The one exception tree of WardWatch. The API maps each class to an HTTP status."""

from __future__ import annotations


class WardWatchError(Exception):
    """Base class. ``message`` is safe to show to the user (no patient identifiers)."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(WardWatchError):
    status_code = 422
    code = "invalid"

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class NotFound(WardWatchError):
    status_code = 404
    code = "not_found"


class Conflict(WardWatchError):
    """The request is well formed but the current state does not allow it."""

    status_code = 409
    code = "conflict"


class ConcurrentChange(Conflict):
    """Two writers met on the same record at the same moment; nothing was kept of this one."""


class Unauthorized(WardWatchError):
    status_code = 401
    code = "unauthorized"


class Forbidden(WardWatchError):
    status_code = 403
    code = "forbidden"


class Unavailable(WardWatchError):
    """The request could not be handled just now and nothing of it was kept: sending it again
    is safe (503, with ``Retry-After``)."""

    status_code = 503
    code = "unavailable"
