"""Failures as the API server reports them: one exception carrying a `Status`, and field errors.

Messages follow kube-apiserver's wording (`jobs.batch "x" not found`, `Job.batch "x" is invalid:
...`) because clients and humans match on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .kinds import Kind

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One `causes[]` entry of an Invalid status, like Go's `field.Error`."""

    field: str
    reason: str  # FieldValueInvalid, FieldValueRequired, ...
    body: str  # what follows "<field>: " in the message, e.g. 'Required value'

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


def _quote(value: object) -> str:
    # Go prints strings with %q and other values as JSON-ish text.
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, sort_keys=True)


def invalid_value(field: str, value: object, detail: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {detail}")


def required(field: str, detail: str = "") -> FieldError:
    body = "Required value" + (f": {detail}" if detail else "")
    return FieldError(field, "FieldValueRequired", body)


def not_supported(field: str, value: object, supported: Sequence[str]) -> FieldError:
    choices = ", ".join(json.dumps(s) for s in supported)
    body = f"Unsupported value: {_quote(value)}: supported values: {choices}"
    return FieldError(field, "FieldValueNotSupported", body)


def too_long(field: str, max_length: int, unit: str = "bytes") -> FieldError:
    return FieldError(
        field, "FieldValueTooLong", f"Too long: must have at most {max_length} {unit}"
    )


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, "FieldValueForbidden", f"Forbidden: {detail}")


def immutable(field: str, value: object) -> FieldError:
    return invalid_value(field, value, "field is immutable")


class ApiError(Exception):
    """A failed request; `status()` is the body the real server would send."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: JSON | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            body["details"] = self.details
        body["code"] = self.code
        return body


def _resource_details(kind: Kind, name: str) -> JSON:
    # Real NotFound/AlreadyExists/Conflict details name the resource (plural), not the Kind.
    details: JSON = {"name": name}
    if kind.group:
        details["group"] = kind.group
    details["kind"] = kind.plural
    return details


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{kind.qualified} "{name}" not found', _resource_details(kind, name)
    )


def already_exists(kind: Kind, name: str) -> ApiError:
    message = f'{kind.qualified} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, _resource_details(kind, name))


MODIFIED_MESSAGE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def conflict(kind: Kind, name: str, detail: str = MODIFIED_MESSAGE) -> ApiError:
    message = f'Operation cannot be fulfilled on {kind.qualified} "{name}": {detail}'
    return ApiError(409, "Conflict", message, _resource_details(kind, name))


def invalid(kind: Kind, name: str, errors: Sequence[FieldError]) -> ApiError:
    listed = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(map(str, errors)) + "]"
    details: JSON = {"name": name}
    if kind.group:
        details["group"] = kind.group
    details["kind"] = kind.name
    details["causes"] = [{"reason": e.reason, "message": e.body, "field": e.field} for e in errors]
    return ApiError(422, "Invalid", f'{kind.group_kind} "{name}" is invalid: {listed}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed(method: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f"the server does not allow this method ({method})")


def unsupported_media_type(content_type: str, accepted: Sequence[str]) -> ApiError:
    message = (
        f"the body of the request was in an unknown format ({content_type}) - accepted media "
        f"types include: {', '.join(accepted)}"
    )
    return ApiError(415, "UnsupportedMediaType", message)


# Reasons and default messages for codes that fault injection can answer with.
FAULT_REASONS: Mapping[int, tuple[str, str]] = {
    400: ("BadRequest", "injected bad request"),
    403: ("Forbidden", "injected forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", "injected conflict"),
    410: ("Gone", "injected gone"),
    429: (
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
    ),
    500: (
        "InternalError",
        'an error on the server ("injected") has prevented the request from succeeding',
    ),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted"),
}


def fault(code: int, message: str | None = None) -> ApiError:
    reason, default_message = FAULT_REASONS.get(code, ("InternalError", f"injected {code}"))
    headers = {"Retry-After": "1"} if code in (429, 503) else {}
    return ApiError(code, reason, message or default_message, {}, headers)
