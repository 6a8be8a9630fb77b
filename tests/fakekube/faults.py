"""Fault injection: make chosen requests fail, wait or be held, or the whole server unreachable.

A held request waits before it reaches the registry until the test releases it, so a test can
act (kill a client process, cut the network) at a chosen moment of a request's life.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ApiError, fault


class Hold:
    """The requests one `Faults.hold` or `Faults.delay` rule caught.

    `wait_arrived()` returns once a request is waiting; `release()` lets every waiting request
    go on to the registry and stops holding later ones.
    """

    def __init__(self) -> None:
        self._arrived = 0
        self._changed = asyncio.Condition()
        self._gate = asyncio.Event()
        self._dropped = False

    @property
    def arrived(self) -> int:
        """How many requests the rule has caught so far."""
        return self._arrived

    async def wait_arrived(self, timeout: float = 10.0, count: int = 1) -> None:
        """Until `count` matching requests have arrived; TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self._arrived >= count)

    def release(self) -> None:
        self._gate.set()

    def drop(self) -> None:
        """End the waiting requests unanswered, as when the server goes away."""
        if not self._gate.is_set():
            self._dropped = True
            self._gate.set()

    async def arrive(self) -> None:
        async with self._changed:
            self._arrived += 1
            self._changed.notify_all()

    async def admit(self, seconds: float | None) -> bool:
        """Wait for release (or `seconds`, when given); False when the request is dropped."""
        await self.arrive()
        if seconds is None:
            await self._gate.wait()
        else:
            try:
                await asyncio.wait_for(self._gate.wait(), seconds)
            except TimeoutError:
                return True
        return not self._dropped


@dataclass(slots=True, eq=False)
class _Rule:
    method: str | None
    pattern: re.Pattern[str]
    remaining: int | None  # None: for ever
    status: int | None = None
    message: str | None = None
    seconds: float | None = None  # a delay's length; None with a hold: until released
    hold: Hold | None = None

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
    waits: tuple[_Rule, ...] = ()  # delays and holds, in the order they were added
    error: ApiError | None = None


class Faults:
    """Rules match a request's method (None: any) and `re.search` its path with query string,
    e.g. `r"/jobs(\\?|$)"` or `r"watch=true"`. Each rule applies `times` times (None: always).
    A request waits through every delay and hold that matches it, then fails with the first
    matching failure, if any."""

    def __init__(self, on_down: Callable[[], None] | None = None) -> None:
        self._log_cuts: list[tuple[int, bool]] = []
        self._rules: list[_Rule] = []
        self._holds: list[Hold] = []
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
    ) -> Hold:
        """Hold matching requests for `seconds` (real seconds, not scaled) before answering,
        or until released. Stopping the fake drops delayed requests unanswered."""
        return self._add_hold(method, path_regex, times, seconds)

    def hold(self, method: str | None, path_regex: str, times: int | None = 1) -> Hold:
        """Hold matching requests before they reach the registry until `release()`; stopping
        the fake drops them unanswered, so they never reach it."""
        return self._add_hold(method, path_regex, times, None)

    def _add_hold(
        self, method: str | None, path_regex: str, times: int | None, seconds: float | None
    ) -> Hold:
        hold = Hold()
        self._holds.append(hold)
        self._rules.append(_Rule(method, re.compile(path_regex), times, seconds=seconds, hold=hold))
        return hold

    def cut_logs(self, after_lines: int, times: int = 1, *, clean: bool = False) -> None:
        """The next `times` followed logs each send `after_lines` lines, then end: abruptly,
        half-way through the next line, as the connection closes at an API server's restart;
        or `clean`ly, as at the kubelet's or a proxy's timeout."""
        self._log_cuts.extend([(after_lines, clean)] * times)

    def take_log_cut(self) -> tuple[int, bool] | None:
        """For a followed log being opened: how many lines it may send before it is cut, and
        whether the cut is clean."""
        return self._log_cuts.pop(0) if self._log_cuts else None

    def clear(self) -> None:
        """Forget every rule, let held requests go on and bring the server back up."""
        self._log_cuts.clear()
        self._rules.clear()
        for hold in self._holds:
            hold.release()
        self._holds.clear()
        self._down = False

    def stop(self) -> None:
        """The server is going away: drop every held request."""
        for hold in self._holds:
            hold.drop()

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
        waits: list[_Rule] = []
        error = None
        for rule in self._rules:
            if not rule.applies(method, path_qs):
                continue
            if rule.hold is not None:
                rule.consume()
                waits.append(rule)
            elif error is None:
                rule.consume()
                error = fault(rule.status or 500, rule.message)
        self._rules = [r for r in self._rules if r.remaining is None or r.remaining > 0]
        return Verdict(tuple(waits), error)

    async def admit(self, verdict: Verdict) -> bool:
        """Wait through a request's delays and holds; False when it is to be dropped."""
        for rule in verdict.waits:
            assert rule.hold is not None
            if not await rule.hold.admit(rule.seconds):
                return False
        return True
