"""The in-memory view of this scheduler's jobs and batches, fed by the watch; it answers every GET.

Each job's wire status is derived once per change and kept, with its JSON made at the first read
after the change, so a GET of the whole list is a join of cached bytes and makes no request to the
API server. A batch is the set of jobs that carry its name. Jobs whose creation is not committed
are nobody's yet and stay out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import operator
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

from scheduler.backends.base import JobRecord, Kind, PodRecord, Record, WatchEvent
from scheduler.domain.status import derive_status
from scheduler.errors import NotFoundError, NotReadyError
from scheduler.models import JobStatus, JobStatusEnum

# A job deleted through this scheduler stays hidden while late watch events for it drain.
TOMBSTONE_SECONDS = 600.0

StatusListener = Callable[[str, JobStatus | None, JobStatus | None], None]


class JobView:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._jobs: dict[str, JobRecord] = {}
        self._pods: dict[str, PodRecord] = {}
        # A job has a pod or a few (its attempts): a list is a quarter of a set's size.
        self._pods_of: dict[str, list[str]] = {}
        self._status: dict[str, JobStatus] = {}
        self._json: dict[str, bytes] = {}
        self._list_json: bytes | None = None
        self._tombstones: dict[str, float] = {}
        self._listeners: list[StatusListener] = []
        self._batches: dict[str, set[str]] = {}
        self.synced: set[Kind] = set()
        self._synced_event = asyncio.Event()

    # -- reading ---------------------------------------------------------------------------

    @property
    def is_synced(self) -> bool:
        return self.synced >= {Kind.JOB, Kind.POD}

    async def wait_synced(self) -> None:
        await self._synced_event.wait()

    def job(self, name: str) -> JobRecord | None:
        return self._jobs.get(name)

    def pods(self, name: str) -> list[PodRecord]:
        """The pods of job `name` the view holds (its attempts), in no particular order."""
        return [self._pods[pod] for pod in self._pods_of.get(name, ())]

    def status(self, name: str) -> JobStatus | None:
        return self._status.get(name)

    def require_synced(self) -> None:
        """NotReadyError until the first list of jobs and pods: an answer now could be wrong."""
        if not self.is_synced:
            raise NotReadyError("the scheduler has not finished reading its jobs from the cluster")

    def require_status(self, name: str) -> JobStatus:
        """A job's status (single or of a batch, by its full name); NotFoundError when there is
        no such job, NotReadyError while the view cannot know yet."""
        status = self._status.get(name)
        if status is None:
            self.require_synced()
            raise NotFoundError(f"job {name} not found")
        return status

    def status_json(self, name: str) -> bytes | None:
        found = self._json.get(name)
        if found is None and name in self._status:
            found = self._json[name] = self._status[name].model_dump_json(by_alias=True).encode()
        return found

    def statuses(self) -> list[JobStatus]:
        """Every job's status, batch jobs included, oldest first."""
        return [self._status[name] for name in self._ordered(self._jobs)]

    def single_statuses(self) -> list[JobStatus]:
        return [self._status[name] for name in self._single_names()]

    def list_json(self) -> bytes:
        """The single jobs (not those of batches), oldest first, as a JSON array."""
        if self._list_json is None:
            jobs = (self.status_json(n) or b"" for n in self._single_names())
            self._list_json = b"[" + b",".join(jobs) + b"]"
        return self._list_json

    def batch_names(self) -> list[str]:
        """Batches, oldest first (by their oldest job, then name)."""
        firsts = {
            batch: min(self._created_key(n) for n in names)
            for batch, names in self._batches.items()
        }
        return sorted(firsts, key=lambda batch: (firsts[batch], batch))

    def batch_statuses(self, batch: str) -> list[JobStatus] | None:
        """The statuses of a batch's jobs, oldest first; None when there is no such batch."""
        names = self._batches.get(batch)
        if names is None:
            return None
        # In the order of the batch request, as the client sent them.
        in_order = sorted(names, key=lambda n: (self._jobs[n].batch_index or 0, n))
        return [self._status[name] for name in in_order]

    def counts(self) -> Counter[JobStatusEnum]:
        return Counter(status.status for status in self._status.values())

    def _created_key(self, name: str) -> tuple[bool, datetime | None, str]:
        created = self._jobs[name].created
        return (created is None, created, name)

    def _ordered(self, names: Iterable[str]) -> list[str]:
        return sorted(names, key=self._created_key)

    def _single_names(self) -> list[str]:
        return self._ordered(n for n, job in self._jobs.items() if job.batch_name is None)

    # -- listening -------------------------------------------------------------------------

    def subscribe(self, listener: StatusListener) -> None:
        """`listener(name, old, new)` after each status change; None means absent."""
        self._listeners.append(listener)

    # -- writing ---------------------------------------------------------------------------

    def upsert_job(self, record: JobRecord) -> None:
        known = self._jobs.get(record.name)
        if known is not None and _older(record.resource_version, known.resource_version):
            # A late watch event, or a create's or stop's answer, that the view has already
            # overtaken (a job's pending version comes before its committed one).
            return
        if record.pending:
            # Not committed (or un-committed by a replaced object): nobody's job yet.
            self._remove_job(record.name)
            return
        if self._is_buried(record.name):
            return
        self._jobs[record.name] = record
        if known is not None and _same_but_version(known, record):
            return
        if record.batch_name is not None:
            self._batches.setdefault(record.batch_name, set()).add(record.name)
        self._refresh(record.name)

    def forget_job(self, name: str) -> None:
        """The job was deleted through us: drop it now and ignore stale events about it."""
        self._tombstones[name] = self._clock()
        self._remove_job(name)

    def forget_batch(self, batch: str) -> None:
        for name in list(self._batches.get(batch, ())):
            self.forget_job(name)

    def apply(self, event: WatchEvent) -> None:
        record = event.record
        if record is None:
            return
        if isinstance(record, JobRecord):
            if event.type == "DELETED":
                self._tombstones.pop(record.name, None)
                self._remove_job(record.name)
            else:
                self.upsert_job(record)
        elif event.type == "DELETED":
            self._remove_pod(record.name)
        else:
            self._put_pod(record)

    def replace(self, kind: Kind, records: Iterable[Record]) -> None:
        """A fresh list from the backend: make the view match it exactly."""
        if kind is Kind.JOB:
            fresh = {r.name: r for r in records if isinstance(r, JobRecord)}
            for name in set(self._jobs) - set(fresh):
                self._remove_job(name)
            for name, record in fresh.items():
                if self._jobs.get(name) != record:
                    self.upsert_job(record)
        else:
            pods = {r.name: r for r in records if isinstance(r, PodRecord)}
            for name in set(self._pods) - set(pods):
                self._remove_pod(name)
            for name, pod in pods.items():
                if self._pods.get(name) != pod:
                    self._put_pod(pod)
        self.synced.add(kind)
        if self.is_synced:
            self._synced_event.set()
        self._expire_tombstones()

    # -- internals -------------------------------------------------------------------------

    def _is_buried(self, name: str) -> bool:
        buried_at = self._tombstones.get(name)
        return buried_at is not None and self._clock() - buried_at < TOMBSTONE_SECONDS

    def _expire_tombstones(self) -> None:
        now = self._clock()
        for name, buried_at in list(self._tombstones.items()):
            if now - buried_at >= TOMBSTONE_SECONDS:
                del self._tombstones[name]

    def _remove_job(self, name: str) -> None:
        record = self._jobs.pop(name, None)
        if record is None:
            return
        if record.batch_name is not None:
            siblings = self._batches.get(record.batch_name)
            if siblings is not None:
                siblings.discard(name)
                if not siblings:
                    del self._batches[record.batch_name]
        old = self._status.pop(name, None)
        self._json.pop(name, None)
        self._list_json = None
        self._notify(name, old, None)

    def _put_pod(self, pod: PodRecord) -> None:
        previous = self._pods.get(pod.name)
        if previous is not None and previous.job_name != pod.job_name:
            self._remove_pod(pod.name)
        self._pods[pod.name] = pod
        if previous is not None and _same_but_version(previous, pod):
            return
        siblings = self._pods_of.setdefault(pod.job_name, [])
        if pod.name not in siblings:
            siblings.append(pod.name)
        if pod.job_name in self._jobs:
            self._refresh(pod.job_name)

    def _remove_pod(self, name: str) -> None:
        pod = self._pods.pop(name, None)
        if pod is None:
            return
        siblings = self._pods_of.get(pod.job_name)
        if siblings is not None and name in siblings:
            siblings.remove(name)
            if not siblings:
                del self._pods_of[pod.job_name]
        if pod.job_name in self._jobs:
            self._refresh(pod.job_name)

    def _refresh(self, name: str) -> None:
        pods = (self._pods[p] for p in self._pods_of.get(name, ()))
        new = derive_status(self._jobs[name], pods)
        old = self._status.get(name)
        if new == old:
            return
        self._status[name] = new
        # Its JSON is made when it is read: a job that starts changes several times in a second.
        self._json.pop(name, None)
        self._list_json = None
        self._notify(name, old, new)

    def _notify(self, name: str, old: JobStatus | None, new: JobStatus | None) -> None:
        for listener in self._listeners:
            listener(name, old, new)


def _beside_version(kind: type[Record]) -> Callable[[Record], tuple[Any, ...]]:
    """All of a record's fields but its version, read at once (in C)."""
    names = [f.name for f in dataclasses.fields(kind) if f.name != "resource_version"]
    return cast(Callable[[Record], tuple[Any, ...]], operator.attrgetter(*names))


_BESIDE_VERSION = {kind: _beside_version(kind) for kind in (JobRecord, PodRecord)}


def _same_but_version(known: Record, new: Record) -> bool:
    """Most watch events change nothing a status shows (a pod scheduled, a status write that
    only moves counters the records do not keep): they need no new status."""
    kind = type(known)
    if kind is not type(new):
        return False
    fields = _BESIDE_VERSION[kind]
    return fields(known) == fields(new)


def _older(version: str, than: str) -> bool:
    """Versions of one object only grow; both backends number them (Kubernetes' are etcd
    revisions). One that is not a number cannot be compared: it is taken as news."""
    if version.isdigit() and than.isdigit():
        return int(version) < int(than)
    return False
