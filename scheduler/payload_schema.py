"""A job's payload schema (radixconfig `payload.schema`, JSON Schema draft 2020-12): read, checked
against the draft's meta-schema and compiled once at start, then the judge of every payload.

No `$ref` is ever fetched: the schema is one document, its references point inside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import yaml

from scheduler.errors import ConfigError

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
# What a cause quotes of the payload, and a message at most: a value may be the whole payload.
MAX_VALUE_CHARS = 80
MAX_MESSAGE_CHARS = 200
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a payload breaks its schema: where (a JSON pointer into the payload, "" for the
    payload itself), which rule (the schema keyword; `json` for a payload that is not JSON,
    `required` for a missing one), the value that broke it (shortened), and what is wrong."""

    pointer: str
    rule: str
    value: Any
    message: str


def short_value(value: Any) -> Any:
    """`value` itself when its JSON text is short; else the start of that text and `…`."""
    text = orjson.dumps(value).decode()
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return text[: MAX_VALUE_CHARS - 1] + ELLIPSIS


def _short(message: str) -> str:
    message = " ".join(message.split())
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 1] + ELLIPSIS


def json_pointer(path: list[str | int]) -> str:
    """RFC 6901: `["items", 0, "a/b"]` -> `/items/0/a~1b`."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


class PayloadSchema:
    """A compiled schema and the document it was compiled from (the one served to clients)."""

    __slots__ = ("_validator", "document", "source")

    def __init__(self, document: Mapping[str, Any], source: str) -> None:
        """`source`: where the schema was read, for errors. ValueError says what is wrong."""
        self.document = dict(document)
        self.source = source
        declared = self.document.get("$schema", DRAFT_2020_12)
        if not isinstance(declared, str) or declared.rstrip("#") != DRAFT_2020_12:
            raise ValueError(f"$schema is {declared!r}; only {DRAFT_2020_12} is taken")
        try:
            jsonschema_rs.meta.validate(self.document)
        except jsonschema_rs.ValidationError as exc:
            where = json_pointer(exc.instance_path) or "(the schema)"
            raise ValueError(f"not a draft 2020-12 JSON Schema: {where}: {exc.message}") from None
        try:
            # offline: a remote `$ref` fails here, at start, and nothing is fetched later.
            self._validator = jsonschema_rs.Draft202012Validator(self.document, offline=True)
        except jsonschema_rs.ValidationError as exc:
            where = json_pointer(exc.instance_path) or "(the schema)"
            raise ValueError(f"cannot be compiled: {where}: {_short(exc.message)}") from None
        except jsonschema_rs.ReferencingError as exc:
            raise ValueError(f"cannot be compiled: {_short(exc.message)}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PayloadSchema) and other.document == self.document

    def __hash__(self) -> int:
        return hash(orjson.dumps(self.document, option=orjson.OPT_SORT_KEYS))

    def __repr__(self) -> str:
        return f"PayloadSchema(source={self.source!r})"

    @property
    def title(self) -> str | None:
        title = self.document.get("title")
        return title if isinstance(title, str) else None

    def violations(self, payload: str | None) -> Iterator[Violation]:
        """How `payload` (JSON text) breaks the schema, lazily; none when it satisfies it. A job
        with a schema takes JSON: an absent or empty payload is one `required` violation."""
        if not payload:
            yield Violation("", "required", None, "a payload (JSON) is required by the schema")
            return
        try:
            instance = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            yield Violation("", "json", short_value(payload), f"not JSON: {exc}")
            return
        for error in self._validator.iter_errors(instance):
            yield Violation(
                json_pointer(error.instance_path),
                error.kind.name,
                short_value(error.instance),
                _short(error.message),
            )


def load_payload_schema(declared: object, *, base: Path, where: str) -> PayloadSchema:
    """`declared`: the schema inline (a mapping) or a file path relative to `base` (the
    radixconfig's directory), JSON or YAML. ConfigError: one line, `where` and what is wrong."""
    if isinstance(declared, Mapping):
        document, source = declared, where
    elif isinstance(declared, str) and declared.strip():
        path = base / declared
        source = f"{where}: {path}"
        document = _read(path, source)
    else:
        raise ConfigError(f"{where}: must be a JSON Schema (a mapping) or the path of a file")
    try:
        # What YAML gives is JSON's types only (no dates, string keys), as clients will read it.
        normal = json.loads(json.dumps(document, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: not JSON data: {exc}") from None
    try:
        return PayloadSchema(normal, source)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _read(path: Path, source: str) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the schema: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: cannot read the schema: not UTF-8 text") from None
    try:
        # JSON is YAML, but YAML's errors would be confusing for a .json file.
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ConfigError(f"{source}: not valid {kind}: {_short(str(exc))}") from None
    if not isinstance(document, Mapping):
        raise ConfigError(f"{source}: must hold a JSON Schema object")
    return document
