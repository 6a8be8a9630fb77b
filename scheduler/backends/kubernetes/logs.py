"""An attempt's log on Kubernetes: its pod's container log through the API server (the Role's
`pods/log` get), with the API's refusals said in the scheduler's words.

A followed log outlives its stream: the API server ends or breaks a log stream at its own restart,
at the kubelet's or a proxy's timeout, or in an outage. The follower then opens it again from the
time of the last line it passed on (the kubelet times every line) and leaves out what it already
passed on, so the client sees every line once, until the container ends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

from scheduler.backends.base import Identity
from scheduler.backends.kubernetes.client import KubeApi
from scheduler.backends.kubernetes.manifests import CONTAINER_NAME_FALLBACK
from scheduler.backoff import Backoff
from scheduler.clock import now_rfc3339_micro
from scheduler.errors import BackendUnavailableError, ConflictError, InvalidError, NotFoundError

log = logging.getLogger(__name__)

# How long a followed log keeps trying to open its stream again after it broke.
RESUME_GIVE_UP_SECONDS = 300.0
_NANOS_PER_SECOND = 1_000_000_000


async def reading(
    api: KubeApi,
    identity: Identity,
    job: str,
    pod: str,
    *,
    follow: bool,
    tail: int | None,
    timestamps: bool,
) -> AsyncGenerator[bytes, None]:
    # The job's one container is named as in its manifest.
    container = identity.component or CONTAINER_NAME_FALLBACK
    # A followed log is read with the kubelet's times, which say where to resume.
    chunks = api.pod_log(
        pod, container, follow=follow, tail_lines=tail, timestamps=timestamps or follow
    )
    try:
        opened = await anext(chunks)
    except NotFoundError as exc:
        raise NotFoundError(
            f"the log of pod {pod} of job {job} is gone with its pod: Kubernetes deletes the "
            "pods of stopped, restarted and deleted jobs"
        ) from exc
    except InvalidError as exc:
        # The API server answers 400 while the container is waiting to start.
        raise ConflictError(f"the log of pod {pod} of job {job} cannot be read yet: {exc}") from exc
    try:
        yield opened
        if not follow:
            async for chunk in chunks:
                yield chunk
            return
        # With a tail, what came before the stream opened is not wanted when it opens again.
        cursor = Cursor(keep_times=timestamps, since=None if tail is None else now_rfc3339_micro())
        while True:
            try:
                async for chunk in chunks:
                    if lines := cursor.feed(chunk):
                        yield lines
                broken = False
            except BackendUnavailableError as exc:
                log.info("the log stream of pod %s broke (%s); resuming it", pod, exc)
                broken = True
            await chunks.aclose()
            # An ended stream that brought nothing new: the container has ended.
            if not broken and cursor.resumed and not cursor.news:
                if last := cursor.rest():
                    yield last
                return
            reopened = await _reopen(api, pod, container=container, cursor=cursor)
            if reopened is None:
                return
            chunks = reopened
    finally:
        await chunks.aclose()


async def _reopen(
    api: KubeApi, pod: str, *, container: str, cursor: Cursor
) -> AsyncGenerator[bytes, None] | None:
    """The log again from the cursor's time, once the API server answers; None when the pod is
    gone (its log with it) or the container cannot be read any more."""
    backoff = Backoff()
    give_up = time.monotonic() + RESUME_GIVE_UP_SECONDS
    while True:
        chunks = api.pod_log(
            pod,
            container,
            follow=True,
            tail_lines=None,
            timestamps=True,
            since_time=cursor.since,
        )
        try:
            await anext(chunks)
        except (NotFoundError, InvalidError):
            await chunks.aclose()
            return None
        except BackendUnavailableError:
            await chunks.aclose()
            if time.monotonic() >= give_up:
                raise
            await asyncio.sleep(backoff.next_delay())
            continue
        cursor.resume()
        return chunks


class Cursor:
    """Where a followed log is: the kubelet's time of the last whole line passed on, and how many
    lines of that very time were passed on (lines can share a time). It splits the stream into
    lines and passes on each line once, across streams opened again from that time."""

    def __init__(self, keep_times: bool, since: str | None = None) -> None:
        self._keep_times = keep_times
        self.since = since  # the time as the kubelet wrote it
        self._nanos: int | None = None
        self._passed_at_time = 0  # lines passed on with that time, in all streams
        self._seen_at_time = 0  # of them, in this stream
        self._partial = b""
        self.resumed = False  # this stream was opened again from `since`
        self.news = False  # this stream passed on a line

    def resume(self) -> None:
        self._partial = b""  # an unfinished line comes again, whole, in the new stream
        self._seen_at_time = 0
        self.resumed = True
        self.news = False

    def feed(self, chunk: bytes) -> bytes:
        """The whole lines the chunk completes that were not passed on before."""
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        return b"".join(self._pass(line) for line in lines)

    def rest(self) -> bytes:
        """A last line with no newline, once its stream has ended."""
        partial, self._partial = self._partial, b""
        return self._pass(partial, newline=b"") if partial else b""

    def _pass(self, line: bytes, newline: bytes = b"\n") -> bytes:
        stamp, _, text = line.partition(b" ")
        nanos = _nanos(stamp)
        if nanos is not None:
            if self._nanos is not None and nanos < self._nanos:
                return b""  # from before the time we resumed at (a server that rounds it)
            if nanos == self._nanos:
                self._seen_at_time += 1
                if self._seen_at_time <= self._passed_at_time:
                    return b""  # passed on from the stream before
                self._passed_at_time += 1
            else:
                self._nanos, self.since = nanos, stamp.decode()
                self._passed_at_time = self._seen_at_time = 1
        self.news = True
        return (line if self._keep_times or nanos is None else text) + newline


def _nanos(stamp: bytes) -> int | None:
    """Nanoseconds since the epoch of the kubelet's RFC3339Nano time; None when it is not one."""
    text = stamp.decode("ascii", "replace")
    if len(text) < 20 or not text.endswith("Z"):
        return None
    whole, _, fraction = text[:-1].partition(".")
    try:
        moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    if not fraction.isdigit() and fraction:
        return None
    return int(moment.timestamp()) * _NANOS_PER_SECOND + int((fraction or "0").ljust(9, "0")[:9])
