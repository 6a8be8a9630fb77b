"""Extract the facts of Radix's job-scheduler contract from its published swagger.json.

    python scripts/extract_radix_contract.py ../shared/reference/radix-swagger.json

writes tests/radix/radix-contract.json (or the path given as a second argument): a Swagger 2.0
document with paths, methods, operationIds, tags, parameters, response codes and schemas, and the
definitions with their field names, types, formats, enums and constraints. All prose (summaries,
descriptions, titles, examples) and Go extensions (`x-go-*`) are dropped; every response gets a
fixed short description, since Swagger 2.0 requires one. The output is deterministic, and running
the script on its own output yields the same document.
"""

from __future__ import annotations

import argparse
import json
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "radix" / "radix-contract.json"

METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
OPERATION_FACTS = ("operationId", "tags", "consumes", "produces")
PARAMETER_FACTS = ("name", "in", "required", "type", "format", "items", "enum", "collectionFormat")
# What a schema says about the shape of the data; everything else (description, title, example,
# x-go-name, x-go-package, x-go-enum-desc, ...) is prose or generator detail.
SCHEMA_FACTS = (
    "$ref",
    "type",
    "format",
    "enum",
    "required",
    "x-nullable",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
)
NESTED_SCHEMAS = ("items", "additionalProperties")
# Short, fixed response descriptions (Swagger 2.0 requires one): not Radix's wording.
RESPONSE_DESCRIPTIONS = {
    "200": "OK",
    "400": "Bad request",
    "404": "Not found",
    "422": "Unprocessable",
    "500": "Server error",
    "default": "Error",
}


def schema_facts(schema: Any) -> Any:
    """The facts of a schema object: its shape, recursively, without prose."""
    if not isinstance(schema, dict):
        return schema  # `additionalProperties: true`
    facts: dict[str, Any] = {key: schema[key] for key in SCHEMA_FACTS if key in schema}
    for key in NESTED_SCHEMAS:
        if key in schema:
            facts[key] = schema_facts(schema[key])
    if "allOf" in schema:
        facts["allOf"] = [schema_facts(part) for part in schema["allOf"]]
    if "properties" in schema:
        facts["properties"] = {
            name: schema_facts(value) for name, value in schema["properties"].items()
        }
    return facts


def parameter_facts(parameter: dict[str, Any]) -> dict[str, Any]:
    facts = {key: parameter[key] for key in PARAMETER_FACTS if key in parameter}
    if "schema" in parameter:
        facts["schema"] = schema_facts(parameter["schema"])
    return facts


def response_facts(code: str, response: dict[str, Any]) -> dict[str, Any]:
    description = RESPONSE_DESCRIPTIONS.get(code) or HTTPStatus(int(code)).phrase
    facts: dict[str, Any] = {"description": description}
    if "schema" in response:
        facts["schema"] = schema_facts(response["schema"])
    return facts


def operation_facts(operation: dict[str, Any]) -> dict[str, Any]:
    facts = {key: operation[key] for key in OPERATION_FACTS if key in operation}
    if "parameters" in operation:
        facts["parameters"] = [parameter_facts(p) for p in operation["parameters"]]
    facts["responses"] = {
        code: response_facts(code, response) for code, response in operation["responses"].items()
    }
    return facts


def path_facts(path_item: dict[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = {
        method: operation_facts(path_item[method]) for method in METHODS if method in path_item
    }
    if "parameters" in path_item:
        facts["parameters"] = [parameter_facts(p) for p in path_item["parameters"]]
    return facts


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The facts-only Swagger 2.0 document of a Swagger 2.0 document."""
    contract: dict[str, Any] = {
        "swagger": spec["swagger"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "paths": {path: path_facts(item) for path, item in spec["paths"].items()},
        "definitions": {
            name: schema_facts(definition) for name, definition in spec["definitions"].items()
        },
    }
    for key in ("basePath", "consumes", "produces"):
        if key in spec:
            contract[key] = spec[key]
    return contract


def render(contract: dict[str, Any]) -> str:
    return json.dumps(contract, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("source", type=Path, help="Radix's swagger.json")
    parser.add_argument(
        "output",
        type=Path,
        nargs="?",
        default=DEFAULT_OUTPUT,
        help="where to write the contract, - for stdout (default: tests/radix/radix-contract.json)",
    )
    args = parser.parse_args(argv)
    text = render(extract(json.loads(args.source.read_text())))
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)


if __name__ == "__main__":
    main()
