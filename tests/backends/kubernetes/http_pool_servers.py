"""Small servers on loopback for the tests of the API calls' connection pool: an HTTP server that
answers byte for byte as its test says and counts what it sees, and a forward proxy's CONNECT."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import cast

import httptools
from yarl import URL


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    connection: int  # 1 on the server's first connection, 2 on its second, ...
    number: int  # 1 for the first request on its connection, ...


class Peer:
    """The server's end of one connection, for an answerer to write to or close."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def close(self) -> None:
        self._transport.close()


Answerer = Callable[[Request, Peer], Awaitable[None]]


def answer(status: int = 200, body: bytes = b"", headers: Mapping[str, str] | None = None) -> bytes:
    """An HTTP/1.1 answer with a Content-Length."""
    lines = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def answering_ok(request: Request, peer: Peer) -> None:
    peer.write(answer(200, b"ok"))


class _LoopbackServer:
    """A server on 127.0.0.1 whose connections and tasks end with it."""

    scheme = "http"

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> URL:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return URL.build(scheme=self.scheme, host="127.0.0.1", port=port)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for transport in list(self._transports):
            transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


class HttpServer(_LoopbackServer):
    """HTTP/1.1 on 127.0.0.1 (TLS with `ssl_context`): each request, once whole, goes to
    `answerer`, which writes what it likes."""

    def __init__(
        self, answerer: Answerer = answering_ok, ssl_context: ssl.SSLContext | None = None
    ):
        super().__init__()
        self._answerer = answerer
        self._ssl = ssl_context
        if ssl_context is not None:
            self.scheme = "https"
        self.requests: list[Request] = []
        self.connections = 0
        self.closed_connections = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def __aenter__(self) -> HttpServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerConnection(self), "127.0.0.1", 0, ssl=self._ssl
        )
        return self

    def _connected(self, transport: asyncio.Transport) -> int:
        self._transports.add(transport)
        self.connections += 1
        return self.connections

    def _disconnected(self, transport: asyncio.Transport) -> None:
        self._transports.discard(transport)
        self.closed_connections += 1

    def _received(self, request: Request, peer: Peer) -> None:
        self.requests.append(request)
        task = asyncio.get_running_loop().create_task(self._answer(request, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: Request, peer: Peer) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self._answerer(request, peer)
        finally:
            self.in_flight -= 1


class _ServerConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._number = 0
        self._connection = 0
        self._target = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._connection = self._server._connected(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        assert self._transport is not None
        self._server._disconnected(self._transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_message_begin(self) -> None:
        self._target, self._headers, self._body = b"", {}, []

    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._transport is not None
        self._number += 1
        request = Request(
            method=self._parser.get_method().decode(),
            target=self._target.decode(),
            headers=self._headers,
            body=b"".join(self._body),
            connection=self._connection,
            number=self._number,
        )
        self._server._received(request, Peer(self._transport))


class ConnectProxy(_LoopbackServer):
    """A forward proxy on 127.0.0.1 that takes CONNECT only: it records each request and then
    answers `status`; on 200 it passes the bytes both ways between the client and the target."""

    def __init__(self, status: int = 200) -> None:
        super().__init__()
        self._status = status
        self.requests: list[Request] = []

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(cast("asyncio.Task[None]", task))
        self._transports.add(writer.transport)
        try:
            await self._tunnel(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._transports.discard(writer.transport)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        first, *lines = head.split("\r\n")
        method, target, _ = first.split(" ")
        headers = {}
        for line in filter(None, lines):
            name, value = line.split(":", 1)
            headers[name.lower()] = value.strip()
        self.requests.append(Request(method, target, headers, b"", len(self.requests) + 1, 1))
        if self._status != 200:
            writer.write(
                f"HTTP/1.1 {self._status} No\r\nProxy-Authenticate: Basic\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
            return
        host, port = target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        self._transports.add(upstream_writer.transport)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()
            self._transports.discard(upstream_writer.transport)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
