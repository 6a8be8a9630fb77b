"""The committed swagger.json is generated from the code, valid, served, and Radix-compatible.

Radix's contract is `tests/radix/radix-contract.json`, the facts extracted from its published
swagger.json by `scripts/extract_radix_contract.py` (see tests/radix/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from scheduler.swagger import build_swagger, render
from scheduler.swagger_paths import WAIT_EXTENSION

ROOT = Path(__file__).parents[2]
CONTRACT = ROOT / "tests" / "radix" / "radix-contract.json"
EXTRACTOR = ROOT / "scripts" / "extract_radix_contract.py"
RADIX = json.loads(CONTRACT.read_text())
OURS = json.loads((ROOT / "swagger.json").read_text())
# Radix posts these to a webhook it is given; no operation takes or returns them.
WEBHOOK_BODIES = {"BatchEvent", "Event"}
# What a field's schema says about the data on the wire.
SHAPE = ("type", "format", "$ref", "enum", "items", "additionalProperties")


def test_the_committed_swagger_json_is_what_the_code_generates() -> None:
    assert (ROOT / "swagger.json").read_text() == render(), (
        "swagger.json drifted from the models: run `python -m scheduler.swagger > swagger.json`"
    )


def test_the_swagger_json_is_a_valid_swagger_2_document() -> None:
    validate(build_swagger())


def test_the_radix_contract_is_a_valid_swagger_2_document_of_fourteen_operations() -> None:
    validate(RADIX)
    assert len(_operations(RADIX)) == 14


def test_the_radix_contract_is_exactly_what_the_extractor_makes_of_it() -> None:
    # Extracting from the extract changes nothing: the committed file holds facts only.
    extracted = subprocess.run(
        [sys.executable, str(EXTRACTOR), str(CONTRACT), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert extracted == CONTRACT.read_text(), (
        "radix-contract.json holds more than the facts scripts/extract_radix_contract.py keeps "
        "(or was edited by hand): regenerate it"
    )


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }


@pytest.mark.parametrize(
    "key", sorted(_operations(RADIX)), ids=lambda key: _operations(RADIX)[key]["operationId"]
)
def test_we_serve_every_radix_operation(key: tuple[str, str]) -> None:
    path, method = key
    theirs, ours = _operations(RADIX)[key], _operations(OURS).get(key)
    assert ours is not None, f"we do not serve {method.upper()} {path} ({theirs['operationId']})"
    assert ours["operationId"] == theirs["operationId"]


# Our additions to Radix's API (logs, events, ...) carry their own tag.
OUR_TAG = "Scheduler"


def _radix_side(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {k: op for k, op in _operations(spec).items() if OUR_TAG not in op.get("tags", [])}


def test_our_additions_carry_their_own_tag_and_take_nothing_of_radix() -> None:
    ours = {k: op for k, op in _operations(OURS).items() if OUR_TAG in op.get("tags", [])}
    assert not set(ours) & set(_operations(RADIX)), "an addition replaces a Radix operation"
    radix_ids = {op["operationId"] for op in _operations(RADIX).values()}
    assert not {op["operationId"] for op in ours.values()} & radix_ids
    for operation in ours.values():
        assert operation["tags"] == [OUR_TAG]


@pytest.mark.parametrize("key", sorted(_radix_side(OURS)))
def test_every_operation_we_serve_has_radix_path_operation_id_and_parameters(
    key: tuple[str, str],
) -> None:
    ours, theirs = _operations(OURS)[key], _operations(RADIX).get(key)
    assert theirs is not None, f"{key} is not in Radix's spec and not tagged {OUR_TAG}"
    assert ours["operationId"] == theirs["operationId"]
    param = lambda p: (p["name"], p["in"])  # noqa: E731
    assert [param(p) for p in ours.get("parameters", [])] == [
        param(p) for p in theirs.get("parameters", [])
    ]
    # A parameter Radix requires may be optional here (a relaxation), never the reverse.
    for our_param, their_param in zip(
        ours.get("parameters", []), theirs.get("parameters", []), strict=True
    ):
        assert not our_param.get("required") or their_param.get("required")
    assert ours["responses"]["200"]["schema"] == theirs["responses"]["200"]["schema"]
    assert set(theirs["responses"]) - {"400"} <= set(ours["responses"]) | {"400"}
    assert OURS["basePath"] == RADIX["basePath"] == "/api/v1"


def _referenced(spec: dict[str, Any], root: str, seen: set[str]) -> set[str]:
    if root in seen:
        return seen
    seen.add(root)
    text = json.dumps(spec["definitions"][root])
    for name in spec["definitions"]:
        if f'"#/definitions/{name}"' in text:
            _referenced(spec, name, seen)
    return seen


def _schema_names_used_by_our_operations() -> set[str]:
    """Those of Radix's operations: our additions' own definitions are not Radix's."""
    names: set[str] = set()
    text = json.dumps(list(_radix_side(OURS).values()))
    for name in OURS["definitions"]:
        if f'"#/definitions/{name}"' in text:
            names |= _referenced(OURS, name, set())
    return names


