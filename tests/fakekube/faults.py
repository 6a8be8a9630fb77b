"""Fault injection: make chosen requests fail or slow down, or the whole server unreachable."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ApiError, fault


@dataclass(slots=True)
class _Rule:
    method: str | None
    pattern: re.Pattern[str]
    remaining: int | None  # None: for ever
    status: int | None = None
    message: str | None = None
    seconds: float = 0.0

    def applies(self, method: str, path_qs: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.pattern.search(path_qs) is not None

    def consume(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


@dataclass(frozen=True, slots=True)
class Verdict:
    delay_seconds: float = 0.0
    error: ApiError | None = None


class Faults:
    """Rules match a request's method (None: any) and `re.search` its path with query string,
    e.g. `r"/jobs(\\?|$)"` or `r"watch=true"`. Each rule applies `times` times (None: always)."""

    def __init__(self, on_down: Callable[[], None] | None = None) -> None:
        self._rules: list[_Rule] = []
        self._down = False
        self._on_down = on_down

    def fail(
        self,
        method: str | None,
        path_regex: str,
        status: int = 500,
        times: int | None = 1,
        message: str | None = None,
    ) -> None:
        """Answer matching requests with a `Status` of this code (429 and 503 carry
        Retry-After: 1)."""
        self._rules.append(_Rule(method, re.compile(path_regex), times, status, message))

    def delay(
        self, method: str | None, path_regex: str, seconds: float, times: int | None = 1
    ) -> None:
        """Hold matching requests for `seconds` (real seconds, not scaled) before answering."""
        self._rules.append(_Rule(method, re.compile(path_regex), times, seconds=seconds))

    def clear(self) -> None:
        """Forget every rule and bring the server back up."""
        self._rules.clear()
        self._down = False

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        """While down, every request gets 503; going down drops the open watches."""
        self._down = value
        if value and self._on_down is not None:
            self._on_down()

    def judge(self, method: str, path_qs: str) -> Verdict:
        if self._down:
            return Verdict(error=fault(503))
        delay, error = 0.0, None
        for rule in self._rules:
            if not rule.applies(method, path_qs):
                continue
            if rule.status is None:
                rule.consume()
                delay += rule.seconds
            elif error is None:
                rule.consume()
                error = fault(rule.status, rule.message)
        self._rules = [r for r in self._rules if r.remaining is None or r.remaining > 0]
        return Verdict(delay, error)
