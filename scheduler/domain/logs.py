"""Reading a job's log: find the job and the attempt asked for, wait for it to start when told to
follow, and follow the job's later attempts until the job ends. It knows the view and the Backend
port, not HTTP. It follows a bounded number of logs at once."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from scheduler.backends.base import Backend, OpenLog
from scheduler.domain.batches import BatchService
from scheduler.domain.view import JobView
from scheduler.errors import BusyError, ConflictError, NotFoundError
from scheduler.models import JobStatus, JobStatusEnum, PodStatus, ReplicaStatusEnum

_ENDED = frozenset(
    {
        JobStatusEnum.SUCCEEDED,
        JobStatusEnum.FAILED,
        JobStatusEnum.STOPPED,
        JobStatusEnum.COMPLETED,
    }
)
_TERMINATED = frozenset({ReplicaStatusEnum.SUCCEEDED, ReplicaStatusEnum.FAILED})
# Logs followed at once: each holds a connection and a stream from the backend (a thread
# polling a file locally, an API-server stream on Kubernetes) for as long as its job runs.
DEFAULT_MAX_FOLLOWERS = 100
BUSY_RETRY_AFTER_SECONDS = 10


@dataclass(frozen=True, slots=True)
class LogOptions:
    follow: bool = False
    tail: int | None = None  # the last N lines only
    attempt: int | None = None  # the attempt's podIndex; None: the latest
    timestamps: bool = False


Resolve = Callable[[], JobStatus]


def _started(pod: PodStatus) -> bool:
    return pod.container_started is not None or pod.replica_status.status in _TERMINATED


def _ended(status: JobStatus) -> bool:
    return status.status in _ENDED


class LogReader:
    def __init__(
        self,
        backend: Backend,
        view: JobView,
        batches: BatchService,
        *,
        max_followers: int = DEFAULT_MAX_FOLLOWERS,
    ) -> None:
        self.max_followers = max_followers
        self.following = 0  # the reads with `follow`, from their open until they close
        self._backend = backend
        self._view = view
        self._batches = batches
        self._waiters: dict[str, set[asyncio.Event]] = {}
        view.subscribe(self._changed)

    async def job_log(self, name: str, options: LogOptions) -> OpenLog:
        """The log of a job (single or of a batch, by its full name), open: errors come here,
        not from the chunks (except a stream that breaks off)."""
        return await self._open(functools.partial(self._view.require_status, name), options)

    async def batch_job_log(self, batch: str, job: str, options: LogOptions) -> OpenLog:
        """The log of a batch's job, by its full name or the short one after the batch's."""
        return await self._open(functools.partial(self._batches.job, batch, job), options)

    @property
    def waiting(self) -> int:
        """How many reads wait for a job to change (to start, or to start its next attempt)."""
        return sum(len(waiting) for waiting in self._waiters.values())

    async def _open(self, resolve: Resolve, options: LogOptions) -> OpenLog:
        if options.follow:
            if self.following >= self.max_followers:
                raise BusyError(
                    f"{self.max_followers} logs are followed, as many as the scheduler follows "
                    f"at once; retry in {BUSY_RETRY_AFTER_SECONDS} s, or read without follow",
                    BUSY_RETRY_AFTER_SECONDS,
                )
            self.following += 1
        try:
            status, pod = await self._first_attempt(resolve, options)
            opened = await self._read(status.name, pod, options=options, tail=options.tail)
        except BaseException:
            if options.follow:
                self.following -= 1
            raise
        streaming = self._streaming(
            resolve, options, job=status.name, index=pod.pod_index, chunks=opened.chunks
        )
        # It owns the open log (and the follower's place) from here on, and gives them up.
        await anext(streaming)
        return dataclasses.replace(opened, chunks=streaming)

    async def _first_attempt(
        self, resolve: Resolve, options: LogOptions
    ) -> tuple[JobStatus, PodStatus]:
        while True:
            status = resolve()
            pods = status.pod_statuses or []
            if options.attempt is not None and pods and options.attempt >= len(pods):
                raise NotFoundError(
                    f"job {status.name} has no attempt {options.attempt}: its attempts are "
                    f"0 to {len(pods) - 1}"
                )
            pod = pods[-1 if options.attempt is None else options.attempt] if pods else None
            if pod is not None and _started(pod):
                return status, pod
            if pod is None and _ended(status) and status.started is not None:
                # It ran, and its attempts went (Kubernetes deletes a stopped job's pods).
                raise NotFoundError(f"job {status.name} has no attempt left: their pods are gone")
            if not options.follow or _ended(status):
                raise ConflictError(_not_started(status, pod))
            await self._change_of(status.name)

    async def _streaming(
        self,
        resolve: Resolve,
        options: LogOptions,
        *,
        job: str,
        index: int,
        chunks: AsyncGenerator[bytes, None],
    ) -> AsyncGenerator[bytes, None]:
        try:
            yield b""
            while True:
                async for chunk in chunks:
                    if chunk:
                        yield chunk
                await chunks.aclose()
                if not options.follow or options.attempt is not None:
                    return
                # Following the job, not one attempt: a failed attempt may be retried.
                later = await self._later_attempt(resolve, index)
                if later is None:
                    return
                index = later.pod_index
                chunks = (await self._read(job, later, options=options, tail=None)).chunks
        finally:
            if options.follow:
                self.following -= 1
            await chunks.aclose()

    async def _later_attempt(self, resolve: Resolve, index: int) -> PodStatus | None:
        """The next attempt after `index` once it has started; None when the job ends first."""
        while True:
            try:
                status = resolve()
            except NotFoundError:
                return None  # deleted while we read
            later = [p for p in status.pod_statuses or [] if p.pod_index > index and _started(p)]
            if later:
                return later[0]
            if _ended(status):
                return None
            await self._change_of(status.name)

    async def _read(
        self, job: str, pod: PodStatus, *, options: LogOptions, tail: int | None
    ) -> OpenLog:
        return await self._backend.open_log(
            job, pod.name, follow=options.follow, tail=tail, timestamps=options.timestamps
        )

    async def _change_of(self, name: str) -> None:
        """Until the job's status changes (or it goes)."""
        changed = asyncio.Event()
        waiting = self._waiters.setdefault(name, set())
        waiting.add(changed)
        try:
            await changed.wait()
        finally:
            waiting.discard(changed)
            if not waiting and self._waiters.get(name) is waiting:
                del self._waiters[name]

    def _changed(self, name: str, old: JobStatus | None, new: JobStatus | None) -> None:
        for changed in self._waiters.get(name, ()):
            changed.set()


def _not_started(status: JobStatus, pod: PodStatus | None) -> str:
    if pod is not None and pod.pod_index > 0:
        return (
            f"attempt {pod.pod_index} of job {status.name} has not started yet "
            f"(attempt={pod.pod_index - 1} is the one before)"
        )
    if _ended(status):
        return f"job {status.name} ended ({status.status}) with no attempt started"
    return f"job {status.name} has no attempt started yet"
