"""Watch streams: newline-delimited JSON events over a chunked HTTP response, with
kube-apiserver's semantics for resourceVersion, bookmarks, timeouts and too-old versions."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

from .errors import expired
from .kinds import Kind
from .selectors import FieldSelector, LabelSelector
from .storage import Event, Record, Store, TooOld

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True, slots=True)
class WatchRequest:
    kind: Kind
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: int | None  # None or 0: start with the current objects
    bookmarks: bool
    timeout_seconds: float | None
    send_initial_events: bool = False

    def covers(self, event: Event) -> bool:
        """The event is of this watch's kind and namespace (its selectors are `_filtered`'s)."""
        record = event.record
        return record.kind is self.kind and self.namespace in (None, record.namespace)


class _Stream:
    """One open watch: events queued by the store's listener, None meaning "drop now"."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.abrupt = True


class Watches:
    """The open watch streams, so tests can cut them."""

    def __init__(self, store: Store, bookmark_seconds: float) -> None:
        self.store = store
        self.bookmark_seconds = bookmark_seconds
        self._streams: set[_Stream] = set()
        self._none_open = asyncio.Event()
        self._none_open.set()

    def __len__(self) -> int:
        return len(self._streams)

    def drop_all(self, *, abrupt: bool = True) -> None:
        """Cut every stream: abruptly (the connection closes mid-stream, as when a load balancer
        or the API server dies) or cleanly (the stream ends as after timeoutSeconds)."""
        for stream in self._streams:
            stream.abrupt = abrupt
            stream.queue.put_nowait(None)

    async def wait_closed(self) -> None:
        await self._none_open.wait()

    async def serve(self, request: web.Request, watch: WatchRequest) -> web.StreamResponse:
        stream = _Stream(request)
        # Replay and subscription happen in one synchronous step, so no event falls between.
        try:
            backlog = self._backlog(watch)
        except TooOld as exc:
            return await self._expired(request, exc)
        unsubscribe = self.store.add_listener(
            lambda event: stream.queue.put_nowait(event) if watch.covers(event) else None
        )
        self._streams.add(stream)
        self._none_open.clear()
        try:
            return await self._stream(stream, watch, backlog)
        finally:
            unsubscribe()
            self._streams.discard(stream)
            if not self._streams:
                self._none_open.set()

    def _backlog(self, watch: WatchRequest) -> list[bytes]:
        version = watch.resource_version
        if version is None or version == 0 or watch.send_initial_events:
            records = self.store.records(watch.kind, watch.namespace)
            lines = [
                _line("ADDED", record)
                for record in records
                if watch.labels.matches(record.metadata.get("labels"))
                and watch.fields.matches(record.obj)
            ]
            if watch.send_initial_events:
                lines.append(self._bookmark(watch.kind, initial_events_end=True))
            return lines
        events = self.store.events_since(watch.kind, version)
        return [
            line
            for event in events
            if watch.covers(event) and (line := _filtered(event, watch)) is not None
        ]

    async def _expired(self, request: web.Request, exc: TooOld) -> web.StreamResponse:
        # The real server answers 200 and reports the expiry as an ERROR event in the stream.
        response = _stream_response()
        await response.prepare(request)
        status = expired(str(exc)).status()
        await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
        await response.write_eof()
        return response

    async def _stream(
        self, stream: _Stream, watch: WatchRequest, backlog: Iterable[bytes]
    ) -> web.StreamResponse:
        response = _stream_response()
        await response.prepare(stream.request)
        with contextlib.suppress(ConnectionResetError):  # the client went away
            await self._send(stream, watch, backlog, response)
        return response

    async def _send(
        self,
        stream: _Stream,
        watch: WatchRequest,
        backlog: Iterable[bytes],
        response: web.StreamResponse,
    ) -> None:
        for line in backlog:
            await response.write(line)
        loop = asyncio.get_running_loop()
        deadline = None if watch.timeout_seconds is None else loop.time() + watch.timeout_seconds
        while True:
            wait = self.bookmark_seconds if watch.bookmarks else None
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    return  # the handler's return ends the chunked body cleanly
                wait = left if wait is None else min(wait, left)
            try:
                event = await asyncio.wait_for(stream.queue.get(), wait)
            except TimeoutError:
                if watch.bookmarks and (deadline is None or loop.time() < deadline):
                    # Quiet for a while: tell the client how far it is up to date.
                    await response.write(self._bookmark(watch.kind))
                continue
            if event is None:
                if stream.abrupt and stream.request.transport is not None:
                    stream.request.transport.close()
                return
            filtered = _filtered(event, watch)
            if filtered is not None:
                await response.write(filtered)

    def _bookmark(self, kind: Kind, *, initial_events_end: bool = False) -> bytes:
        metadata: dict[str, object] = {"resourceVersion": str(self.store.resource_version)}
        if initial_events_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": kind.name, "apiVersion": kind.api_version, "metadata": metadata}
        return json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"


def _stream_response() -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    return response


def _line(event_type: str, record: Record) -> bytes:
    return b'{"type":"' + event_type.encode() + b'","object":' + record.full_json() + b"}\n"


def _matches(record: Record | None, watch: WatchRequest) -> bool:
    return (
        record is not None
        and watch.labels.matches(record.metadata.get("labels"))
        and watch.fields.matches(record.obj)
    )


def _filtered(event: Event, watch: WatchRequest) -> bytes | None:
    """The line a filtered watch sends: an object entering the selection is ADDED for it,
    one leaving it is DELETED, as kube-apiserver's watch cache does."""
    now = _matches(event.record, watch)
    if event.type == "MODIFIED":
        before = _matches(event.previous, watch)
        if before and now:
            return _line("MODIFIED", event.record)
        if before:
            return _line("DELETED", event.record)
        return _line("ADDED", event.record) if now else None
    if event.type == "DELETED":
        return _line("DELETED", event.record) if _matches(event.previous, watch) else None
    return _line(event.type, event.record) if now else None
