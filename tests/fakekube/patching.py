"""PATCH bodies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

Strategic merge patch is applied as a JSON merge patch: the same for maps and scalars, but lists
are replaced whole instead of merged by key (see the README of the fake's limits).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from .errors import ApiError, bad_request, unsupported_media_type

JSON = dict[str, Any]

MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
JSON_PATCH_TYPE = "application/json-patch+json"
ACCEPTED_TYPES = (JSON_PATCH_TYPE, *MERGE_TYPES, "application/apply-patch+yaml")


def apply_patch(target: JSON, patch: Any, content_type: str) -> JSON:
    """Return a patched deep copy of `target`."""
    media = content_type.split(";")[0].strip().lower()
    if media in MERGE_TYPES:
        if not isinstance(patch, dict):
            raise bad_request(
                "json: cannot unmarshal array into Go value of type map[string]interface {}"
            )
        merged = merge_patch(target, patch)
        assert isinstance(merged, dict)
        return merged
    if media == JSON_PATCH_TYPE:
        if not isinstance(patch, list):
            raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        return json_patch(target, patch)
    raise unsupported_media_type(media, ACCEPTED_TYPES)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return _copy(patch)
    # One copy of the target, merged into in place: copying each level again on the way down
    # made a patch of a Job cost as much as several creates.
    result = _copy(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: JSON, patch: JSON) -> None:
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            inner = result.get(key)
            if not isinstance(inner, dict):
                inner = result[key] = {}
            _merge_into(inner, value)
        else:
            result[key] = _copy(value)


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (orjson's round trip is several times faster than deepcopy)."""
    return orjson.loads(orjson.dumps(value)) if isinstance(value, dict | list) else value


def _invalid(message: str) -> ApiError:
    # kube-apiserver answers failed JSON patch operations with 422 Invalid-like errors.
    return ApiError(422, "Invalid", message)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid(f"invalid JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    current = doc
    for part in parts[:-1]:
        current = _child(current, part, path)
    return current


def _child(container: Any, part: str, path: str) -> Any:
    if isinstance(container, dict) and part in container:
        return container[part]
    if isinstance(container, list) and part.isdigit() and int(part) < len(container):
        return container[int(part)]
    raise _invalid(f"doc is missing path: {path!r}")


def _get(doc: Any, path: str) -> Any:
    current = doc
    for part in _pointer(path):
        current = _child(current, part, path)
    return current


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise _invalid("cannot remove the whole document")
    parent, last = _parent(doc, parts, path), parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise _invalid(f"unable to remove nonexistent key: {last}: missing value")


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _parent(doc, parts, path), parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _invalid(f"replace operation does not apply: doc is missing key: {path}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise _invalid(f"unable to access invalid index: {last}")
    else:
        raise _invalid(f"doc is missing path: {path!r}")
    return doc


def json_patch(target: JSON, operations: list[Any]) -> JSON:
    doc: Any = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation:
            raise bad_request("invalid JSON patch operation")
        op, path = operation["op"], operation.get("path", "")
        if op in ("add", "replace"):
            doc = _add(doc, path, copy.deepcopy(operation.get("value")), replace=op == "replace")
        elif op == "remove":
            _remove(doc, path)
        elif op in ("move", "copy"):
            source = operation.get("from", "")
            value = _remove(doc, source) if op == "move" else copy.deepcopy(_get(doc, source))
            doc = _add(doc, path, value, replace=False)
        elif op == "test":
            if _get(doc, path) != operation.get("value"):
                raise _invalid(f"testing value {path} failed: test failed")
        else:
            raise bad_request(f"Unexpected kind: {op}")
    if not isinstance(doc, dict):
        raise bad_request("the patched document is not an object")
    return doc
