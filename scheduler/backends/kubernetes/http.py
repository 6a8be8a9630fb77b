"""Calls to the Kubernetes API server: a pool of keep-alive HTTP/1.1 connections whose answers
httptools (llhttp, the parser of Node.js) reads.

aiohttp's client spent about 170 µs of CPU on each call, this pool about 35 (64 calls in flight
against a server that answers at once). Creating a job takes five calls, so on a burst that
difference was the largest share of the scheduler's own CPU per job. The pool does what the calls
need and no more: one request at a time on a connection, the whole answer in memory, TLS, an HTTP
proxy (a CONNECT tunnel toward an https API server), and one more try of an idempotent call whose
reused connection the server had closed. Watches and log streams, few and long, stay on aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections import deque
from collections.abc import Mapping
from typing import NamedTuple, cast

import httptools
from yarl import URL

# Calls a server may be asked twice (aiohttp tries these again too). No HEAD: its answer's
# Content-Length is not followed by a body, and the parser would wait for one.
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE"})
METHODS = IDEMPOTENT_METHODS | {"POST", "PATCH"}
# A connection idle this long is closed rather than reused (aiohttp's keep-alive time): a load
# balancer or NAT in between may have forgotten it without a word, and a call on it would hang.
IDLE_SECONDS = 15.0


class HttpError(Exception):
    """No answer: the connection could not be made, broke, timed out, or carried what is not
    HTTP."""


class Answer(NamedTuple):
    status: int
    body: bytes


class _Unanswered(HttpError):
    """The connection closed before any byte of the answer arrived."""


class _Connection(asyncio.Protocol):
    """One connection: a request written, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[Answer] | None = None
        self._body: list[bytes] = []
        self._heard = False  # a byte of the current answer arrived
        self._headers_done = False
        self._framed = False  # its length is known (Content-Length, chunks), not "until closed"
        self._tunnel: asyncio.Future[int] | None = None
        self.lost = False
        self.keep_alive = True
        self.reused = False
        self.idle_since = 0.0

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"the API server's answer is not HTTP: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        why = f": {exc!r}" if exc is not None else ""
        if self._answer is not None and self._headers_done and not self._framed and exc is None:
            # An answer without a length ends when the server closes (HTTP/1.1, 3.3.3).
            self._complete(keep_alive=False)
        elif self._heard:
            self._fail(HttpError(f"the connection closed in the middle of an answer{why}"))
        else:
            self._fail(_Unanswered(f"the connection closed before an answer{why}"))

    # -- httptools callbacks --

    def on_message_begin(self) -> None:
        self._headers_done = self._framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (
            name == b"transfer-encoding" and value.strip().lower().endswith(b"chunked")
        ):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        if self._tunnel is not None and not self._tunnel.done():
            # A proxy's answer to CONNECT: what follows it is the tunnel's, not HTTP.
            self._tunnel.set_result(self._parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._tunnel is not None:
            return
        if self._parser.get_status_code() < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._body = []
            self._headers_done = False
            return
        self._complete(keep_alive=self._parser.should_keep_alive())

    def _complete(self, *, keep_alive: bool) -> None:
        answer = Answer(self._parser.get_status_code(), b"".join(self._body))
        self._body = []
        self.keep_alive = keep_alive
        future, self._answer = self._answer, None
        if future is None:
            self.keep_alive = False  # an answer nobody asked for: the connection is not sane
        elif not future.done():
            future.set_result(answer)

    # -- the pool's side --

    @property
    def usable(self) -> bool:
        """It can carry another request."""
        return self.keep_alive and not self.lost

    def exchange(self, request: bytes) -> asyncio.Future[Answer]:
        """Write `request`; its answer, once whole."""
        assert self._transport is not None and self._answer is None
        self._answer = asyncio.get_running_loop().create_future()
        self._heard = False
        if self.lost:
            self._fail(_Unanswered("the connection closed before the request"))
        else:
            self._transport.write(request)
        return self._answer

    async def open_tunnel(self, request: bytes) -> int:
        """Write a proxy's CONNECT `request`; the status of its answer."""
        assert self._transport is not None
        self._tunnel = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        try:
            return await self._tunnel
        finally:
            self._tunnel = None
            self._parser = httptools.HttpResponseParser(self)

    def tunnelled(self, transport: asyncio.Transport) -> None:
        """From now on the connection speaks through `transport`, TLS inside the tunnel."""
        self._transport = transport

    def close(self) -> None:
        self.keep_alive = False
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: HttpError) -> None:
        for future in (self._answer, self._tunnel):
            if future is not None and not future.done():
                future.set_exception(exc)
        self._answer = None


