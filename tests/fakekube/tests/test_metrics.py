"""The fake's metrics API (metrics.k8s.io/v1beta1), read with the official client as a program
reads a metrics-server's: running pods only, sampled on a resolution, formatted as the real one
formats them, and a cluster without it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from tests.fakekube.metrics import go_duration
from tests.fakekube.testing import Kube, job_manifest, running_kube

NS = "default"
JSON = dict[str, Any]
RESOLUTION_SECONDS = 0.2


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        kube.fake.metrics.resolution_seconds = RESOLUTION_SECONDS
        yield kube


def metrics(kube: Kube) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube.api)


async def pod_metrics(kube: Kube, selector: str = "") -> list[JSON]:
    listed = await metrics(kube).list_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", NS, "pods", label_selector=selector
    )
    assert listed["kind"] == "PodMetricsList"
    items: list[JSON] = listed["items"]
    return items


async def running_pod(kube: Kube, job: str, script: str = "sleep 1000") -> str:
    await kube.batch.create_namespaced_job(NS, job_manifest(job, script, labels={"app": job}))

    def running(pods: list[JSON]) -> bool:
        return any("running" in p["status"]["containerStatuses"][0]["state"] for p in pods)

    deadline = time.monotonic() + 10
    while not running(pods := kube.fake.list("Pod", NS, f"job-name={job}")):
        assert time.monotonic() < deadline, "the pod never ran"
        await asyncio.sleep(0.02)
    return str(pods[0]["metadata"]["name"])


async def sampled(kube: Kube, selector: str) -> list[JSON]:
    deadline = time.monotonic() + 10
    while not (items := await pod_metrics(kube, selector)):
        assert time.monotonic() < deadline, "never sampled"
        await asyncio.sleep(0.05)
    return items


async def test_a_running_pod_is_sampled_as_a_metrics_server_writes_it(kube: Kube) -> None:
    kube.fake.metrics.usage = lambda pod, seconds: (0.25, 100 * 1024 * 1024)
    pod = await running_pod(kube, "busy")
    [item] = await sampled(kube, "app=busy")
    assert item["metadata"]["name"] == pod
    assert item["metadata"]["labels"]["app"] == "busy"
    assert item["containers"] == [
        {"name": "main", "usage": {"cpu": "250000000n", "memory": "102400Ki"}}
    ]
    assert item["timestamp"].endswith("Z") and len(item["timestamp"]) == 20
    assert item["window"].endswith("ms")  # at most the resolution, 0.2 s


async def test_only_the_selected_running_pods_are_listed(kube: Kube) -> None:
    await running_pod(kube, "first")
    await running_pod(kube, "second")
    await sampled(kube, "app=second")
    names = {item["metadata"]["labels"]["app"] for item in await pod_metrics(kube, "app=first")}
    assert names == {"first"}


async def test_a_pod_whose_container_ended_has_no_metrics(kube: Kube) -> None:
    pod = await running_pod(kube, "brief", "sleep 20")
    await sampled(kube, "app=brief")

    async def ended() -> bool:
        found = kube.fake.get("Pod", NS, pod)
        return found is not None and found["status"]["phase"] == "Succeeded"

    deadline = time.monotonic() + 10
    while not await ended():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert await pod_metrics(kube, "app=brief") == []
    with pytest.raises(ApiException) as refused:
        await metrics(kube).get_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", NS, "pods", pod
        )
    assert refused.value.status == 404
    status = json.loads(refused.value.body)
    assert status["message"] == f'podmetrics.metrics.k8s.io "{pod}" not found'


async def test_one_pod_s_metrics_are_served_by_name(kube: Kube) -> None:
    pod = await running_pod(kube, "named")
    await sampled(kube, "app=named")
    found = await metrics(kube).get_namespaced_custom_object(
        "metrics.k8s.io", "v1beta1", NS, "pods", pod
    )
    assert (found["kind"], found["apiVersion"]) == ("PodMetrics", "metrics.k8s.io/v1beta1")


async def test_discovery_lists_the_metrics_api_only_where_it_is_served(kube: Kube) -> None:
    groups = await client.ApisApi(kube.api).get_api_versions()
    assert "metrics.k8s.io" in {group.name for group in groups.groups}
    kube.fake.metrics.served = False
    groups = await client.ApisApi(kube.api).get_api_versions()
    assert "metrics.k8s.io" not in {group.name for group in groups.groups}
    with pytest.raises(ApiException) as refused:
        await pod_metrics(kube)
    assert refused.value.status == 404


async def test_a_cluster_can_be_made_without_a_metrics_api() -> None:
    async with running_kube(time_scale=0.05, metrics=False) as kube:
        with pytest.raises(ApiException) as refused:
            await pod_metrics(kube)
        assert refused.value.status == 404


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.75, "750ms"), (0.0015, "1.5ms"), (15.007, "15.007s"), (60.5, "1m0.5s"), (1, "1s")],
)
def test_windows_are_written_as_go_writes_a_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
