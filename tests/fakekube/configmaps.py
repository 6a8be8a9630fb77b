"""Registry rules of ConfigMaps, after core/v1's decoder and ValidateConfigMap(Update): string
values under valid config keys, base64 binaryData, at most 1 MiB, no change once immutable."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from . import errors as e
from .errors import FieldError
from .strategy import Strategy
from .validation import config_key_errors

JSON = dict[str, Any]

CONFIG_MAP_MAX_BYTES = 1024 * 1024  # core.MaxSecretSize, which ConfigMaps share
# What the decoder keeps; it drops unknown fields (a status, say) as the real one does.
FIELDS = frozenset({"kind", "apiVersion", "metadata", "data", "binaryData", "immutable"})
IMMUTABLE_DETAIL = "field is immutable when `immutable` is set"
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")


def _json_type(value: Any) -> str:
    """How Go's encoding/json names the JSON type it could not decode."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _decode_error(detail: str) -> e.ApiError:
    # Decoding fails before validation, so the real server answers 400, not 422.
    return e.bad_request(f'ConfigMap in version "v1" cannot be handled as a ConfigMap: {detail}')


def _type_error(value: Any, field: str, go_type: str) -> e.ApiError:
    return _decode_error(
        f"json: cannot unmarshal {_json_type(value)} into Go struct field "
        f"ConfigMap.{field} of type {go_type}"
    )


def decode_binary(value: str) -> bytes:
    """One binaryData value, decoded as Go decodes []byte from JSON."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        bad = _NOT_BASE64.search(value)
        offset = bad.start() if bad else len(value)
        raise _decode_error(f"illegal base64 data at input byte {offset}") from exc


def _decode_map(obj: JSON, field: str) -> None:
    values = obj.get(field)
    if values is None:
        return
    go_type = "map[string]string" if field == "data" else "map[string][]uint8"
    if not isinstance(values, dict):
        raise _type_error(values, field, go_type)
    for key, value in values.items():
        if value is None:
            values[key] = ""  # Go decodes null into a string's zero value
        elif not isinstance(value, str):
            raise _type_error(value, field, "string" if field == "data" else "[]uint8")
        elif field == "binaryData":
            decode_binary(value)


class ConfigMapStrategy(Strategy):
    def default(self, obj: JSON) -> None:
        # Decoding runs on every write: drop what a ConfigMap has no field for, reject values
        # of the wrong JSON type.
        for field in [f for f in obj if f not in FIELDS]:
            del obj[field]
        _decode_map(obj, "data")
        _decode_map(obj, "binaryData")
        immutable = obj.get("immutable")
        if immutable is not None and not isinstance(immutable, bool):
            raise _type_error(immutable, "immutable", "bool")

    def validate(self, obj: JSON) -> list[FieldError]:
        errors = super().validate(obj)
        data: JSON = obj.get("data") or {}
        binary: JSON = obj.get("binaryData") or {}
        total = 0
        for key, value in data.items():
            errors += [e.invalid_value(f"data[{key}]", key, m) for m in config_key_errors(key)]
            if key in binary:
                detail = "duplicate of key present in binaryData"
                errors.append(e.invalid_value(f"data[{key}]", key, detail))
            total += len(value.encode())
        for key, value in binary.items():
            errors += [
                e.invalid_value(f"binaryData[{key}]", key, m) for m in config_key_errors(key)
            ]
            total += len(decode_binary(value))
        if total > CONFIG_MAP_MAX_BYTES:
            errors.append(e.too_long("", CONFIG_MAP_MAX_BYTES))
        return errors

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        if not old.get("immutable"):
            return []
        errors: list[FieldError] = []
        if not new.get("immutable"):
            errors.append(e.forbidden("immutable", IMMUTABLE_DETAIL))
        for field in ("data", "binaryData"):
            if (new.get(field) or {}) != (old.get(field) or {}):
                errors.append(e.forbidden(field, IMMUTABLE_DETAIL))
        return errors