def _shape(schema: Any) -> Any:
    """A schema without its prose: what it says about the data on the wire."""
    if not isinstance(schema, dict):
        return schema
    return {aspect: _shape(schema[aspect]) for aspect in SHAPE if aspect in schema}


def _radix_definitions_we_must_have() -> list[str]:
    return sorted(
        name
        for name in RADIX["definitions"]
        if name not in WEBHOOK_BODIES or name in OURS["definitions"]
    )


@pytest.mark.parametrize("name", _radix_definitions_we_must_have())
def test_we_define_every_radix_definition_with_every_field_and_its_type(name: str) -> None:
    # Ours may add fields; it may not drop one or change its type.
    ours, theirs = OURS["definitions"].get(name), RADIX["definitions"][name]
    assert ours is not None, f"Radix defines {name}; we do not"
    assert ours.get("type") == theirs.get("type")
    assert _shape(ours.get("additionalProperties")) == _shape(theirs.get("additionalProperties"))
    our_fields = ours.get("properties", {})
    for field, their_schema in theirs.get("properties", {}).items():
        assert field in our_fields, f"{name}.{field} is in Radix's contract, not in ours"
        our_schema = our_fields[field]
        for aspect in SHAPE:
            assert _shape(our_schema.get(aspect)) == _shape(their_schema.get(aspect)), (
                name,
                field,
                aspect,
            )


@pytest.mark.parametrize("name", sorted(_schema_names_used_by_our_operations()))
def test_definitions_our_operations_use_have_exactly_radix_fields_and_required_fields(
    name: str,
) -> None:
    # What we send and take has no field more than Radix's (types are checked above).
    ours, theirs = OURS["definitions"][name], RADIX["definitions"][name]
    assert set(theirs.get("properties", {})) == set(ours.get("properties", {})), name
    assert set(ours.get("required", [])) == set(theirs.get("required", [])), name


async def test_swagger_json_and_swagger_ui_are_served(scheduler: TestClient[Any, Any]) -> None:
    response = await scheduler.get("/swagger.json")
    assert response.status == 200
    assert await response.json() == OURS
    ui = await scheduler.get("/swaggerui")
    assert ui.status == 200 and "SwaggerUIBundle" in await ui.text()
    bundle = await scheduler.get("/swaggerui/swagger-ui-bundle.js")
    assert bundle.status == 200


# What we may say of a Radix definition beyond its shape: prose, and limits the server enforces
# (tests/test_declared_constraints.py proves each). Generated clients keep their types for these;
# others, such as `uniqueItems` (a set in some generators), would change what a client sees.
PROSE = ("description", "example", "required", "properties", "x-nullable")
LIMITS = ("minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems")
KEY_LIMIT = "x-key-pattern"
# Where a request body declares the fields we take beyond Radix's: an extension, which generators
# ignore, so a generated client keeps exactly Radix's model. Its contents are ours.
OUR_FIELDS = "x-job-scheduler-properties"


