"""What a job uses on Kubernetes, sampled from the metrics API (metrics.k8s.io): PodMetrics as
samples and their sum (pure), then the fake cluster's metrics API: sampled while pods run, kept
in the attempt's record, a cluster without it, one that comes to serve it, and one that falters."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from kubernetes.aio import client

from scheduler.backends.base import ContainerState, Identity, Usage
from scheduler.backends.kubernetes.attempts import kept_summary
from scheduler.backends.kubernetes.client import KubeApi
from scheduler.backends.kubernetes.manifests import ANNOTATION_ATTEMPT_PREFIX, identity_labels
from scheduler.backends.kubernetes.metrics import (
    NOT_SERVED,
    SLICE_ITEMS,
    Figures,
    Sample,
    UsageSampler,
    duration_seconds,
    sample_of,
)
from scheduler.backends.kubernetes.records import kept_attempt
from scheduler.backends.kubernetes.records import pod_record as record_of
from tests.conftest import (
    NAMESPACE,
    ClientFactory,
    counting_turns,
    ok_json,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import at, pod_record
from tests.fakekube import FakeKube
from tests.fakekube.testing import job_manifest

MIB = 1024 * 1024
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
INTERVAL = "0.05"
# A job that runs 3 s on the fake's clock: three of the metrics API's one-second samples.
THREE_SECONDS = {"command": ["sh", "-c", "sleep 60"]}
IDENTITY = Identity(app="myapp", environment="dev", component="compute", namespace=NAMESPACE)

# As kubectl get --raw /apis/metrics.k8s.io/v1beta1/namespaces/myapp-dev/pods shows one, with a
# sidecar beside the job's container.
POD_METRICS: dict[str, Any] = {
    "metadata": {
        "name": "compute-20240501120000-abcdefgh-x7k2p",
        "namespace": NAMESPACE,
        "creationTimestamp": "2024-05-01T12:00:31Z",
        "labels": {"job-name": "compute-20240501120000-abcdefgh", "radix-app": "myapp"},
    },
    "timestamp": "2024-05-01T12:00:30Z",
    "window": "15.007s",
    "containers": [
        {"name": "compute", "usage": {"cpu": "250000000n", "memory": "102400Ki"}},
        {"name": "istio-proxy", "usage": {"cpu": "3m", "memory": "40Mi"}},
    ],
}


def test_a_pod_s_metrics_are_a_sample_of_the_job_s_own_container() -> None:
    assert sample_of(POD_METRICS, "compute") == Sample(
        pod="compute-20240501120000-abcdefgh-x7k2p",
        job="compute-20240501120000-abcdefgh",
        timestamp=T0 + timedelta(seconds=30),
        window_seconds=15.007,
        cores=0.25,
        memory_bytes=100 * MIB,
    )


def test_without_a_container_of_its_name_a_pod_s_containers_are_summed() -> None:
    sample = sample_of(POD_METRICS, "job")
    assert sample is not None
    assert (sample.cores, sample.memory_bytes) == (0.253, 140 * MIB)


@pytest.mark.parametrize(
    "broken",
    [
        {"timestamp": None},
        {"window": "soon"},
        {"containers": []},
        {"containers": [{"name": "compute", "usage": {"cpu": "lots", "memory": "1Ki"}}]},
    ],
)
def test_metrics_that_say_too_little_are_no_sample(broken: dict[str, Any]) -> None:
    assert sample_of({**POD_METRICS, **broken}, "compute") is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15.007s", 15.007), ("750ms", 0.75), ("1m0.5s", 60.5), ("1h2m", 3720.0), ("", None)],
)
def test_windows_are_read_as_go_writes_durations(text: str, seconds: float | None) -> None:
    assert duration_seconds(text) == seconds


def _sample(at_seconds: int, cores: float, memory_mib: int, window: float = 15.0) -> Sample:
    return Sample("p", "j", T0 + timedelta(seconds=at_seconds), window, cores, memory_mib * MIB)


def test_cpu_seconds_add_up_each_new_sample_s_rate_over_the_time_it_stands_for() -> None:
    figures = Figures("j")
    figures.add(_sample(15, 0.5, 100, window=10.0))  # its window: 5 CPU seconds
    figures.add(_sample(15, 0.5, 300))  # the same sample again: nothing new
    figures.add(_sample(30, 1.0, 200))  # 15 s since the one before: 15 more
    figures.add(_sample(90, 0.1, 50))  # a minute without samples: the rate stands for it
    usage = figures.usage()
    assert (usage.peak_memory_bytes, usage.samples, usage.estimated) == (200 * MIB, 3, True)
    assert usage.cpu_seconds == pytest.approx(5 + 15 + 6)


class _ManyPodsMetrics:
    """A metrics API whose list holds `pods` PodMetrics."""

    def __init__(self, pods: int) -> None:
        self.items = [
            {**POD_METRICS, "metadata": {**POD_METRICS["metadata"], "name": f"pod-{n}"}}
            for n in range(pods)
        ]

    async def pod_metrics(self, selector: str) -> dict[str, Any]:
        return {"items": self.items}


async def test_taking_in_many_pods_metrics_lets_other_work_run_in_between() -> None:
    sampler = UsageSampler(cast(KubeApi, _ManyPodsMetrics(4 * SLICE_ITEMS)), IDENTITY)
    async with counting_turns() as turns:
        await sampler.discover()
    assert turns() >= 3
    assert sampler.usage(f"pod-{4 * SLICE_ITEMS - 1}") is not None


def test_an_attempt_s_record_keeps_what_it_used_with_what_it_kept_before() -> None:
    pod = pod_record(
        phase="Succeeded",
        container=ContainerState("terminated", exit_code=0, started_at=at(2), finished_at=at(9)),
    )
    sampled = Usage(200 * MIB, 3.5, 2, estimated=True)
    first = kept_attempt(
        kept_summary(pod, "final", known=None, stopped_at=None, now=at(10), usage=sampled)
    )
    assert first is not None and first.usage == sampled
    # Another replica saw more of it (a higher peak); this one's later samples more CPU.
    other = Usage(250 * MIB, 3.0, 3, estimated=True)
    known = dataclasses.replace(first, usage=other)
    merged = kept_attempt(
        kept_summary(pod, "final", known=known, stopped_at=None, now=at(10), usage=sampled)
    )
    assert merged is not None and merged.usage == Usage(250 * MIB, 3.5, 3, estimated=True)
    # A replica without samples of its own keeps what is kept.
    unsampled = kept_attempt(kept_summary(pod, "final", known=known, stopped_at=None, now=at(10)))
    assert unsampled is not None and unsampled.usage == other


# -- on the fake cluster --------------------------------------------------------------------------


async def _usage(client: Any, name: str) -> dict[str, Any]:
    return await ok_json(await client.get(f"/api/v1/jobs/{name}/usage"))


def _metrics_calls(kube: FakeKube) -> int:
    return sum(1 for e in kube.audit if e.api_group == "metrics.k8s.io")


def _spiking(pod: dict[str, Any], seconds: float) -> tuple[float, int]:
    """Half a core, and 48 MiB but 100 MiB in its second second: one of the one-second samples
    of a 3 s run sees the spike, the last one does not."""
    return 0.5, (100 if 1 <= seconds < 2 else 48) * MIB


async def test_a_running_attempt_is_sampled_and_its_record_keeps_the_figures(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    kube.metrics.resolution_seconds = 1.0
    kube.metrics.usage = _spiking
    client = await scheduler_factory(SCHEDULER_USAGE_INTERVAL_SECONDS=INTERVAL)
    name = (await post_job(client, THREE_SECONDS))["name"]
    await wait_for_status(client, name, "Succeeded")

    async def kept() -> dict[str, Any] | None:
        job = kube.get("Job", NAMESPACE, name) or {}
        summaries = [
            json.loads(text)
            for key, text in (job.get("metadata", {}).get("annotations") or {}).items()
            if key.startswith(ANNOTATION_ATTEMPT_PREFIX)
        ]
        return summaries[0].get("usage") if summaries else None

    # Once the attempt is kept, its figures are final (no sample comes after its end).
    await wait_until(lambda: _true(kept))
    [attempt] = (await _usage(client, name))["attempts"]
    assert attempt["available"] is True and attempt["cpuEstimated"] is True
    assert attempt["samples"] >= 2
    assert attempt["peakMemoryBytes"] == 100 * MIB
    # Half a core for some 3 s, as far as the one-second samples tell.
    assert 0.5 <= attempt["cpuSeconds"] <= 2.5
    assert " CPU on average (estimated from " in attempt["hint"]
    assert await kept() == {
        "peakMemoryBytes": attempt["peakMemoryBytes"],
        "cpuSeconds": attempt["cpuSeconds"],
        "samples": attempt["samples"],
        "estimated": True,
    }
    # A new scheduler has no samples of its own: the record's figures are the answer.
    restarted = await scheduler_factory(SCHEDULER_USAGE_INTERVAL_SECONDS=INTERVAL)
    assert (await _usage(restarted, name))["attempts"] == [attempt]


async def _true(predicate: Any) -> bool:
    return bool(await predicate())


async def test_a_restarted_job_keeps_what_its_earlier_attempt_used(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    kube.metrics.resolution_seconds = 1.0
    client = await scheduler_factory(SCHEDULER_USAGE_INTERVAL_SECONDS=INTERVAL)
    name = (await post_job(client, THREE_SECONDS))["name"]
    await wait_for_status(client, name, "Succeeded")
    [first] = (await _usage(client, name))["attempts"]
    assert first["available"] is True
    assert (await client.post(f"/api/v1/jobs/{name}/restart")).status == 200
    await wait_for_status(client, name, "Running")

    async def rerun() -> bool:
        return len((await _usage(client, name))["attempts"]) == 2

    await wait_until(rerun)
    earlier, latest = (await _usage(client, name))["attempts"]
    assert earlier == first
    assert latest["podIndex"] == 1


async def test_without_a_metrics_api_usage_is_unavailable_and_not_asked_again_soon(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    kube.metrics.served = False
    client = await scheduler_factory(SCHEDULER_USAGE_INTERVAL_SECONDS=INTERVAL)
    kube.clear_audit()
    name = (await post_job(client, THREE_SECONDS))["name"]
    await wait_for_status(client, name, "Succeeded")
    [attempt] = (await _usage(client, name))["attempts"]
    assert attempt["available"] is False
    assert attempt["reason"] == NOT_SERVED
    assert attempt["peakMemoryBytes"] is None and attempt["cpuSeconds"] is None
    # Some 60 intervals while it ran, one question: the answer holds for a while.
    assert _metrics_calls(kube) == 1


async def test_a_job_not_yet_sampled_says_it_was_not_measured_yet(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()  # every 15 s: the job's first sample is far off
    name = (await post_job(client, {"command": ["sh", "-c", "sleep 100000"]}))["name"]
    await wait_for_status(client, name, "Running")
    [attempt] = (await _usage(client, name))["attempts"]
    assert attempt["available"] is False
    assert attempt["reason"] == (
        "no sample yet; figures come from the metrics API (metrics.k8s.io), sampled every 15 s "
        "while its pod runs"
    )


# -- the sampler alone, with a retry time a test can wait for -------------------------------------


@pytest.fixture
async def sampler(kube: FakeKube) -> AsyncIterator[UsageSampler]:
    """A sampler of this scheduler's pods every 0.05 s, asking again after 0.3 s where the
    metrics API was not served; it is told of one running pod of the scheduler's."""
    kube.metrics.resolution_seconds = 0.2
    labels = identity_labels(IDENTITY)
    manifest = job_manifest("measured", "sleep 100000", labels=labels)
    manifest["spec"]["template"]["spec"]["containers"][0]["name"] = "compute"
    async with client.ApiClient(configuration=kube.configuration()) as connected:
        await client.BatchV1Api(connected).create_namespaced_job(NAMESPACE, manifest)
    api = KubeApi(NAMESPACE, configuration=kube.configuration())
    await api.start()
    sampling = UsageSampler(api, IDENTITY, interval_seconds=0.05, retry_seconds=0.3)
    sampling.start()

    async def running() -> bool:
        pods = kube.list("Pod", NAMESPACE, "job-name=measured")
        for pod in pods:
            sampling.pod_seen(record_of(pod), deleted=False)
        return any(record_of(pod).container.state == "running" for pod in pods)

    await wait_until(running)
    try:
        yield sampling
    finally:
        await sampling.close()
        await api.close()


async def _sampled(sampler: UsageSampler) -> bool:
    return bool(sampler.job_usage("measured"))


async def test_a_cluster_that_comes_to_serve_the_metrics_api_is_sampled_after_a_while(
    kube: FakeKube, sampler: UsageSampler
) -> None:
    kube.metrics.served = False
    await wait_until(lambda: _said(sampler, NOT_SERVED))
    kube.metrics.served = True
    await wait_until(lambda: _sampled(sampler))
    assert sampler.unavailable is None


async def test_a_metrics_api_that_falters_is_asked_again_at_the_next_interval(
    kube: FakeKube, sampler: UsageSampler
) -> None:
    kube.faults.fail("GET", r"metrics\.k8s\.io", status=503, times=None)
    await wait_until(lambda: _said(sampler, "the metrics API did not answer: "))
    kube.faults.clear()
    await wait_until(lambda: _sampled(sampler))
    assert sampler.unavailable is None


async def _said(sampler: UsageSampler, why: str) -> bool:
    await asyncio.sleep(0)
    return (sampler.unavailable or "").startswith(why)
