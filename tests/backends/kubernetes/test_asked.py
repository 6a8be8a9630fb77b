"""What was asked of a job, read back off the Job that `build_job` writes: the same as the
request says (what the local backend answers), but for the options a Job keeps as it uses them."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from scheduler.backends.base import Asked, Identity, NodeSpec, RuntimeSpec, asked_of
from scheduler.backends.kubernetes.asked import asked_of_job
from scheduler.backends.kubernetes.manifests import build_job
from tests.conftest import NAMESPACE, ClientFactory, ok_json, post_job, wait_for_status
from tests.factories import job_request
from tests.fakekube import FakeKube

IDENTITY = Identity(app="myapp", environment="dev", component="compute", namespace="myapp-dev")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def read_back(**changes: Any) -> tuple[Asked, Asked]:
    """What the Job of a request with `changes` says was asked, and what the request says."""
    request = job_request(**changes)
    job = build_job(IDENTITY, request, now=NOW)
    return asked_of_job(job, IDENTITY.component), asked_of(
        request, has_payload=request.payload is not None
    )


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"command": None, "args": None, "requests": {}, "limits": {}},
        {"env": {"B": "2", "A": "1", "RADIX_APP": "mine"}},
        {"payload": None, "payload_path": None, "job_id": None},
        {"node": NodeSpec(gpu="nvidia-v100", gpu_count="2")},
        {"node": NodeSpec(gpu="nvidia-v100, -nvidia-k80")},
        {"runtime": RuntimeSpec(architecture="arm64")},
        {"runtime": RuntimeSpec(architecture="amd64")},
        {"runtime": RuntimeSpec(node_type="highmem")},
        {"runtime": RuntimeSpec(architecture="arm64", node_type="highmem")},
        {"start_after": LATER, "waiting_timeout_seconds": 60},
        {"time_limit_seconds": 600, "backoff_limit": 3},
        {"batch_name": "batch-compute-20260101000000-abcdefgh", "batch_id": "b"},
        {"schedule": "nightly", "job_id": "schedule:nightly"},
    ],
    ids=repr,
)
def test_the_job_says_what_its_request_asked(changes: dict[str, Any]) -> None:
    from_job, from_request = read_back(**changes)
    assert from_job == from_request


def test_variables_are_named_sorted_without_the_scheduler_s_own_and_never_valued() -> None:
    asked, _ = read_back(env={"B": "secret-b", "A": "secret-a"})
    assert asked.variable_names == ("A", "B")
    assert "secret" not in repr(asked)


def test_a_variable_given_by_reference_is_named_too() -> None:
    job = build_job(IDENTITY, job_request())
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "x"}}})
    assert asked_of_job(job, IDENTITY.component).variable_names == ("A", "DB_PASSWORD")


# What a Job keeps of an option only as the job uses it: the placement is one of a node type, a
# GPU request or an architecture; a GPU list is lower-cased; a start time that has passed is
# not held for.
@pytest.mark.parametrize(
    ("changes", "kept"),
    [
        (
            {"node": NodeSpec(gpu="nvidia-v100"), "runtime": RuntimeSpec(node_type="highmem")},
            {"node": None},
        ),
        (
            {"node": NodeSpec(gpu="nvidia-v100"), "runtime": RuntimeSpec(architecture="arm64")},
            {"runtime": None},
        ),
        (
            {"runtime": RuntimeSpec(architecture="amd64", node_type="highmem")},
            {"runtime": RuntimeSpec(node_type="highmem")},
        ),
        (
            {"runtime": RuntimeSpec(architecture="arm64", node_type="memory-optimized-v1")},
            {"runtime": RuntimeSpec(node_type="memory-optimized-v1")},
        ),
        ({"node": NodeSpec(gpu=" NVIDIA-V100 ,")}, {"node": NodeSpec(gpu="nvidia-v100")}),
        ({"start_after": datetime(2025, 1, 1, tzinfo=UTC)}, {"start_after": None}),
    ],
    ids=repr,
)
def test_the_job_keeps_some_options_as_it_uses_them(
    changes: dict[str, Any], kept: dict[str, Any]
) -> None:
    from_job, from_request = read_back(**changes)
    assert from_job == dataclasses.replace(from_request, **kept)


async def test_a_job_between_a_restart_s_old_job_and_its_new_one_answers_the_same(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    body = {"command": ["sh", "-c", "exit 0"], "variables": {"TOKEN": "t"}, "backoffLimit": 1}
    name = (await post_job(client, body))["name"]
    await wait_for_status(client, name, "Succeeded")
    before = await ok_json(await client.get(f"/api/v1/jobs/{name}/request"))
    # The old Job is gone and the new one not yet created: the restart's record holds it.
    held = kube.faults.hold("POST", r"/namespaces/[^/]+/jobs$")
    restarting = asyncio.create_task(client.post(f"/api/v1/jobs/{name}/restart"))
    await held.wait_arrived(10)
    assert kube.get("Job", NAMESPACE, name) is None
    assert await ok_json(await client.get(f"/api/v1/jobs/{name}/request")) == before
    held.release()
    assert (await restarting).status == 200
