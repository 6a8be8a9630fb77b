"""The pure side of payloads above one Secret: where the split begins, the parts, the pod's init
container, and what a pod whose init container fails or cannot start says of its attempt."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest

from scheduler.backends.base import Identity
from scheduler.backends.kubernetes.manifests import (
    build_job,
    build_payload_part,
    build_payload_secret,
    configmap_owner,
)
from scheduler.backends.kubernetes.payloads import Assembly, is_split, part_count, parts
from scheduler.backends.kubernetes.records import pod_record
from tests.factories import job_request

IDENTITY = Identity(app="myapp", environment="dev", component="compute", namespace="myapp-dev")
OWNER = configmap_owner("anchor", "anchor-uid")
MIB, PART = 1024 * 1024, 512 * 1024
IMAGE = "registry.example.com/job-scheduler:1.2.3"


@pytest.mark.parametrize(
    ("size", "split", "sizes"),
    [
        (0, False, []),
        (MIB, False, [PART, PART]),
        (MIB + 1, True, [PART, PART, 1]),
        (64 * MIB, True, [PART] * 128),
    ],
)
def test_a_payload_is_split_only_above_one_secret_s_capacity(
    size: int, split: bool, sizes: list[int]
) -> None:
    payload = bytes(size)
    assert is_split(payload) is split
    assert [len(part) for part in parts(payload)] == sizes
    assert part_count(size) == len(sizes)


def test_a_payload_of_one_mib_is_one_secret_as_ever() -> None:
    request = job_request(payload=bytes(MIB))
    pod = build_job(IDENTITY, request)["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert build_payload_secret(IDENTITY, request, OWNER) is not None


def test_a_larger_payload_is_no_one_secret_and_needs_its_assembly() -> None:
    request = job_request(payload=bytes(MIB + 1))
    assert build_payload_secret(IDENTITY, request, OWNER) is None
    with pytest.raises(ValueError, match="needs its assembly"):
        build_job(IDENTITY, request)


def test_a_part_is_labelled_owned_and_immutable_as_the_one_secret_is() -> None:
    small = build_payload_secret(IDENTITY, job_request(), OWNER)
    request = job_request(payload=b"\xf0\x9f\x9a\x80" * (MIB // 4 + 1))
    part = build_payload_part(IDENTITY, request, OWNER, 2, next(parts(request.payload or b"")))
    assert small is not None
    assert part["metadata"]["name"] == f"{request.name}-payload-2"
    for key in ("labels", "ownerReferences"):
        assert part["metadata"][key] == small["metadata"][key]
    assert (part["immutable"], part["type"]) == (True, "Opaque")


def test_the_init_container_is_told_the_count_size_and_checksum_it_checks() -> None:
    payload = bytes(range(256)) * (MIB // 256) + b"!"
    request = job_request(payload=payload)
    job = build_job(IDENTITY, request, assembly=Assembly.of(payload, IMAGE))
    [init] = job["spec"]["template"]["spec"]["initContainers"]
    command: list[str] = init["command"]
    told = dict(zip(command[3::2], command[4::2], strict=True))
    assert command[:3] == ["python", "-m", "scheduler.assemble_payload"]
    assert told["--count"] == "3"
    assert told["--size"] == str(MIB + 1)
    assert told["--sha256"] == hashlib.sha256(payload).hexdigest()
    assert (init["image"], init["imagePullPolicy"]) == (IMAGE, "IfNotPresent")


def test_the_init_container_never_takes_the_job_container_s_name() -> None:
    identity = dataclasses.replace(IDENTITY, component="assemble-payload")
    payload = bytes(MIB + 1)
    job = build_job(identity, job_request(payload=payload), assembly=Assembly.of(payload, IMAGE))
    pod = job["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["name"] != pod["containers"][0]["name"]


# -- what a pod in its init says of its attempt ---------------------------------------------


def pod(init_state: dict[str, Any], phase: str = "Pending") -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "uid": "u", "labels": {"job-name": "j"}},
        "status": {
            "phase": phase,
            "initContainerStatuses": [{"name": "assemble-payload", "state": init_state}],
            "containerStatuses": [
                {"name": "compute", "state": {"waiting": {"reason": "PodInitializing"}}}
            ],
        },
    }


def test_a_pod_putting_its_payload_together_is_its_container_waiting_to_initialize() -> None:
    record = pod_record(pod({"running": {"startedAt": "2026-01-01T00:00:00Z"}}))
    assert (record.container.state, record.container.reason) == ("waiting", "PodInitializing")


def test_a_failed_init_container_is_the_attempt_s_end_with_its_message_but_no_result() -> None:
    failed = {"terminated": {"exitCode": 1, "reason": "Error", "message": "the payload cannot …"}}
    record = pod_record(pod(failed, phase="Failed"))
    container = record.container
    assert (container.state, container.exit_code, container.message) == (
        "terminated",
        1,
        "the payload cannot …",
    )
    assert record.result is None


def test_an_init_image_that_cannot_be_pulled_is_what_the_attempt_waits_for() -> None:
    stuck = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x"'}}
    record = pod_record(pod(stuck))
    assert (record.container.state, record.container.reason) == ("waiting", "ImagePullBackOff")


def test_a_finished_init_container_leaves_the_attempt_to_its_container() -> None:
    done = pod({"terminated": {"exitCode": 0, "reason": "Completed"}})
    done["status"]["containerStatuses"][0]["state"] = {
        "running": {"startedAt": "2026-01-01T00:00:00Z"}
    }
    assert pod_record(done).container.state == "running"
