"""The recovery loop: every few seconds, let the backend settle creations a crash left half-made
(it acts only on those past their grace time, so a live creation is never disturbed)."""

from __future__ import annotations

import asyncio
import logging

from scheduler.backends.base import Backend
from scheduler.errors import SchedulerError

log = logging.getLogger(__name__)

MAX_SWEEP_INTERVAL_SECONDS = 10.0


def sweep_interval(grace_seconds: float) -> float:
    """Often enough that a half-made creation is settled within about a minute of the crash."""
    return min(MAX_SWEEP_INTERVAL_SECONDS, max(grace_seconds / 3, 0.05))


async def recovering(backend: Backend, interval_seconds: float) -> None:
    while True:
        try:
            settled = await backend.recover()
            if settled:
                log.info("settled %d half-made creations", settled)
        except SchedulerError as exc:
            log.warning("the recovery sweep failed; it runs again shortly: %s", exc.message)
        except Exception:
            # A bug or an odd object must not end the sweep for good: half-made creations
            # would then never be settled.
            log.exception("the recovery sweep failed unexpectedly; it runs again shortly")
        await asyncio.sleep(interval_seconds)