class HttpPool:
    """At most `size` calls in flight toward one server, each on a kept-alive connection; the
    rest wait their turn in order. A call not answered within `seconds` (its wait for a turn
    included) fails."""

    def __init__(
        self,
        server: URL,
        *,
        size: int,
        seconds: float,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None = None,
        proxy: URL | None = None,
        proxy_headers: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if server.scheme not in ("http", "https") or not server.host:
            raise ValueError(f"not an http or https server: {server}")
        if proxy is not None and (proxy.scheme != "http" or not proxy.host):
            raise ValueError(f"only an http:// proxy is supported, not {proxy}")
        self._host = server.host
        self._port = server.port or (443 if server.scheme == "https" else 80)
        self._ssl = ssl_context if server.scheme == "https" else None
        if server.scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        self._server_hostname = server_hostname
        self._authority = server.host_port_subcomponent or self._host
        self._proxy = proxy
        # Toward an http server through a proxy, each request names the whole URL.
        self._origin = f"http://{self._authority}" if proxy and not self._ssl else ""
        self._slots = asyncio.Semaphore(size)
        self._seconds = seconds
        self._idle: deque[_Connection] = deque()
        self._closed = False
        fixed = {"Host": self._authority, **(headers or {})}
        self._proxy_headers = dict(proxy_headers or {})
        if proxy is not None and proxy.user is not None:
            credentials = f"{proxy.user}:{proxy.password or ''}"  # yarl decodes them
            self._proxy_headers["Proxy-Authorization"] = (
                "Basic " + base64.b64encode(credentials.encode()).decode()
            )
        if proxy is not None and not self._ssl:
            fixed |= self._proxy_headers
        self._fixed = _header_lines(fixed)

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One call: `target` is the path and query, quoted. The answer whatever its status;
        HttpError when there is none."""
        if method not in METHODS:
            raise ValueError(f"not a method this pool makes calls with: {method}")
        if (
            not target.startswith("/")
            or not target.isascii()
            or not target.isprintable()
            or " " in target
        ):
            raise ValueError(f"not a quoted path and query: {target!r}")
        head = f"{method} {self._origin}{target} HTTP/1.1\r\n".encode("ascii") + self._fixed
        if headers:
            head += _header_lines(headers)
        if body is not None:
            request = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        else:
            request = head + b"\r\n"
        try:
            async with asyncio.timeout(self._seconds), self._slots:
                return await self._exchange(method, request)
        except TimeoutError:
            raise HttpError(f"no answer within {self._seconds:g} s") from None

    async def _exchange(self, method: str, request: bytes) -> Answer:
        while True:
            connection = self._idle_connection() or await self._connect()
            try:
                answer = await connection.exchange(request)
            except _Unanswered:
                connection.close()
                # The server closed a kept-alive connection as it was reused: the request
                # never reached it, but only an idempotent one is sure to be safe twice.
                if connection.reused and method in IDEMPOTENT_METHODS:
                    continue
                raise
            except BaseException:
                connection.close()  # its answer may still come: it cannot carry another
                raise
            if connection.usable and not self._closed:
                connection.reused = True
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
            else:
                connection.close()
            return answer

    def _idle_connection(self) -> _Connection | None:
        """The connection last used, if one is still good; older ones past IDLE_SECONDS close."""
        oldest = time.monotonic() - IDLE_SECONDS
        while self._idle and (self._idle[0].idle_since < oldest or not self._idle[0].usable):
            self._idle.popleft().close()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            if self._proxy is None:
                _, connection = await loop.create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname if self._ssl else None,
                )
                return connection
            assert self._proxy.host is not None
            transport, connection = await loop.create_connection(
                _Connection, self._proxy.host, self._proxy.port or 80
            )
            if self._ssl is not None:
                await self._tunnel(loop, transport, connection)
            return connection
        except (OSError, ssl.SSLError) as exc:
            raise HttpError(f"cannot connect: {exc!r}") from exc

    async def _tunnel(
        self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, connection: _Connection
    ) -> None:
        """Through the proxy to the server: CONNECT, then TLS inside the tunnel."""
        try:
            status = await connection.open_tunnel(
                f"CONNECT {self._authority} HTTP/1.1\r\n".encode("ascii")
                + _header_lines({"Host": self._authority, **self._proxy_headers})
                + b"\r\n"
            )
            if status != 200:
                raise HttpError(f"the proxy answered {status} to CONNECT {self._authority}")
            secured = await loop.start_tls(
                transport,
                connection,
                self._ssl,  # type: ignore[arg-type]
                server_hostname=self._server_hostname or self._host,
            )
        except BaseException:
            connection.close()
            raise
        assert secured is not None
        connection.tunnelled(secured)

    async def close(self) -> None:
        """Close the idle connections now, the busy ones once their call is answered."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def _header_lines(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"header {name!r} has a line break or a colon in its name")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")
