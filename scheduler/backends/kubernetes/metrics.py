"""Sampling what this scheduler's running pods use, from the metrics API (`metrics.k8s.io`, the
metrics-server's): one list of their PodMetrics every `interval_seconds` while any runs.

The metrics API gives usage now only: memory as the container's working set, CPU as a rate (cores)
averaged over the `window` before the sample's `timestamp`. The peak is the highest working set
sampled; the CPU seconds are the rates times the time each sample stands for (its window for the
first, the time since the one before for the others): an estimate. Figures are held in memory;
an attempt's record keeps them once it is kept (`keeping.py`). Where the cluster does not serve
the metrics API (or the scheduler may not read it), nothing is sampled and usage is unavailable;
whether it is served now is asked again every `retry_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from scheduler.backends.base import Identity, PodRecord, Usage
from scheduler.backends.kubernetes.client import KubeApi
from scheduler.backends.kubernetes.manifests import (
    CONTAINER_NAME_FALLBACK,
    POD_JOB_NAME_LABEL,
    label_selector,
)
from scheduler.backends.kubernetes.records import parse_time
from scheduler.errors import BackendUnavailableError, NotFoundError, SchedulerError
from scheduler.loops import cancelled
from scheduler.models.usage import quantity

log = logging.getLogger(__name__)

# The metrics-server resolves usage to 15 s by default: a sample more often is the same one.
DEFAULT_INTERVAL_SECONDS = 15.0
# Whether the cluster has come to serve the metrics API (metrics-server installed, access given).
RETRY_SECONDS = 600.0
# PodMetrics taken in between two turns of the event loop: 10,000 running pods are some 100 ms of
# work, which no request should wait behind.
SLICE_ITEMS = 250
# Attempts whose figures are held, the oldest forgotten first (a record keeps them once kept).
MAX_HELD_ATTEMPTS = 10_000
NOT_SERVED = "the cluster does not serve the metrics API (metrics.k8s.io): no metrics-server"
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration_seconds(text: Any) -> float | None:
    """A Go duration as the metrics API writes a window ("15.007s", "1m0.5s"); None if not one."""
    if not isinstance(text, str) or not text:
        return None
    return _parsed_duration(text)


# The pods of one sample mostly share their window (the metrics server's resolution).
@lru_cache(maxsize=256)
def _parsed_duration(text: str) -> float | None:
    parts = _DURATION_PART.findall(text)
    if "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


@dataclass(frozen=True, slots=True)
class Sample:
    """One PodMetrics: when, over how long, and the pod's usage then."""

    pod: str
    job: str
    timestamp: datetime
    window_seconds: float
    cores: float
    memory_bytes: int


def sample_of(item: dict[str, Any], container: str) -> Sample | None:
    """A PodMetrics as a sample of the pod's `container` (of all its containers when none has
    that name); None when it says too little to be one."""
    metadata = item.get("metadata") or {}
    timestamp = parse_time(item.get("timestamp"))
    window = duration_seconds(item.get("window"))
    containers = [c for c in item.get("containers") or () if isinstance(c, dict)]
    if not metadata.get("name") or timestamp is None or window is None or not containers:
        return None
    ours = [c for c in containers if c.get("name") == container] or containers
    cores = memory = 0.0
    for usage in (c.get("usage") or {} for c in ours):
        cpu, working_set = (
            quantity(str(usage.get("cpu", ""))),
            quantity(str(usage.get("memory", ""))),
        )
        if cpu is None or working_set is None:
            return None
        cores, memory = cores + cpu, memory + working_set
    labels = metadata.get("labels") or {}
    return Sample(
        pod=str(metadata["name"]),
        job=str(labels.get(POD_JOB_NAME_LABEL, "")),
        timestamp=timestamp,
        window_seconds=window,
        cores=cores,
        memory_bytes=int(memory),
    )


@dataclass(slots=True)
class Figures:
    """What the samples of one attempt add up to."""

    job: str
    peak_bytes: int = 0
    cpu_seconds: float = 0.0
    samples: int = 0
    last: datetime | None = None

    def add(self, sample: Sample) -> None:
        if self.last is not None and sample.timestamp <= self.last:
            return  # the same sample again: the metrics server has none newer yet
        # The rate stands for the time since the sample before; the first one's for its window.
        seconds = (
            (sample.timestamp - self.last).total_seconds()
            if self.last is not None
            else sample.window_seconds
        )
        self.cpu_seconds += sample.cores * seconds
        self.peak_bytes = max(self.peak_bytes, sample.memory_bytes)
        self.samples += 1
        self.last = sample.timestamp

    def usage(self) -> Usage:
        return Usage(self.peak_bytes, self.cpu_seconds, self.samples, estimated=True)


