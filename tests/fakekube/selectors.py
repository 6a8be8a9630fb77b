"""Label and field selectors: the parser and matcher of k8s.io/apimachinery, in small.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`.
Field selectors: `path=v`, `path==v`, `path!=v` over the fields each kind supports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .validation import label_key_errors, label_value_errors


class SelectorError(ValueError):
    """The selector text does not parse; the server answers 400 BadRequest."""


_SPECIAL = "!=,()<>"
_OPERATORS = ("==", "!=", "=", "!", ",", "(", ")", "<", ">")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        two = text[i : i + 2]
        if two in ("==", "!="):
            tokens.append(two)
            i += 2
        elif ch in _SPECIAL:
            tokens.append(ch)
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in _SPECIAL:
                i += 1
            tokens.append(text[start:i])
    return tokens


def _is_identifier(token: str | None) -> bool:
    return token is not None and token not in _OPERATORS


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.operator:
            case "exists":
                return present
            case "!":
                return not present
            case "=" | "in":
                return value in self.values
            case "!=" | "notin":
                return value not in self.values
            case ">" | "<":
                if value is None or not re.fullmatch(r"-?\d+", value):
                    return False
                limit = int(next(iter(self.values)))
                return int(value) > limit if self.operator == ">" else int(value) < limit
        raise AssertionError(self.operator)


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | None:
        token = self.peek()
        self.pos += 1
        return token

    def fail(self, why: str) -> SelectorError:
        return SelectorError(f"unable to parse requirement: {why} in selector {self.text!r}")

    def parse(self) -> LabelSelector:
        requirements: list[Requirement] = []
        while self.peek() is not None:
            requirements.append(self.requirement())
            token = self.take()
            if token not in (None, ","):
                raise self.fail(f"found {token!r}, expected ','")
        return LabelSelector(tuple(requirements))

    def key(self) -> str:
        token = self.take()
        if not _is_identifier(token):
            raise self.fail(f"found {token!r}, expected a label key")
        assert token is not None
        errors = label_key_errors(token)
        if errors:
            raise self.fail(f"key {token!r}: {errors[0]}")
        return token

    def value(self) -> str:
        token = self.peek()
        if not _is_identifier(token):
            return ""  # `k=` selects the empty value
        self.pos += 1
        assert token is not None
        errors = label_value_errors(token)
        if errors:
            raise self.fail(f"value {token!r}: {errors[0]}")
        return token

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return Requirement(self.key(), "!")
        key = self.key()
        operator = self.peek()
        if operator in (None, ","):
            return Requirement(key, "exists")
        self.take()
        if operator in ("=", "==", "!="):
            return Requirement(key, "!=" if operator == "!=" else "=", frozenset({self.value()}))
        if operator in ("in", "notin"):
            return Requirement(key, operator, self.value_set())
        if operator in ("<", ">"):
            number = self.take() or ""
            if not re.fullmatch(r"-?\d+", number):
                raise self.fail(f"for '{operator}', the value must be an integer")
            return Requirement(key, operator, frozenset({number}))
        raise self.fail(f"found {operator!r}, expected an operator")

    def value_set(self) -> frozenset[str]:
        if self.take() != "(":
            raise self.fail("expected '(' after in/notin")
        values: set[str] = set()
        while True:
            values.add(self.value())
            token = self.take()
            if token == ")":
                break
            if token != ",":
                raise self.fail(f"found {token!r}, expected ',' or ')'")
        return frozenset(values)


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    return _LabelParser(text).parse()


def label_selector_from_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """A `metav1.LabelSelector` (matchLabels + matchExpressions) as a LabelSelector."""
    spec = spec or {}
    requirements = [
        Requirement(k, "=", frozenset({v})) for k, v in (spec.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in spec.get("matchExpressions") or []:
        values = frozenset(expression.get("values") or [])
        operator = operators[expression["operator"]]
        requirements.append(Requirement(expression["key"], operator, values))
    return LabelSelector(tuple(requirements))


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    path: tuple[str, ...]
    value: str
    negate: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        current: Any = obj
        for part in self.path:
            current = current.get(part) if isinstance(current, Mapping) else None
        text = _field_text(current)
        return (text != self.value) if self.negate else (text == self.value)


def _field_text(value: Any) -> str:
    # Fields are compared as the strings the server's field-set conversion produces.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)


def parse_field_selector(text: str | None, supported: frozenset[str]) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    requirements: list[FieldRequirement] = []
    # Split on commas and operators that are not escaped with a backslash.
    for term in re.split(r"(?<!\\),", text):
        found = re.match(r"^\s*([^=!\s]+)\s*(==|!=|=)(.*)$", term)
        if not found:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field, operator, value = found.group(1), found.group(2), found.group(3).strip()
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        path = _FIELD_ALIASES.get(field, tuple(field.split(".")))
        requirements.append(FieldRequirement(path, _unescape(value), operator == "!="))
    return FieldSelector(tuple(requirements))


# Event's `source` field selector means source.component.
_FIELD_ALIASES: dict[str, tuple[str, ...]] = {"source": ("source", "component")}
