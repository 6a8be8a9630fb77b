"""The list+watch loop: lists, watches from the listed version, reconnects with back-off, and
relists when the API server no longer has the history (410 Gone). It never gives up."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from scheduler.backends.base import Backend, Kind
from scheduler.backoff import Backoff
from scheduler.domain.view import JobView
from scheduler.errors import ResourceExpiredError, SchedulerError
from scheduler.health import Health

log = logging.getLogger(__name__)


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
