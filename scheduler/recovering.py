"""The recovery loop: every few seconds, let the backend settle creations a crash left half-made
(it acts only on those past their grace time, so a live creation is never disturbed)."""

from __future__ import annotations

import logging

from scheduler.backends.base import Backend
from scheduler.loops import forever

log = logging.getLogger(__name__)

MAX_SWEEP_INTERVAL_SECONDS = 10.0


def sweep_interval(grace_seconds: float) -> float:
    """Often enough that a half-made creation is settled within about a minute of the crash."""
    return min(MAX_SWEEP_INTERVAL_SECONDS, max(grace_seconds / 3, 0.05))


async def recovering(backend: Backend, interval_seconds: float) -> None:
    async def sweeping() -> None:
        settled = await backend.recover()
        if settled:
            log.info("settled %d half-made creations", settled)

    await forever("the recovery sweep", sweeping, log=log, interval_seconds=interval_seconds)
