"""A TCP proxy between the scheduler and the API server that can cut every open connection (as
the API server's restart or a proxy's timeout does) and refuse new ones for a while (an outage).
It passes TLS through untouched, so it works in front of a real cluster as of the fake."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import yaml
from yarl import URL

_CHUNK_BYTES = 64 * 1024


class CuttingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.refusing = False
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        """Close every open connection, both ways, mid-stream."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def down(self) -> None:
        self.refusing = True
        self.cut()

    def up(self) -> None:
        self.refusing = False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            for end in (writer, upstream_writer):
                self._writers.discard(end)
                end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while chunk := await reader.read(_CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.transport.abort()


def proxied_kubeconfig(kubeconfig: Path, proxy: CuttingProxy, into: Path) -> Path:
    """A copy of the kubeconfig whose current cluster is reached through the proxy (TLS still
    checks the server's own name)."""
    config: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    cluster = _current_cluster(config)
    server = URL(cluster["server"])
    if server.scheme == "https" and "tls-server-name" not in cluster:
        cluster["tls-server-name"] = server.host
    cluster["server"] = str(server.with_host("127.0.0.1").with_port(proxy.port))
    into.write_text(yaml.safe_dump(config))
    return into


def target_of(kubeconfig: Path) -> tuple[str, int]:
    """The host and port of the kubeconfig's current cluster."""
    server = URL(_current_cluster(yaml.safe_load(kubeconfig.read_text()))["server"])
    assert server.host is not None and server.port is not None
    return server.host, server.port


def _current_cluster(config: dict[str, Any]) -> dict[str, Any]:
    contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
    current = config.get("current-context")
    wanted = contexts[current]["cluster"] if current else None
    for entry in config.get("clusters", []):
        if wanted is None or entry["name"] == wanted:
            cluster: dict[str, Any] = entry["cluster"]
            return cluster
    raise AssertionError("the kubeconfig names no current cluster")