def _keywords(schema: Any) -> set[str]:
    if not isinstance(schema, dict):
        return set()
    found = set(schema)
    for key, value in schema.items():
        if key == OUR_FIELDS:
            continue
        children = value.values() if key == "properties" else [value]
        for child in children:
            found |= _keywords(child)
    return found


@pytest.mark.parametrize("name", _radix_definitions_we_must_have())
def test_a_radix_definition_gains_only_prose_and_limits_that_keep_a_generated_client_types(
    name: str,
) -> None:
    allowed = {*SHAPE, *PROSE, *LIMITS, KEY_LIMIT, OUR_FIELDS}
    assert _keywords(OURS["definitions"][name]) <= allowed, name


@pytest.mark.parametrize("name", ["JobScheduleDescription", "BatchScheduleDescription"])
def test_a_request_body_declares_start_after_and_waiting_timeout_beside_radix_fields(
    name: str,
) -> None:
    definition = OURS["definitions"][name]
    ours = definition[OUR_FIELDS]
    assert {field: _shape(schema) for field, schema in ours.items()} == {
        "startAfter": {"type": "string", "format": "date-time"},
        "waitingTimeoutSeconds": {"type": "integer", "format": "int32"},
    }
    assert ours["waitingTimeoutSeconds"]["minimum"] == 1
    assert not set(ours) & set(definition["properties"]), "a generated client would see them"
    assert OUR_FIELDS in definition["description"], "its prose points to them"


def test_only_request_bodies_status_and_pod_status_declare_fields_of_ours() -> None:
    declaring = {name for name, d in OURS["definitions"].items() if OUR_FIELDS in d}
    assert declaring == {
        "JobScheduleDescription",
        "BatchScheduleDescription",
        "Status",
        "PodStatus",
    }


def test_pod_status_declares_why_an_attempt_waited_beside_radix_fields() -> None:
    definition = OURS["definitions"]["PodStatus"]
    waited = definition[OUR_FIELDS]["waited"]
    assert {field: _shape(schema) for field, schema in waited["properties"].items()} == {
        "reason": {"type": "string"},
        "message": {"type": "string"},
        "seconds": {"type": "integer", "format": "int64"},
    }
    assert "waited" not in definition["properties"], "a generated client would see it"
    assert OUR_FIELDS in definition["description"], "its prose points to it"


def test_status_declares_the_causes_of_a_payload_schema_422_beside_radix_fields() -> None:
    definition = OURS["definitions"]["Status"]
    details = definition[OUR_FIELDS]["details"]
    cause = details["properties"]["causes"]["items"]["properties"]
    assert set(cause) == {"field", "pointer", "rule", "value", "message"}
    assert "details" not in definition["properties"], "a generated client would see it"
    assert OUR_FIELDS in definition["description"], "its prose points to it"


# Our `wait` on Radix's GETs (scheduler.api.waits): told beside their parameters, not among them.
WAITED = {
    ("/jobs/{jobName}", "get"),
    ("/batches/{batchName}", "get"),
    ("/batches/{batchName}/jobs/{jobName}", "get"),
}


def test_the_gets_of_a_job_a_batch_and_a_batch_job_tell_of_wait_in_an_extension_only() -> None:
    for key, operation in _operations(OURS).items():
        extension = operation.get(WAIT_EXTENSION)
        if key not in WAITED:
            assert extension is None, key
            continue
        assert [(p["name"], p["in"], p["type"]) for p in extension] == [
            ("wait", "query", "integer")
        ]
        assert "wait" not in {p["name"] for p in operation.get("parameters", [])}
        assert "?wait=SECONDS" in operation["description"]
        assert "422" in operation["responses"]
