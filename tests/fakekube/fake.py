"""FakeKube: the fake API server, its controllers and a test-facing inspection API in one."""

from __future__ import annotations

import asyncio
import pathlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import yaml
from aiohttp import web
from kubernetes.aio import client

from .audit import AuditEntry
from .clock import Clock
from .controller import JobController
from .events import EventRecorder
from .faults import Faults
from .gc import GarbageCollector
from .kinds import kind_named
from .kubelet import Kubelet
from .metrics import RESOLUTION_SECONDS, PodMetricsServer
from .registry import Registry
from .selectors import FieldSelector, parse_label_selector
from .server import Backend, create_app
from .storage import Store
from .watching import Watches

JSON = dict[str, Any]
TOKEN = "fake-token"
SHUTDOWN_SECONDS = 1.0


class FakeKube:
    """A kube-apiserver with a Job controller, a garbage collector and one node, on 127.0.0.1.

    `time_scale` multiplies simulated durations (container sleeps, back-offs, deadlines, TTLs);
    `pending_seconds` is how long a pod stays ContainerCreating (not scaled); `history_size` is
    how many events per kind a watch can resume from.
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        pending_seconds: float = 0.05,
        history_size: int = 1000,
        bookmark_seconds: float = 1.0,
        events: bool = True,
        metrics: bool = True,
    ) -> None:
        self.clock = Clock(time_scale)
        self.store = Store(history_size)
        # The metrics API: `served`, `resolution_seconds` (real) and `usage` may be changed.
        self.metrics = PodMetricsServer(
            self.store, self.clock.seconds(RESOLUTION_SECONDS), served=metrics
        )
        self.registry = Registry(self.store)
        self.watches = Watches(self.store, bookmark_seconds)
        self.faults = Faults(on_down=lambda: self.watches.drop_all(abrupt=True))
        self.audit: list[AuditEntry] = []
        self._pending_seconds = pending_seconds
        self._events = events
        self._gc: GarbageCollector | None = None
        self._controller: JobController | None = None
        self._kubelet: Kubelet | None = None
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("FakeKube is not started")
        return self._url

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        recorder = EventRecorder(self.registry, enabled=self._events)
        self._gc = GarbageCollector(self.registry)
        self._controller = JobController(self.registry, self.clock, recorder)
        self._kubelet = Kubelet(self.registry, self.clock, recorder, self._pending_seconds)
        backend = Backend(
            self.registry,
            self.watches,
            self._kubelet,
            self.faults,
            self.audit.append,
            self.metrics,
        )
        self._runner = web.AppRunner(
            create_app(backend), access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self._url = f"http://{host}:{bound[1]}"
        self.clock.quiet = self._controllers_quiet
        self._gc.start()
        self._controller.start()
        self._kubelet.start()

    async def stop(self) -> None:
        self.faults.stop()
        await self.drop_watches()
        for part in (self._kubelet, self._controller, self._gc):
            if part is not None:
                await part.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._url = None
        self.clock.quiet = None

    async def _controllers_quiet(self) -> None:
        for part in (self._controller, self._gc):
            if part is not None:
                await part.wait_idle()

    async def __aenter__(self) -> FakeKube:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # connecting clients

    def write_kubeconfig(self, path: pathlib.Path, namespace: str = "default") -> pathlib.Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
            "preferences": {},
        }
        path = pathlib.Path(path)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def configuration(self) -> client.Configuration:
        configuration = client.Configuration(host=self.url)
        configuration.api_key = {"BearerToken": f"Bearer {TOKEN}"}
        return configuration

    # inspecting and seeding, without HTTP

    def get(self, kind: str, namespace: str, name: str) -> JSON | None:
        record = self.store.get(kind_named(kind), namespace, name)
        return record.copy() if record else None

    def list(
        self, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[JSON]:
        """Objects of a kind in a namespace (None: all), in name order, with kind and
        apiVersion (unlike the items of an HTTP list)."""
        page = self.registry.list(
            kind_named(kind), namespace, parse_label_selector(label_selector), FieldSelector()
        )
        return [record.copy() for record in page.records]

    def put(self, obj: JSON) -> JSON:
        return self.registry.put(obj).copy()

    def clear_audit(self) -> None:
        self.audit.clear()

    def expire_history(self) -> None:
        self.store.expire_history()

    async def drop_watches(self, *, abrupt: bool = True) -> None:
        self.watches.drop_all(abrupt=abrupt)
        async with asyncio.timeout(SHUTDOWN_SECONDS * 5):
            await self.watches.wait_closed()

    @property
    def open_watches(self) -> int:
        return len(self.watches)

    async def settle(self, timeout: float = 10) -> None:
        """Wait until the garbage collector and the Job controller have nothing queued."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < 3:  # idle on a few consecutive turns: work can queue more work
            parts = (self._gc, self._controller)
            quiet = quiet + 1 if all(p is None or p.idle for p in parts) else 0
            if time.monotonic() > deadline:
                raise TimeoutError("FakeKube did not settle")
            await asyncio.sleep(0.001)

    async def wait_for(
        self,
        kind: str,
        namespace: str,
        name: str,
        predicate: Callable[[JSON | None], bool],
        timeout: float = 10,
    ) -> JSON | None:
        """Poll an object (None when absent) until `predicate` holds; the last state."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(kind, namespace, name)
            if predicate(current):
                return current
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind} {namespace}/{name} never matched; last: {current}")
            await asyncio.sleep(0.01)
