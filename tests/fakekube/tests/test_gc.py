"""Deletion and garbage collection: propagation policies, finalizers, dangling owners."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.fakekube.testing import Kube, job_manifest, phase, running_kube, secret_manifest

NS = "default"


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        yield kube


def owned_by(owner: Any, kind: str = "Job", api_version: str = "batch/v1") -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": api_version,
            "kind": kind,
            "name": owner.metadata.name,
            "uid": owner.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


async def running_job_with_pod(
    kube: Kube, name: str = "j", script: str = "sleep 60; exit 0"
) -> tuple[Any, str]:
    """A Job whose pod has started (and runs a simulated minute by default), and that pod's
    name."""
    job = await kube.batch.create_namespaced_job(NS, job_manifest(name, script))

    def started(_: Any) -> bool:
        pods = kube.fake.list("Pod", NS, f"job-name={name}")
        return len(pods) == 1 and phase(pods[0]) in ("Running", "Succeeded", "Failed")

    await kube.fake.wait_for("Job", NS, name, started)
    [pod] = kube.fake.list("Pod", NS, f"job-name={name}")
    return job, str(pod["metadata"]["name"])


async def deleted_at(watch: Callable[..., Awaitable[Any]], name: str, since: str) -> int:
    """The resourceVersion at which `name` was deleted, from a watch replaying history since
    `since` (versions are global, so they order deletions of different kinds)."""
    response = await watch(NS, watch=True, resource_version=since)
    try:
        while True:
            event = json.loads(await asyncio.wait_for(response.content.readline(), 10))
            metadata = event["object"]["metadata"]
            if event["type"] == "DELETED" and metadata["name"] == name:
                return int(metadata["resourceVersion"])
    finally:
        response.close()


async def test_background_deletion_removes_the_owner_at_once_and_dependents_soon(
    kube: Kube,
) -> None:
    job, pod = await running_job_with_pod(kube)
    secret = secret_manifest("payload")
    secret["metadata"]["ownerReferences"] = owned_by(job)
    await kube.core.create_namespaced_secret(NS, secret)

    await kube.batch.delete_namespaced_job("j", NS, propagation_policy="Background")

    assert kube.fake.get("Job", NS, "j") is None
    await kube.fake.wait_for("Secret", NS, "payload", lambda s: s is None)
    await kube.fake.wait_for("Pod", NS, pod, lambda p: p is None)


async def test_foreground_deletion_keeps_the_owner_until_its_dependents_are_gone(
    kube: Kube,
) -> None:
    _, pod = await running_job_with_pod(kube)
    since = (await kube.core.list_namespaced_pod(NS)).metadata.resource_version

    answer = await kube.batch.delete_namespaced_job("j", NS, propagation_policy="Foreground")

    assert answer["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in answer["metadata"]["finalizers"]
    await kube.fake.wait_for("Job", NS, "j", lambda j: j is None)
    assert kube.fake.list("Pod", NS, "job-name=j") == []
    pod_gone = await deleted_at(kube.core.list_namespaced_pod_without_preload_content, pod, since)
    job_gone = await deleted_at(kube.batch.list_namespaced_job_without_preload_content, "j", since)
    assert pod_gone < job_gone


async def test_orphan_deletion_leaves_dependents_without_the_owner_reference(kube: Kube) -> None:
    _, pod = await running_job_with_pod(kube)

    await kube.batch.delete_namespaced_job("j", NS, propagation_policy="Orphan")
    await kube.fake.settle()

    orphan = kube.fake.get("Pod", NS, pod)
    assert orphan is not None
    assert "ownerReferences" not in orphan["metadata"]
    assert "batch.kubernetes.io/job-tracking" not in orphan["metadata"].get("finalizers", [])


async def test_deleting_a_job_without_a_policy_orphans_its_pods_like_batch_v1(kube: Kube) -> None:
    _, pod = await running_job_with_pod(kube)

    await kube.batch.delete_namespaced_job("j", NS)
    await kube.fake.settle()

    assert kube.fake.get("Job", NS, "j") is None
    assert kube.fake.get("Pod", NS, pod) is not None


async def test_orphaned_pods_keep_running_to_completion(kube: Kube) -> None:
    _, pod = await running_job_with_pod(kube, script="sleep 10; exit 0")

    await kube.batch.delete_namespaced_job("j", NS, propagation_policy="Orphan")

    await kube.fake.wait_for("Pod", NS, pod, lambda p: phase(p) == "Succeeded", timeout=10)


async def test_collection_is_recursive(kube: Kube) -> None:
    owner = await kube.core.create_namespaced_secret(NS, secret_manifest("owner"))
    middle_manifest = secret_manifest("middle")
    middle_manifest["metadata"]["ownerReferences"] = owned_by(owner, "Secret", "v1")
    middle = await kube.core.create_namespaced_secret(NS, middle_manifest)
    leaf = {
        "metadata": {"name": "leaf", "ownerReferences": owned_by(middle, "Secret", "v1")},
        "spec": {"ports": [{"port": 80}]},
    }
    await kube.core.create_namespaced_service(NS, leaf)

    await kube.core.delete_namespaced_secret("owner", NS)

    await kube.fake.wait_for("Service", NS, "leaf", lambda s: s is None)
    assert kube.fake.get("Secret", NS, "middle") is None


async def test_a_dependent_of_a_missing_owner_is_collected(kube: Kube) -> None:
    manifest = secret_manifest("stray")
    manifest["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "gone", "uid": "no-such-uid"}
    ]

    await kube.core.create_namespaced_secret(NS, manifest)

    await kube.fake.wait_for("Secret", NS, "stray", lambda s: s is None)


async def test_a_dependent_with_another_living_owner_only_loses_the_dead_reference(
    kube: Kube,
) -> None:
    first = await kube.core.create_namespaced_secret(NS, secret_manifest("first"))
    second = await kube.core.create_namespaced_secret(NS, secret_manifest("second"))
    shared = secret_manifest("shared")
    shared["metadata"]["ownerReferences"] = [
        *owned_by(first, "Secret", "v1"),
        {**owned_by(second, "Secret", "v1")[0], "controller": False},
    ]
    await kube.core.create_namespaced_secret(NS, shared)

    await kube.core.delete_namespaced_secret("first", NS)

    survivor = await kube.fake.wait_for(
        "Secret",
        NS,
        "shared",
        lambda s: s is not None and len(s["metadata"]["ownerReferences"]) == 1,
    )
    assert survivor is not None
    assert survivor["metadata"]["ownerReferences"][0]["name"] == "second"


async def test_finalizers_hold_a_deleted_object_until_they_are_removed(kube: Kube) -> None:
    manifest = secret_manifest("held")
    manifest["metadata"]["finalizers"] = ["example.com/hold"]
    await kube.core.create_namespaced_secret(NS, manifest)

    answer = await kube.core.delete_namespaced_secret("held", NS)
    held = kube.fake.get("Secret", NS, "held")
    await kube.core.patch_namespaced_secret(
        "held", NS, {"metadata": {"finalizers": None}}, _content_type="application/merge-patch+json"
    )

    assert answer["metadata"]["deletionTimestamp"]
    assert held is not None
    assert held["metadata"]["deletionTimestamp"]
    assert kube.fake.get("Secret", NS, "held") is None


async def test_a_running_pod_terminates_gracefully_before_it_goes(kube: Kube) -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 60"]}]
        },
    }
    await kube.core.create_namespaced_pod(NS, pod)
    await kube.fake.wait_for("Pod", NS, "p", lambda p: phase(p) == "Running")

    answer = await kube.core.delete_namespaced_pod("p", NS)

    assert answer.metadata.deletion_timestamp is not None
    assert answer.metadata.deletion_grace_period_seconds == 30
    await kube.fake.wait_for("Pod", NS, "p", lambda p: p is None)
