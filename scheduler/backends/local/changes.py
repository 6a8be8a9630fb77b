"""The local backend's list and watch: its jobs as Job and Pod records as they are now, and a
bounded in-memory history of their changes, numbered, that watchers follow from a version, as
they follow a Kubernetes watch (410 when it is too old)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from scheduler.backends.base import JobRecord, Kind, PodRecord, Record, WatchEvent, WatchEventType
from scheduler.backends.local.records import job_record, pod_record
from scheduler.backends.local.schema import Attempt, StoredJob
from scheduler.backends.local.store import LocalStore
from scheduler.errors import ResourceExpiredError

HISTORY_EVENTS = 10_000

R = TypeVar("R", JobRecord, PodRecord)


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

    def append(self, kind_of_event: WatchEventType, record: Record) -> None:
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


class Listing:
    """The stored jobs as records: each job's Job record and a Pod record per attempt, kept up to
    date from the store, every change appended to the watch history."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._changes = Changes()
        self._jobs: dict[str, JobRecord] = {}
        self._pods: dict[str, PodRecord] = {}

    async def load(self) -> None:
        """Every stored job's records, as a scheduler starts: no one watches yet."""
        for job in await self._store.jobs():
            await self.refresh(job.name, announce=False)

    async def refresh(self, name: str, *, announce: bool = True) -> JobRecord | None:
        """Read the job again and take what changed of its Job and Pod records; None when it is
        gone."""
        job = await self._store.get(name)
        if job is None:
            return None
        return self.put(job, await self._store.attempts(name), announce=announce)

    def put(
        self, job: StoredJob, attempts: Sequence[Attempt] = (), *, announce: bool = True
    ) -> JobRecord:
        """The job's records from its row and `attempts`; with `announce`, each record that
        changed goes to the watch history."""
        record = job_record(job, list(attempts))
        self._take(self._jobs, job.name, record, announce=announce)
        for attempt in attempts:
            pod = pod_record(job, attempt)
            self._take(self._pods, pod.name, pod, announce=announce)
        return record

    def _take(self, records: dict[str, R], name: str, record: R, *, announce: bool) -> None:
        previous = records.get(name)
        records[name] = record
        if announce and previous != record:
            self._changes.append("ADDED" if previous is None else "MODIFIED", record)

    def drop(self, name: str) -> None:
        """The job's records are gone: watchers see its pods deleted, then the job."""
        for pod_name in [p for p, pod in self._pods.items() if pod.job_name == name]:
            self._changes.append("DELETED", self._pods.pop(pod_name))
        if (record := self._jobs.pop(name, None)) is not None:
            self._changes.append("DELETED", record)

    def records(self, kind: Kind) -> tuple[list[Record], str]:
        """The records of `kind` and the version to watch them from."""
        records: list[Record] = list(
            self._jobs.values() if kind is Kind.JOB else self._pods.values()
        )
        return records, str(self._changes.version)

    def watch(self, kind: Kind, since: str) -> AsyncIterator[WatchEvent]:
        return self._changes.follow(kind, since)

    def batch_jobs(self, batch: str) -> list[str]:
        return [name for name, record in self._jobs.items() if record.batch_name == batch]

    def attempt_ended(self, pod: str) -> bool:
        record = self._pods.get(pod)  # gone with its job
        return record is None or record.container.state == "terminated"
