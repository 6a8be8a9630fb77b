"""Time as the fake sees it: RFC 3339 timestamps like the API server's, and scaled durations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

_last_second: list[tuple[int, str]] = [(-1, "")]  # the last second formatted, and its text


def rfc3339(at: float | None = None) -> str:
    """`2024-05-01T12:00:00Z`: UTC with second precision, as metav1.Time is serialized."""
    second = int(time.time() if at is None else at)
    cached = _last_second[0]
    if cached[0] == second:
        return cached[1]
    text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _last_second[0] = (second, text)
    return text


def rfc3339_micro(at: float | None = None) -> str:
    """metav1.MicroTime, used by Events' eventTime."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """Simulated durations (a container's `sleep 30`, a back-off) times `scale`, so tests can
    run a minute of cluster time in a few seconds. Timestamps stay wall-clock.

    Scaling shrinks a pod's seconds to milliseconds but not the controllers' reaction time, so
    on a busy machine a container could finish before the Job controller saw it run. A sleep
    therefore also waits for `quiet` (the controllers having processed what is queued): the
    node moves on only once the control plane has caught up, as it would have in real time.
    """

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("time_scale must be positive")
        self.scale = scale
        self.quiet: Callable[[], Awaitable[None]] | None = None

    def seconds(self, simulated: float) -> float:
        return simulated * self.scale

    async def sleep(self, simulated: float) -> None:
        await self.sleep_real(simulated * self.scale)

    async def sleep_real(self, seconds: float) -> None:
        """Sleep real (unscaled) seconds, then until the controllers are quiet."""
        await asyncio.sleep(seconds)
        if self.quiet is not None:
            await self.quiet()
