"""The list+watch loop: lists, watches from the listed version, reconnects with back-off, and
relists when the API server no longer has the history (410 Gone). It never gives up."""

from __future__ import annotations

import logging
from collections.abc import Callable

from scheduler.backends.base import Backend, Kind
from scheduler.backoff import Backoff
from scheduler.domain.view import JobView
from scheduler.errors import ResourceExpiredError, SchedulerError
from scheduler.health import Health
from scheduler.loops import forever

log = logging.getLogger(__name__)

OnRestart = Callable[[Kind, str], None]


async def watching(
    backend: Backend,
    view: JobView,
    *,
    kind: Kind,
    health: Health,
    on_restart: OnRestart = lambda kind, why: None,
) -> None:
    watch = _Watch(backend, view, kind=kind, health=health, on_restart=on_restart)
    await forever(f"the {kind.value} watch", watch.step, log=log, backoff=watch.backoff)


class _Watch:
    """One kind's watch: where it is (the version to watch from; None: list first)."""

    def __init__(
        self, backend: Backend, view: JobView, *, kind: Kind, health: Health, on_restart: OnRestart
    ) -> None:
        self._backend, self._view, self._kind = backend, view, kind
        self._health, self._on_restart = health, on_restart
        self._version: str | None = None
        self.backoff = Backoff()

    async def step(self) -> None:
        """List when there is no version, then watch until the server ends the stream (its
        timeout); a failure is marked in the health and raised for the loop's back-off."""
        kind = self._kind
        try:
            await self._list_and_watch()
        except ResourceExpiredError:
            log.info("the %s watch history expired; relisting", kind.value)
            self._version = None
            self._on_restart(kind, "expired")
        except SchedulerError as exc:
            self._failed(exc.message)
            raise
        except (ValueError, KeyError, TypeError) as exc:
            # A malformed answer: start over from a fresh list rather than trust a broken stream.
            self._version = None
            self._failed(f"malformed answer from the API server: {exc!r}")
            raise

    async def _list_and_watch(self) -> None:
        kind, view, health = self._kind, self._view, self._health
        if self._version is None:
            records, self._version = await self._backend.list_records(kind)
            view.replace(kind, records)
            health.watch_ok(kind)
            log.info("listed %d %s", len(records), kind.value)
        async for event in self._backend.watch_records(kind, self._version):
            if event.type not in ("OPENED", "BOOKMARK"):
                view.apply(event)
            self._version = event.resource_version or self._version
            if kind in health.problems:
                health.watch_ok(kind)
            self.backoff.reset()

    def _failed(self, problem: str) -> None:
        self._health.watch_failed(self._kind, problem)
        self._on_restart(self._kind, "error")
