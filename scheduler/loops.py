"""The background loops' one shape: run a step again and again until the task is cancelled, and
let no failure end the loop for good (a watch, a sweep or a timer that died would leave the
scheduler up but blind), as kopf's background tasks do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from scheduler.backoff import Backoff
from scheduler.errors import SchedulerError


class Stop(Exception):
    """Raised by a step whose loop has nothing left to do: the loop ends, quietly."""


async def forever(
    name: str,
    step: Callable[[], Awaitable[object]],
    *,
    log: logging.Logger,
    interval_seconds: float = 0.0,
    backoff: Backoff | None = None,
) -> None:
    """Await `step()`, then rest `interval_seconds`, and again, until cancelled or `Stop`.

    A failed step is logged under `name` (a `SchedulerError` as a warning with its message,
    anything else with its traceback) and the loop rests for the back-off's next delay, or the
    interval when it has none; a step that succeeds resets the back-off.
    """
    while True:
        try:
            await step()
        except Stop:
            return
        except SchedulerError as exc:
            delay = _after_failure(backoff, interval_seconds)
            log.warning("%s failed; again in %.1fs: %s", name, delay, exc.message)
        except Exception:
            delay = _after_failure(backoff, interval_seconds)
            log.exception("%s failed unexpectedly; again in %.1fs", name, delay)
        else:
            delay = interval_seconds
            if backoff is not None:
                backoff.reset()
        await asyncio.sleep(delay)


def _after_failure(backoff: Backoff | None, interval_seconds: float) -> float:
    return interval_seconds if backoff is None else backoff.next_delay()


async def cancelled(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel these background tasks and wait until each has ended (None: never started)."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set (True) or `seconds` have passed (False). Unlike `wait_for` on
    Python 3.11, a cancellation that comes as the event is set is never lost (a lost one would
    leave the loop it stops running for good)."""
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    except TimeoutError:
        return False
    return True
