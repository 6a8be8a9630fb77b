"""The dispatch queue: jobs wait in submission order until one of `max_parallel` slots is free;
the oldest waiting job then starts, and its supervision holds the slot until the job ends."""

from __future__ import annotations

import asyncio
import contextlib
import functools

from scheduler.backends.local.store import LocalStore
from scheduler.backends.local.supervising import Supervisor


class DispatchQueue:
    def __init__(self, store: LocalStore, supervisor: Supervisor, *, max_parallel: int) -> None:
        self._store = store
        self._supervisor = supervisor
        self._max_parallel = max_parallel
        self._running: dict[str, asyncio.Task[None]] = {}  # each slot's supervision
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatching(), name="local-dispatching")
        self.wake()

    def wake(self) -> None:
        """A job may be waiting, or a slot free: look again."""
        self._wake.set()

    async def finished(self, name: str) -> None:
        """Returns once the job's supervision (if it has one) is over."""
        if (running := self._running.get(name)) is not None:
            await asyncio.wait({running})

    async def cancel(self, name: str) -> None:
        """Ends the job's supervision where it is, freeing its slot."""
        running = self._running.get(name)
        if running is not None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running

    def stop_dispatching(self) -> None:
        """No job starts from now on; those running go on."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()

    async def drain(self) -> None:
        """Returns once the dispatcher and every supervision have ended."""
        if self._dispatcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _dispatching(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            free = self._max_parallel - len(self._running)
            if free <= 0:
                continue
            for job in await self._store.waiting(free + len(self._running)):
                if job.name in self._running or free <= 0:
                    continue
                free -= 1
                task = asyncio.create_task(
                    self._supervisor.supervise(job), name=f"running-{job.name}"
                )
                self._running[job.name] = task
                task.add_done_callback(functools.partial(self._released, job.name))

    def _released(self, name: str, _: asyncio.Task[None]) -> None:
        self._running.pop(name, None)
        self._supervisor.released(name)
        self.wake()
