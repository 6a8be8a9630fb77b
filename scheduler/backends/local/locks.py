"""One control request (stop, restart, delete) at a time per job: each reads the job's row and
writes it after awaits, so two at once would act on what the other has already changed (two
restarts would run the job twice)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class JobLocks:
    def __init__(self) -> None:
        # Only the jobs someone holds or waits for: a lock is dropped with its last user.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def holding(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name, (asyncio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)
