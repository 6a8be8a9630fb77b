"""The committed swagger.json is generated from the code, valid, served, and Radix-compatible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from scheduler.swagger import build_swagger, render

ROOT = Path(__file__).parent.parent
RADIX = json.loads((ROOT.parent / "shared" / "reference" / "radix-swagger.json").read_text())
OURS = json.loads((ROOT / "swagger.json").read_text())


def test_the_committed_swagger_json_is_what_the_code_generates() -> None:
    assert (ROOT / "swagger.json").read_text() == render(), (
        "swagger.json drifted from the models: run `python -m scheduler.swagger > swagger.json`"
    )


def test_the_swagger_json_is_a_valid_swagger_2_document() -> None:
    validate(build_swagger())


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }


@pytest.mark.parametrize("key", sorted(_operations(OURS)))
def test_every_operation_we_serve_has_radix_path_operation_id_and_parameters(
    key: tuple[str, str],
) -> None:
    ours, theirs = _operations(OURS)[key], _operations(RADIX).get(key)
    assert theirs is not None, f"{key} is not in Radix's spec"
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
    names: set[str] = set()
    text = json.dumps(OURS["paths"])
    for name in OURS["definitions"]:
        if f'"#/definitions/{name}"' in text:
            names |= _referenced(OURS, name, set())
    return names


@pytest.mark.parametrize("name", sorted(_schema_names_used_by_our_operations()))
def test_definitions_keep_radix_names_fields_and_types(name: str) -> None:
    ours, theirs = OURS["definitions"][name], RADIX["definitions"][name]
    assert ours.get("type") == theirs.get("type")
    their_fields = theirs.get("properties", {})
    our_fields = ours.get("properties", {})
    assert set(their_fields) == set(our_fields), name
    for field, their_schema in their_fields.items():
        our_schema = our_fields[field]
        for aspect in ("type", "format", "$ref", "enum"):
            assert our_schema.get(aspect) == their_schema.get(aspect), (name, field, aspect)
        if "items" in their_schema:
            assert our_schema["items"] == their_schema["items"], (name, field)
    assert set(ours.get("required", [])) == set(theirs.get("required", [])), name


async def test_swagger_json_and_swagger_ui_are_served(scheduler: TestClient[Any, Any]) -> None:
    response = await scheduler.get("/swagger.json")
    assert response.status == 200
    assert await response.json() == OURS
    ui = await scheduler.get("/swaggerui")
    assert ui.status == 200 and "SwaggerUIBundle" in await ui.text()
    bundle = await scheduler.get("/swaggerui/swagger-ui-bundle.js")
    assert bundle.status == 200
