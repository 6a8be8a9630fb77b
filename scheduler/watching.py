"""The list+watch loop: lists, watches from the listed version, reconnects with back-off, and
relists when the API server no longer has the history (410 Gone). It never gives up."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from scheduler.backends.base import Backend, Kind
from scheduler.errors import ResourceExpiredError, SchedulerError
from scheduler.health import Health
from scheduler.store import JobView

log = logging.getLogger(__name__)

INITIAL_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 30.0


class Backoff:
    """Exponential back-off with full jitter, reset after a success."""

    def __init__(
        self,
        initial: float = INITIAL_BACKOFF_SECONDS,
        maximum: float = MAX_BACKOFF_SECONDS,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._initial, self._maximum, self._rng = initial, maximum, rng
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._maximum, self._initial * 2**self._attempt)
        self._attempt += 1
        return float(ceiling / 2 + ceiling / 2 * self._rng())


async def watching(
    backend: Backend,
    view: JobView,
    kind: Kind,
    health: Health,
    on_restart: Callable[[Kind, str], None] = lambda kind, why: None,
) -> None:
    backoff = Backoff()
    version: str | None = None
    while True:
        try:
            if version is None:
                records, version = await backend.list_records(kind)
                view.replace(kind, records)
                health.watch_ok(kind)
                log.info("listed %d %s", len(records), kind.value)
            async for event in backend.watch_records(kind, version):
                if event.type not in ("OPENED", "BOOKMARK"):
                    view.apply(event)
                version = event.resource_version or version
                if kind in health.problems:
                    health.watch_ok(kind)
                backoff.reset()
            # The server ended the stream (its timeout): watch again from where we are.
        except ResourceExpiredError:
            log.info("the %s watch history expired; relisting", kind.value)
            version = None
            on_restart(kind, "expired")
        except SchedulerError as exc:
            delay = backoff.next_delay()
            health.watch_failed(kind, exc.message)
            on_restart(kind, "error")
            log.warning(
                "the %s watch failed; retrying in %.1fs: %s", kind.value, delay, exc.message
            )
            await asyncio.sleep(delay)
        except (ValueError, KeyError, TypeError) as exc:
            # A malformed answer: start over from a fresh list rather than trust a broken stream.
            delay = backoff.next_delay()
            health.watch_failed(kind, f"malformed answer from the API server: {exc!r}")
            on_restart(kind, "error")
            log.exception("the %s watch got a malformed answer; relisting", kind.value)
            version = None
            await asyncio.sleep(delay)
