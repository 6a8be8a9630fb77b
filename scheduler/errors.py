"""The scheduler's error family; each error knows the HTTP code and Status reason it maps to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class SchedulerError(Exception):
    """Base of every error the API turns into a `Status` body."""

    http_status = 500
    reason = "InternalError"
    # Each thing wrong, as structured data (the Status's `details.causes`); most errors have none.
    causes: Sequence[Mapping[str, Any]] = ()

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidError(SchedulerError):
    """The request names a field whose value we cannot accept."""

    http_status = 422
    reason = "Invalid"

    def __init__(self, message: str, causes: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.causes = causes


class BadRequestError(SchedulerError):
    http_status = 400
    reason = "BadRequest"


class ForbiddenError(SchedulerError):
    """The request may not be made from where it comes (another site, through a browser)."""

    http_status = 403
    reason = "Forbidden"


class UnsupportedMediaTypeError(SchedulerError):
    http_status = 415
    reason = "UnsupportedMediaType"


class NotFoundError(SchedulerError):
    http_status = 404
    reason = "NotFound"


class ConflictError(SchedulerError):
    http_status = 409
    reason = "Conflict"


class PayloadTooLargeError(SchedulerError):
    http_status = 413
    reason = "RequestEntityTooLarge"


class NotReadyError(SchedulerError):
    """The scheduler cannot answer truthfully yet (its view of the cluster has not synced)."""

    http_status = 503
    reason = "ServiceUnavailable"


class BusyError(SchedulerError):
    """The scheduler serves as many of these (streams) as it will at once: try again later."""

    http_status = 503
    reason = "ServiceUnavailable"

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class BackendUnavailableError(SchedulerError):
    """The backend (the Kubernetes API server) could not be reached or failed."""

    http_status = 503
    reason = "ServiceUnavailable"


class BackendError(SchedulerError):
    """The backend answered with an error that is not the client's fault."""


class ResourceExpiredError(SchedulerError):
    """A watch asked for history the backend no longer has (HTTP 410): relist."""

    http_status = 410
    reason = "Expired"


class ConfigError(Exception):
    """A setting or the radixconfig is wrong; the message names the source and the field."""
