"""The metrics API a metrics-server adds (`metrics.k8s.io/v1beta1`): PodMetrics of the pods whose
container runs, and a switch (`served`) to be a cluster without one (404, left out of discovery).

Like metrics-server it samples on a fixed resolution: a PodMetrics' `timestamp` is the last sample
time (to the second, as metav1.Time is written), its `window` the time that sample's rate covers
(the resolution, or less for a container that started within it, written as Go writes a
duration), and a pod is there once one sample has seen its container run. CPU is a rate in
nanocores ("12345678n"), memory the working set in KiB ("102400Ki"). What a container uses comes
from `usage(pod, seconds_running)`: cores and bytes, by default a quiet container's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import errors as e
from .clock import rfc3339
from .kinds import POD
from .selectors import LabelSelector
from .storage import Event, Store

JSON = dict[str, Any]

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
# metrics-server's default resolution, in simulated seconds (scaled like container sleeps).
RESOLUTION_SECONDS = 15.0
QUIET_CORES = 0.001
QUIET_BYTES = 2 * 1024 * 1024

UsageOf = Callable[[JSON, float], "tuple[float, int] | None"]


def quiet(pod: JSON, seconds_running: float) -> tuple[float, int]:
    """A container that sleeps: a millicore and 2 MiB."""
    return QUIET_CORES, QUIET_BYTES


def go_duration(seconds: float) -> str:
    """As Go's time.Duration prints: "750ms", "15.007s", "1m0.5s"."""
    if seconds < 1:
        return f"{_trimmed(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    if not minutes:
        return f"{_trimmed(rest)}s"
    return f"{int(minutes)}m{_trimmed(rest)}s"


def _trimmed(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def resources() -> list[JSON]:
    """The group's resources, as its discovery lists them."""
    return [
        {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics",
         "verbs": ["get", "list"]},
        {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics",
         "verbs": ["get", "list"]},
    ]  # fmt: skip


@dataclass(eq=False)
class PodMetricsServer:
    """The metrics API over the fake's pods; `served`, `resolution_seconds` (real) and `usage`
    may be changed while it runs."""

    store: Store
    resolution_seconds: float
    served: bool = True
    usage: UsageOf = quiet

    def __post_init__(self) -> None:
        self._started: dict[str, float] = {}  # by pod uid: when its container started running
        self.store.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        record = event.record
        if record.kind is not POD:
            return
        if event.type == "DELETED" or not _running(record.obj):
            self._started.pop(record.uid, None)
        else:
            self._started.setdefault(record.uid, time.time())

    def _sampled_at(self) -> float:
        step = self.resolution_seconds
        return math.floor(time.time() / step) * step

    def pod_metrics(self, pod: JSON) -> JSON | None:
        """The pod's PodMetrics now; None while no sample has seen its container run."""
        metadata = pod["metadata"]
        started = self._started.get(metadata.get("uid", ""))
        sampled = self._sampled_at()
        if started is None or sampled <= started:
            return None
        used = self.usage(pod, sampled - started)
        if used is None:
            return None
        cores, memory = used
        first = pod["spec"]["containers"][0]["name"]
        return {
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "creationTimestamp": rfc3339(),
                "labels": dict(metadata.get("labels") or {}),
            },
            "timestamp": rfc3339(sampled),
            "window": go_duration(min(self.resolution_seconds, sampled - started)),
            "containers": [
                {
                    "name": first,
                    "usage": {"cpu": f"{round(cores * 1e9)}n", "memory": f"{memory // 1024}Ki"},
                }
            ],
        }

    def list(self, namespace: str | None, labels: LabelSelector) -> JSON:
        self.check_served()
        items = []
        for record in sorted(self.store.records(POD, namespace), key=lambda r: r.key):
            if labels.matches(record.metadata.get("labels")):
                found = self.pod_metrics(record.obj)
                if found is not None:
                    items.append(found)
        return {
            "kind": "PodMetricsList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": items,
        }

    def get(self, namespace: str, name: str) -> JSON:
        self.check_served()
        record = self.store.get(POD, namespace, name)
        found = self.pod_metrics(record.obj) if record is not None else None
        if found is None:
            details = {"name": name, "group": GROUP, "kind": "pods"}
            raise e.ApiError(404, "NotFound", f'podmetrics.{GROUP} "{name}" not found', details)
        return {"kind": "PodMetrics", "apiVersion": GROUP_VERSION, **found}

    def check_served(self) -> None:
        if not self.served:
            raise e.not_found_path()


METRICS = web.AppKey("metrics", PodMetricsServer)


def _running(pod: JSON) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and "running" in (statuses[0].get("state") or {})