class UsageSampler:
    """Samples the pods the backend's watch says run; `usage(pod)` gives their figures."""

    def __init__(
        self,
        api: KubeApi,
        identity: Identity,
        *,
        interval_seconds: float | None = None,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._api = api
        self._selector = label_selector(identity)
        self._container = identity.component or CONTAINER_NAME_FALLBACK
        self.interval_seconds = interval_seconds or DEFAULT_INTERVAL_SECONDS
        self._retry_seconds = retry_seconds
        self._asked = False  # whether the metrics API was asked at all
        self._running: dict[str, str] = {}  # pod -> job, of the pods whose container runs
        self._figures: dict[str, Figures] = {}  # by pod, the least recently sampled first
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Why no figures can be had: the metrics API is not served, or did not answer.
        self.unavailable: str | None = None

    @property
    def source(self) -> str:
        return (
            f"the metrics API (metrics.k8s.io), sampled every {self.interval_seconds:g} s while "
            "its pod runs"
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sampling(), name="usage-sampling")

    async def close(self) -> None:
        await cancelled(self._task)
        self._task = None

    # -- what the watch sees ----------------------------------------------------------------

    def pod_seen(self, pod: PodRecord, *, deleted: bool) -> None:
        if not deleted and pod.container.state == "running" and pod.job_name:
            if not self._running:
                self._wake.set()
            self._running[pod.name] = pod.job_name
        else:
            self._running.pop(pod.name, None)

    def pods_listed(self, pods: Iterable[PodRecord]) -> None:
        """A fresh list: the pods that run now (those deleted unseen meanwhile are not)."""
        self._running = {}
        for pod in pods:
            self.pod_seen(pod, deleted=False)

    def job_gone(self, job: str) -> None:
        """A deleted job's attempts: nobody asks for their figures any more."""
        for pod in [pod for pod, figures in self._figures.items() if figures.job == job]:
            del self._figures[pod]

    def usage(self, pod: str) -> Usage | None:
        figures = self._figures.get(pod)
        return figures.usage() if figures is not None and figures.samples else None

    def job_usage(self, job: str) -> dict[str, Usage]:
        """The figures of the job's attempts, by pod."""
        return {pod: f.usage() for pod, f in self._figures.items() if f.job == job and f.samples}

    async def discover(self) -> None:
        """Ask the metrics API once, if it never was: whether it is served is then known."""
        if not self._asked:
            await self._sample()

    # -- sampling ----------------------------------------------------------------------------

    async def _sampling(self) -> None:
        while True:
            if not self._running:
                self._wake.clear()
                await self._wake.wait()
            # A pod just started has no figures yet: the metrics server samples it first.
            await asyncio.sleep(self.interval_seconds)
            if self._running:
                await asyncio.sleep(await self._sample())

    async def _sample(self) -> float:
        """One list of the running pods' metrics, taken in; how long to wait beyond the
        interval before the next (long when the metrics API is not served)."""
        self._asked = True
        try:
            listed = await self._api.pod_metrics(self._selector)
        except NotFoundError:
            self._refused(NOT_SERVED)
            return self._retry_seconds
        except BackendUnavailableError as exc:
            # Maybe the metrics server is restarting: try again at the next interval.
            self.unavailable = f"the metrics API did not answer: {exc.message}"
            return 0.0
        except SchedulerError as exc:
            # Forbidden, most likely: the Role lacks metrics.k8s.io pods (list).
            self._refused(f"the metrics API (metrics.k8s.io) cannot be read: {exc.message}")
            return self._retry_seconds
        self.unavailable = None
        for number, item in enumerate(listed.get("items") or (), start=1):
            sample = sample_of(item, self._container) if isinstance(item, dict) else None
            if sample is not None:
                self._take(sample)
            if number % SLICE_ITEMS == 0:
                await asyncio.sleep(0)
        return 0.0

    def _refused(self, why: str) -> None:
        if self.unavailable != why:
            log.warning("what jobs use cannot be measured: %s", why)
        self.unavailable = why

    def _take(self, sample: Sample) -> None:
        figures = self._figures.pop(sample.pod, None)
        if figures is None:
            figures = Figures(sample.job or self._running.get(sample.pod, ""))
        figures.add(sample)
        self._figures[sample.pod] = figures
        while len(self._figures) > MAX_HELD_ATTEMPTS:
            del self._figures[next(iter(self._figures))]
