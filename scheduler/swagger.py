"""Swagger 2.0 document generated from the wire models and the operation table (`swagger_paths`).

`python -m scheduler.swagger > swagger.json` rewrites the committed file; a test fails on drift.
Paths, operationIds and definition names follow Radix's published spec so generated clients work.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from scheduler import __version__, additions
from scheduler.models import (
    BatchEvent,
    BatchScheduleDescription,
    BatchStatus,
    JobScheduleDescription,
    JobStatus,
    Status,
)
from scheduler.swagger_paths import paths

_REF = "#/definitions/{model}"
_JSON_SCHEMA_ONLY = ("title", "default")
# BatchEvent is no operation's body: Radix publishes it (and Event) for webhook receivers.
_MODELS: tuple[type[BaseModel], ...] = (
    BatchEvent,
    BatchScheduleDescription,
    BatchStatus,
    JobScheduleDescription,
    JobStatus,
    Status,
)


def _to_swagger(schema: Any, enums: dict[str, Any]) -> Any:
    """JSON Schema (pydantic) -> Swagger 2.0 schema object."""
    if isinstance(schema, list):
        return [_to_swagger(item, enums) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "anyOf" in schema:
        # Optional[X] is `anyOf: [X, null]`; Swagger 2.0 has no null type: the field is optional.
        options = [o for o in schema["anyOf"] if o != {"type": "null"}]
        merged = {k: v for k, v in schema.items() if k != "anyOf"}
        if len(options) == 1:
            merged = {**options[0], **merged}
        optional: dict[str, Any] = _to_swagger(merged, enums)
        if "$ref" not in optional and len(options) < len(schema["anyOf"]):
            # We send `null` for an unset time, as Radix does; say so (openapi-generator and
            # validators read this Swagger 2.0 extension).
            optional["x-nullable"] = True
        return optional
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in enums:
        # Radix inlines enums in the property; keep the property's own description.
        inlined = {**enums[ref.rsplit("/", 1)[-1]]}
        if "description" in schema:
            inlined["description"] = schema["description"]
        return _to_swagger(inlined, enums)
    if isinstance(ref, str):
        # In Swagger 2.0 a $ref replaces its object: siblings are ignored, so drop them.
        return {"$ref": ref}
    if "patternProperties" in schema:
        schema = _keyed_by_pattern(schema)
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _JSON_SCHEMA_ONLY:
            continue
        if key == "examples" and isinstance(value, list) and value:
            converted["example"] = value[0]
        elif key == "properties":
            converted[key] = {name: _to_swagger(v, enums) for name, v in value.items()}
        else:
            converted[key] = _to_swagger(value, enums)
    return converted


def _keyed_by_pattern(schema: dict[str, Any]) -> dict[str, Any]:
    """A map whose keys must match a pattern (pydantic's `patternProperties`, which Swagger 2.0
    lacks): `additionalProperties`, the shape Radix declares, plus the key pattern in an
    extension that generators ignore and readers (and our tests) can use."""
    ((pattern, values),) = schema["patternProperties"].items()
    rest = {k: v for k, v in schema.items() if k != "patternProperties"}
    return {**rest, "additionalProperties": values, "x-key-pattern": pattern}


def definitions() -> dict[str, Any]:
    _, schema = models_json_schema(
        [(model, "validation") for model in (*_MODELS, *additions.models())],
        by_alias=True,
        ref_template=_REF,
    )
    raw: dict[str, Any] = schema["$defs"]
    enums = {name: d for name, d in raw.items() if "enum" in d and d.get("type") == "string"}
    result = {}
    for name, definition in sorted(raw.items()):
        if name in enums:
            continue
        result[name] = _to_swagger(definition, enums)
    return result


def build_swagger() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {
            "title": "Radix job scheduler server.",
            "description": "This is the API Server for the Radix job scheduler server "
            "(job-scheduler implementation on Kubernetes).",
            "version": __version__,
        },
        "schemes": ["http", "https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "basePath": "/api/v1",
        "paths": {**paths(), **additions.paths()},
        "definitions": definitions(),
    }


def render() -> str:
    return json.dumps(build_swagger(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
