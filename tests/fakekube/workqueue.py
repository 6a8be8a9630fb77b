"""Controllers' plumbing, after client-go's work queue: a key is queued once however often it is
added, keys are processed one at a time, and a key whose processing hits an API error (say, a
conflict with a concurrent write) is retried shortly after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from .errors import ApiError
from .storage import Event, Key, Store

log = logging.getLogger(__name__)

RETRY_SECONDS = 0.05


class WorkQueue:
    def __init__(self, name: str, process: Callable[[Key], None]) -> None:
        self.name = name
        self._process = process
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """Nothing queued or being processed (delayed keys do not count)."""
        return not self._queued and not self._busy

    async def wait_idle(self) -> None:
        """Until nothing is queued or being processed (delayed keys do not count)."""
        await self._idle.wait()

    def add(self, key: Key) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)
            self._idle.clear()

    def add_after(self, key: Key, delay: float) -> None:
        """Add `key` after `delay` seconds, or earlier if it is already planned earlier."""
        loop = asyncio.get_running_loop()
        planned = self._timers.get(key)
        if planned is not None and planned.when() <= loop.time() + delay:
            return
        if planned is not None:
            planned.cancel()

        def fire() -> None:
            del self._timers[key]
            self.add(key)

        self._timers[key] = loop.call_later(max(delay, 0.0), fire)

    def forget(self, key: Key) -> None:
        """Drop a planned addition of `key`."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._busy = True
            try:
                self._process(key)
            except ApiError as exc:
                log.debug("%s: %s deferred: %s", self.name, key, exc.message)
                self.add_after(key, RETRY_SECONDS)
            except Exception:  # a bug in the fake: say so, and keep the controller alive
                log.exception("%s failed on %s", self.name, key)
            finally:
                self._busy = False
                if not self._queued:
                    self._idle.set()
            await asyncio.sleep(0)  # let the API server answer between keys


class Controller:
    """The shape of the fake's controllers: a store listener that only queues keys, and a
    worker that processes them one at a time."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.queue = WorkQueue(name, self.process)
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def idle(self) -> bool:
        return self.queue.idle

    async def wait_idle(self) -> None:
        await self.queue.wait_idle()

    def start(self) -> None:
        self._unsubscribe = self.store.add_listener(self.on_event)
        self.queue.start()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.queue.stop()

    def on_event(self, event: Event) -> None:
        raise NotImplementedError

    def process(self, key: Key) -> None:
        raise NotImplementedError
