"""The local backend's watch: a bounded in-memory history of record changes, numbered, that
watchers follow from a version, as they follow a Kubernetes watch (410 when it is too old)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass

from scheduler.backends.base import EventType, JobRecord, Kind, Record, WatchEvent
from scheduler.errors import ResourceExpiredError

HISTORY_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class _Change:
    version: int
    kind: Kind
    event: WatchEvent


class Changes:
    def __init__(self, history: int = HISTORY_EVENTS) -> None:
        self._history = history
        self._changes: list[_Change] = []
        self._version = 0
        self._changed = asyncio.Condition()

    @property
    def version(self) -> int:
        return self._version

    def _newer_than(self, position: int) -> bool:
        return self._version > position

    def publish(self, kind_of_event: EventType, record: Record) -> None:
        self._version += 1
        kind = Kind.JOB if isinstance(record, JobRecord) else Kind.POD
        event = WatchEvent(kind_of_event, str(self._version), record)
        self._changes.append(_Change(self._version, kind, event))
        if len(self._changes) > 2 * self._history:
            del self._changes[: -self._history]
        asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def follow(self, kind: Kind, since: str) -> AsyncIterator[WatchEvent]:
        """Changes of `kind` after version `since`; ResourceExpiredError when they are gone."""
        position = int(since or 0)
        oldest = self._changes[0].version if self._changes else self._version + 1
        if position < oldest - 1:
            raise ResourceExpiredError(f"version {position} is too old (oldest kept: {oldest})")
        yield WatchEvent("OPENED", str(position), None)
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._newer_than, position))
            first = self._changes[0].version if self._changes else self._version + 1
            if position < first - 1:
                raise ResourceExpiredError(f"version {position} fell out of the history")
            for change in self._changes[position - first + 1 :]:
                position = change.version
                if change.kind is kind:
                    yield change.event
