"""A job's result (`GET .../result`) and restarts (`POST .../restart`) end to end, on both
backends: the fake Kubernetes API server (a result is the container's termination message) and
the local backend (the file named by `RADIX_RESULT_PATH`). Then, on Kubernetes only, what a
restart leaves in the cluster and a scheduler killed at each step of one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from scheduler.api.keys import VIEW
from scheduler.backends.base import ContainerState, JobRecord, PodRecord
from scheduler.backends.kubernetes.manifests import anchor_name, payload_secret_name
from scheduler.backends.kubernetes.records import attempt_summary, previous_attempts
from scheduler.backends.kubernetes.restarting import replacement_job
from scheduler.backends.local.runner import read_result
from scheduler.domain.results import latest_attempt
from scheduler.domain.status import derive_status
from scheduler.models import JobStatus, JobStatusEnum
from tests.backends.kubernetes.test_crash_safety import (
    SELECTOR,
    Census,
    Launch,
    SchedulerProcess,
    http,
    launch,
)
from tests.conftest import (
    NAMESPACE,
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.fakekube import FakeKube
from tests.fakekube.script import Cat, Echo, Write, parse_script

__all__ = ["http", "launch"]  # fixtures, re-exported for pytest

Client = TestClient[Any, Any]
JSON = dict[str, Any]
# Generous, for a busy machine: only a hung job should ever reach it.
TIMEOUT_SECONDS = 30.0
PAYLOAD = "the same payload"


@dataclass(frozen=True)
class Backend:
    """How jobs write their result and find their payload on one backend."""

    name: str
    start: ClientFactory
    result_file: str
    payload_file: str

    def writing(self, text: str) -> str:
        """A statement that writes `text` (and a newline) as the job's result."""
        return f"echo '{text}' > {self.result_file}"

    def returning_payload(self) -> str:
        """A statement that makes the job's payload its result."""
        return f"cat {self.payload_file} > {self.result_file}"


@pytest.fixture(params=["kubernetes", "local"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "kubernetes":
        factory = request.getfixturevalue("scheduler_factory")
        return Backend("kubernetes", factory, "/dev/termination-log", "/compute/args/payload")
    if sys.platform != "linux":
        pytest.skip("the local backend's tests read processes from /proc")
    factory = request.getfixturevalue("local_scheduler_factory")
    return Backend("local", factory, '"$RADIX_RESULT_PATH"', '"$RADIX_PAYLOAD_PATH/payload"')


def shell(script: str, **fields: Any) -> JSON:
    return {"command": ["sh", "-c", script], **fields}


async def result_of(client: Client, path: str) -> tuple[int, bytes]:
    response = await client.get(f"/api/v1/{path}/result")
    return response.status, await response.read()


async def restart(client: Client, path: str) -> Any:
    return await client.post(f"/api/v1/{path}/restart")


async def expect_restarted(response: Any, message: str) -> None:
    assert response.status == 200, await response.text()
    assert await response.json() == {"status": "Success", "message": message, "code": 200}


async def expect_failure(response: Any, code: int, message: str) -> None:
    assert response.status == code, await response.text()
    body = await response.json()
    assert (body["code"], body["message"]) == (code, message)


async def wait_for_attempts(client: Client, name: str, status: str, attempts: int) -> JSON:
    """The job once it has `status` with `attempts` podStatuses, all ended (Job and Pod events
    come on two watches: the Job may say it failed before its last pod's end is in)."""
    found: JSON = {}

    async def reached() -> bool:
        nonlocal found
        response = await client.get(f"/api/v1/jobs/{name}")
        if response.status == 404:
            return False
        found = await response.json()
        pods = found["podStatuses"]
        ended = all(pod["replicaStatus"]["status"] in ("Succeeded", "Failed") for pod in pods)
        return found["status"] == status and len(pods) == attempts and ended

    await wait_until(reached, TIMEOUT_SECONDS)
    return found


def record_statuses(client: Client, name: str) -> list[str | None]:
    """Every status the job shows from now on (None: it is not there)."""
    seen: list[str | None] = []

    def changed(job: str, old: JobStatus | None, new: JobStatus | None) -> None:
        status = None if new is None else str(new.status)
        if job == name and (not seen or seen[-1] != status):
            seen.append(status)

    client.app[VIEW].subscribe(changed)
    return seen


# -- pure parts: status derivation, the replacement Job, previous attempts, result files ------

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
FAILED_STATE = ContainerState("terminated", "Error", "it broke\nand more", 3, T0, T0)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def a_pod(name: str, created: int, state: ContainerState, **changes: Any) -> PodRecord:
    return PodRecord(
        name=name,
        uid=name,
        resource_version="1",
        job_name="compute-1",
        created=at(created),
        phase="Failed" if state.state == "terminated" else "Running",
        started=at(created),
        container=state,
        **changes,
    )


def a_job(**changes: Any) -> JobRecord:
    values: dict[str, Any] = dict(
        name="compute-1",
        uid="u",
        resource_version="1",
        job_id=None,
        created=T0,
        started=None,
        completed=None,
        active=0,
        ready=0,
        succeeded=0,
        failed=0,
    )
    return JobRecord(**{**values, **changes})


def test_a_restarted_job_shows_its_earlier_attempts_first_and_they_decide_nothing() -> None:
    earlier = a_pod("compute-1-a", 1, FAILED_STATE)
    restarted = a_job(restarted=at(10), previous_attempts=(earlier,))

    status = derive_status(restarted, [earlier])  # its pod not deleted yet: shown once

    assert status.status is JobStatusEnum.WAITING and status.message is None
    assert status.restart == "2024-05-01T12:00:10Z" and status.updated == at(10)
    assert [(p.name, p.pod_index) for p in status.pod_statuses] == [("compute-1-a", 0)]
    assert (
        status.pod_statuses[0].status_message == "the container exited with code 3: it broke \u2026"
    )

    running = a_pod("compute-1-b", 11, ContainerState("running", started_at=at(11)), ready=True)
    again = derive_status(dataclasses.replace(restarted, active=1, ready=1), [earlier, running])
    assert again.status is JobStatusEnum.RUNNING
    assert [(p.name, p.pod_index) for p in again.pod_statuses] == [
        ("compute-1-a", 0),
        ("compute-1-b", 1),
    ]


def test_the_latest_attempt_of_the_current_run_holds_the_result() -> None:
    earlier = a_pod("compute-1-a", 5, FAILED_STATE, result="old")
    first = a_pod("compute-1-b", 6, FAILED_STATE, result="first")
    last = a_pod("compute-1-c", 7, FAILED_STATE)
    restarted = a_job(previous_attempts=(earlier,))

    assert latest_attempt(restarted, [last, earlier, first]) == last
    assert latest_attempt(restarted, [earlier]) is None


def test_previous_attempts_round_trip_through_the_annotation_keeping_a_brief_message() -> None:
    long = ContainerState("terminated", "Completed", "r" * 5000, 0, at(1), at(2))
    attempts = (a_pod("compute-1-a", 1, FAILED_STATE, image="busybox"), a_pod("b", 2, long))
    text = json.dumps([attempt_summary(attempt) for attempt in attempts])

    kept = previous_attempts(text)

    assert [(a.name, a.created, a.phase, a.image) for a in kept] == [
        ("compute-1-a", at(1), "Failed", "busybox"),
        ("b", at(2), "Failed", None),
    ]
    assert kept[0].container == FAILED_STATE
    assert kept[1].container.message == "r" * 256
    assert previous_attempts("not json") == previous_attempts('{"a": 1}') == ()


def test_a_replacement_job_is_the_old_one_suspended_without_its_state_or_generated_fields() -> None:
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "batch-1", "uid": "b"}
    old = {
        "metadata": {
            "name": "compute-1",
            "uid": "old",
            "resourceVersion": "7",
            "creationTimestamp": "2024-05-01T11:00:00Z",
            "labels": {"radix-job-name": "compute-1", "radix.equinor.com/pending": "true"},
            "annotations": {
                "radix.equinor.com/job-id": "j1",
                "radix.equinor.com/stopped-at": "2024-05-01T11:30:00Z",
                "radix.equinor.com/started-at": "2024-05-01T11:01:00Z",
            },
            "ownerReferences": [owner],
        },
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "old"}},
            "suspend": False,
            "backoffLimit": 2,
            "template": {
                "metadata": {
                    "labels": {
                        "radix-job-name": "compute-1",
                        "controller-uid": "old",
                        "batch.kubernetes.io/controller-uid": "old",
                        "job-name": "compute-1",
                        "batch.kubernetes.io/job-name": "compute-1",
                    }
                },
                "spec": {"containers": [{"name": "compute", "image": "busybox"}]},
            },
        },
        "status": {"failed": 3},
    }

    job = replacement_job(old, [{"name": "compute-1-a"}], at(60))

    assert job == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "compute-1",
            "labels": {"radix-job-name": "compute-1"},
            "annotations": {
                "radix.equinor.com/job-id": "j1",
                "radix.equinor.com/created-at": "2024-05-01T11:00:00Z",
                "radix.equinor.com/restarted-at": "2024-05-01T12:01:00Z",
                "radix.equinor.com/previous-attempts": '[{"name":"compute-1-a"}]',
            },
            "ownerReferences": [owner],
        },
        "spec": {
            "suspend": True,
            "parallelism": 1,
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": {"radix-job-name": "compute-1"}},
                "spec": {"containers": [{"name": "compute", "image": "busybox"}]},
            },
        },
    }
    # A second restart keeps when the job was created, not when its last Job was.
    again = replacement_job({**job, "metadata": {**job["metadata"], "uid": "new"}}, [], at(90))
    assert again["metadata"]["annotations"]["radix.equinor.com/created-at"] == (
        "2024-05-01T11:00:00Z"
    )


@pytest.mark.parametrize(
    ("written", "result"),
    [
        (None, None),
        (b"", None),
        (b"42\n", "42\n"),
        (b"a" * 5000 + b"b" * 4096, "b" * 4096),
        (b"\xff\xfeok", "\ufffd\ufffdok"),
    ],
    ids=["none", "empty", "small", "over-4-kib", "not-utf-8"],
)
def test_a_local_result_is_the_last_4_kib_of_its_file(
    tmp_path: Path, written: bytes | None, result: str | None
) -> None:
    path = tmp_path / "0"
    if written is not None:
        path.write_bytes(written)

    assert read_result(path) == result


@pytest.mark.parametrize(
    ("script", "steps"),
    [
        ("echo 42 > /dev/termination-log", [Write(Echo("42"), "/dev/termination-log", False)]),
        ("echo -n a b >> /tmp/x", [Write(Echo("a b", newline=False), "/tmp/x", True)]),
        (
            "cat /p/payload > /dev/termination-log",
            [Write(Cat("/p/payload"), "/dev/termination-log", False)],
        ),
        ("cat /p/payload; echo hi", [Cat("/p/payload"), Echo("hi")]),
    ],
)
def test_the_fake_understands_writing_the_termination_log(script: str, steps: list[Any]) -> None:
    assert list(parse_script(script).steps) == steps


# -- results ---------------------------------------------------------------------------------


async def test_a_result_is_served_once_the_job_has_succeeded(backend: Backend) -> None:
    client = await backend.start()
    job = await post_job(client, shell(f"sleep 1; {backend.writing('the answer is 42')}"))
    await wait_for_status(client, job["name"], "Succeeded", TIMEOUT_SECONDS)

    response = await client.get(f"/api/v1/jobs/{job['name']}/result")

    assert response.status == 200, await response.text()
    assert response.content_type == "application/octet-stream"
    assert await response.read() == b"the answer is 42\n"


async def test_a_result_is_there_for_a_failed_job_too_and_its_status_says_it(
    backend: Backend,
) -> None:
    client = await backend.start()
    body = shell(f"{backend.writing('no input file')}; exit 3", backoffLimit=0)
    job = await post_job(client, body)
    failed = await wait_for_attempts(client, job["name"], "Failed", 1)

    assert await result_of(client, f"jobs/{job['name']}") == (200, b"no input file\n")
    assert failed["message"].endswith("the container exited with code 3: no input file")
    assert failed["podStatuses"][0]["statusMessage"] == (
        "the container exited with code 3: no input file"
    )


async def test_a_result_keeps_its_last_4_kib_and_statuses_show_only_its_first_line_cut(
    backend: Backend,
) -> None:
    client = await backend.start()
    long_line = "x" * 300 + "y" * 4796
    job = await post_job(client, shell(backend.writing(long_line)))
    succeeded = await wait_for_status(client, job["name"], "Succeeded", TIMEOUT_SECONDS)

    status, result = await result_of(client, f"jobs/{job['name']}")

    assert status == 200
    assert result == (long_line + "\n").encode()[-4096:]
    shown = succeeded["podStatuses"][0]["statusMessage"]
    assert shown == "y" * 199 + "\u2026"


async def test_a_job_that_wrote_no_result_answers_404(backend: Backend) -> None:
    client = await backend.start()
    job = await post_job(client, shell("sleep 1; exit 0"))
    await wait_for_status(client, job["name"], "Succeeded", TIMEOUT_SECONDS)

    await expect_failure(
        await client.get(f"/api/v1/jobs/{job['name']}/result"),
        404,
        f"job {job['name']} wrote no result",
    )


async def test_a_running_job_has_no_result_yet_409(backend: Backend) -> None:
    client = await backend.start()
    job = await post_job(client, shell(f"{backend.writing('partial')}; sleep 100000"))
    await wait_for_status(client, job["name"], "Running", TIMEOUT_SECONDS)

    await expect_failure(
        await client.get(f"/api/v1/jobs/{job['name']}/result"),
        409,
        f"job {job['name']} has not ended (its status is Running): its result is there once it has",
    )
    assert (await client.post(f"/api/v1/jobs/{job['name']}/stop")).status == 200


async def test_the_result_of_an_unknown_job_is_404(backend: Backend) -> None:
    client = await backend.start()

    await expect_failure(
        await client.get("/api/v1/jobs/compute-nope/result"), 404, "job compute-nope not found"
    )
    await expect_failure(
        await client.get("/api/v1/batches/batch-nope/jobs/x/result"),
        404,
        "batch batch-nope not found",
    )


async def test_a_batch_job_s_result_by_its_full_and_its_short_name(backend: Backend) -> None:
    client = await backend.start()
    response = await client.post(
        "/api/v1/batches",
        json={
            "jobScheduleDescriptions": [{"payload": "first"}, {"payload": "second"}],
            "defaultRadixJobComponentConfig": shell(backend.returning_payload()),
        },
    )
    assert response.status == 200, await response.text()
    batch = await response.json()
    names = [job["name"] for job in batch["jobStatuses"]]
    for name in names:
        await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)

    full = await result_of(client, f"batches/{batch['name']}/jobs/{names[0]}")
    short = names[1].removeprefix(f"{batch['name']}-")
    by_short_name = await result_of(client, f"batches/{batch['name']}/jobs/{short}")

    assert (full, by_short_name) == ((200, b"first"), (200, b"second"))
    await expect_failure(
        await client.get(f"/api/v1/batches/{batch['name']}/jobs/nope/result"),
        404,
        f"job nope not found in batch {batch['name']}",
    )


# -- restarts --------------------------------------------------------------------------------


async def test_a_succeeded_job_restarted_runs_again_under_its_name_with_its_payload(
    backend: Backend,
) -> None:
    client = await backend.start()
    job = await post_job(
        client, {"payload": PAYLOAD, **shell(f"sleep 1; {backend.returning_payload()}")}
    )
    name = job["name"]
    before = await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    statuses = record_statuses(client, name)

    await expect_restarted(
        await restart(client, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    after = await wait_for_attempts(client, name, "Succeeded", 2)

    assert statuses[0] == "Waiting" and statuses[-1] == "Succeeded"
    assert "Running" in statuses and None not in statuses, statuses
    assert after["name"] == name and after["created"] == before["created"]
    assert after["restart"] is not None and after["restart"] >= before["ended"]
    assert after["started"] >= after["restart"]
    old, new = after["podStatuses"]
    assert old == before["podStatuses"][0]
    assert (old["podIndex"], new["podIndex"]) == (0, 1)
    assert new["name"] != old["name"] and new["replicaStatus"]["status"] == "Succeeded"
    # The same payload: the job made it its result.
    assert await result_of(client, f"jobs/{name}") == (200, PAYLOAD.encode())


async def test_a_failed_job_restarted_counts_its_failures_afresh(backend: Backend) -> None:
    client = await backend.start()
    job = await post_job(client, shell(f"{backend.writing('failed')}; exit 3", backoffLimit=1))
    name = job["name"]
    failed = await wait_for_attempts(client, name, "Failed", 2)
    assert failed["failed"] == 2

    await expect_restarted(
        await restart(client, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    again = await wait_for_attempts(client, name, "Failed", 4)

    assert again["failed"] == 2  # this run's: its own backoff limit allowed one retry
    assert [pod["replicaStatus"]["status"] for pod in again["podStatuses"]] == ["Failed"] * 4
    assert again["podStatuses"][:2] == failed["podStatuses"]


async def test_a_stopped_job_restarted_runs_to_its_end(backend: Backend) -> None:
    client = await backend.start()
    job = await post_job(client, shell(f"sleep 40; {backend.writing('done')}"))
    name = job["name"]
    await wait_for_status(client, name, "Running", TIMEOUT_SECONDS)
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    await wait_for_status(client, name, "Stopped", TIMEOUT_SECONDS)

    await expect_restarted(
        await restart(client, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    done = await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)

    assert done["restart"] is not None
    assert done["podStatuses"][-1]["replicaStatus"]["status"] == "Succeeded"
    assert await result_of(client, f"jobs/{name}") == (200, b"done\n")


async def test_a_job_that_has_not_ended_cannot_be_restarted_400(backend: Backend) -> None:
    client = await backend.start()
    job = await post_job(client, shell("sleep 100000"))
    name = job["name"]
    await wait_for_status(client, name, "Running", TIMEOUT_SECONDS)

    await expect_failure(
        await restart(client, f"jobs/{name}"),
        400,
        f"cannot restart the job {name} with the status Running",
    )
    assert (await job_status(client, name))["status"] == "Running"
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200


async def test_restarting_what_does_not_exist_is_404(backend: Backend) -> None:
    client = await backend.start()

    await expect_failure(
        await restart(client, "jobs/compute-nope"), 404, "job compute-nope not found"
    )
    await expect_failure(
        await restart(client, "batches/batch-nope"), 404, "batch batch-nope not found"
    )
    await expect_failure(
        await restart(client, "batches/batch-nope/jobs/x"), 404, "batch batch-nope not found"
    )


async def test_a_batch_restart_reruns_its_ended_jobs_and_leaves_running_ones_alone(
    backend: Backend,
) -> None:
    client = await backend.start()
    response = await client.post(
        "/api/v1/batches",
        json={
            "jobScheduleDescriptions": [
                {"payload": "a"},
                {"payload": "b"},
                {"payload": "c", **shell("sleep 100000")},
            ],
            "defaultRadixJobComponentConfig": shell(f"sleep 1; {backend.returning_payload()}"),
        },
    )
    assert response.status == 200, await response.text()
    batch = await response.json()
    name = batch["name"]
    first, second, running = (job["name"] for job in batch["jobStatuses"])
    for job in (first, second):
        await wait_for_status(client, job, "Succeeded", TIMEOUT_SECONDS)
    await wait_for_status(client, running, "Running", TIMEOUT_SECONDS)

    await expect_restarted(
        await restart(client, f"batches/{name}"), f"batch {name} was successfully restarted"
    )
    for job in (first, second):
        await wait_for_attempts(client, job, "Succeeded", 2)
    short = first.removeprefix(f"{name}-")
    await expect_restarted(
        await restart(client, f"batches/{name}/jobs/{short}"),
        f"job {first} in batch {name} was successfully restarted",
    )
    await wait_for_attempts(client, first, "Succeeded", 3)

    jobs = {
        job["name"]: job
        for job in (await (await client.get(f"/api/v1/batches/{name}")).json())["jobStatuses"]
    }
    assert [len(jobs[job]["podStatuses"]) for job in (first, second, running)] == [3, 2, 1]
    assert jobs[running]["status"] == "Running" and "restart" not in jobs[running]
    assert await result_of(client, f"batches/{name}/jobs/{second}") == (200, b"b")
    await expect_failure(
        await restart(client, f"batches/{name}/jobs/{running}"),
        400,
        f"cannot restart the job {running} with the status Running",
    )
    assert (await client.post(f"/api/v1/batches/{name}/stop")).status == 200


async def test_a_batch_with_no_ended_job_cannot_be_restarted_400(backend: Backend) -> None:
    client = await backend.start()
    response = await client.post(
        "/api/v1/batches",
        json={"jobScheduleDescriptions": [shell("sleep 100000")]},
    )
    batch = await response.json()
    await wait_for_status(client, batch["jobStatuses"][0]["name"], "Running", TIMEOUT_SECONDS)

    await expect_failure(
        await restart(client, f"batches/{batch['name']}"),
        400,
        f"cannot restart the batch {batch['name']} with the status Active",
    )
    assert (await client.post(f"/api/v1/batches/{batch['name']}/stop")).status == 200


async def test_a_restart_needs_nothing_a_scheduler_keeps_in_memory(backend: Backend) -> None:
    first = await backend.start()
    job = await post_job(
        first, {"payload": PAYLOAD, **shell(f"sleep 1; {backend.returning_payload()}")}
    )
    name = job["name"]
    await wait_for_status(first, name, "Succeeded", TIMEOUT_SECONDS)
    await first.close()

    second = await backend.start()
    await expect_restarted(
        await restart(second, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    restarted = await wait_for_attempts(second, name, "Succeeded", 2)
    await second.close()

    third = await backend.start()
    assert await job_status(third, name) == restarted
    assert await result_of(third, f"jobs/{name}") == (200, PAYLOAD.encode())


# -- on Kubernetes: what a restart leaves ----------------------------------------------------------

RESTART_RECORD = "restart-"


def _owners(obj: JSON | None) -> list[str]:
    assert obj is not None
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or ()]


def leftovers(kube: FakeKube, name: str) -> list[str]:
    """What a user could trip over after the restart of job `name`: orphans and records."""
    job = kube.get("Job", NAMESPACE, name)
    if job is None:
        return [f"job {name} is gone"]
    uid = job["metadata"]["uid"]
    found = [f"{problem}" for problem in Census.of(kube).incomplete()]
    found += [
        f"pod {pod['metadata']['name']} is not the new Job's"
        for pod in kube.list("Pod", NAMESPACE, f"job-name={name}")
        if _owners(pod) != [uid]
    ]
    # The Secret and the Service are the anchor's, untouched; the anchor is the new Job's.
    anchor = kube.get("ConfigMap", NAMESPACE, anchor_name(name))
    if anchor is None or _owners(anchor) != [uid]:
        found.append(f"the anchor of job {name} is not owned by the new Job")
    else:
        for kind, owned in (("Secret", payload_secret_name(name)), ("Service", name)):
            if _owners(kube.get(kind, NAMESPACE, owned)) != [anchor["metadata"]["uid"]]:
                found.append(f"{kind} {owned} is not owned by the job's anchor")
    found += [
        f"restart record {record['metadata']['name']} remains"
        for record in kube.list("ConfigMap", NAMESPACE, SELECTOR)
        if record["metadata"]["name"].startswith(RESTART_RECORD)
    ]
    return found


async def test_a_restart_hands_the_secret_and_service_to_the_new_job_and_leaves_no_orphan(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    job = await post_job(client, {"payload": PAYLOAD, **shell("sleep 1; exit 0")})
    name = job["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    old = kube.get("Job", NAMESPACE, name)
    assert old is not None
    secret = kube.get("Secret", NAMESPACE, payload_secret_name(name))
    service = kube.get("Service", NAMESPACE, name)
    kube.clear_audit()

    await expect_restarted(
        await restart(client, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    await wait_for_attempts(client, name, "Succeeded", 2)

    async def settled() -> bool:
        return not leftovers(kube, name)

    await wait_until(settled, TIMEOUT_SECONDS)
    new = kube.get("Job", NAMESPACE, name)
    assert new is not None and new["metadata"]["uid"] != old["metadata"]["uid"]
    assert new["spec"]["template"]["spec"] == old["spec"]["template"]["spec"]
    kept = kube.get("Secret", NAMESPACE, payload_secret_name(name))
    assert kept is not None and secret is not None
    assert (kept["metadata"]["uid"], kept["data"]) == (secret["metadata"]["uid"], secret["data"])
    # Neither was written: the restart handed over their anchor.
    assert kube.get("Service", NAMESPACE, name) == service
    written = {(e.verb, e.resource) for e in kube.audit if e.verb in ("patch", "update")}
    assert written == {("patch", "jobs"), ("patch", "configmaps")}
    # Deleting the job now takes what it owns with it.
    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200

    async def all_gone() -> bool:
        return not any(
            kube.get(kind, NAMESPACE, owned)
            for kind, owned in (
                ("Secret", payload_secret_name(name)),
                ("Service", name),
                ("ConfigMap", anchor_name(name)),
            )
        )

    await wait_until(all_gone, TIMEOUT_SECONDS)


async def test_a_second_restart_while_one_is_under_way_is_409(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    name = (await post_job(client, shell("sleep 1; exit 0")))["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    held = kube.faults.hold("DELETE", rf"/jobs/{name}$")
    first = asyncio.create_task(restart(client, f"jobs/{name}"))
    await held.wait_arrived(TIMEOUT_SECONDS)

    await expect_failure(
        await restart(client, f"jobs/{name}"),
        409,
        f"a restart of job {name} is already under way",
    )
    held.release()
    await expect_restarted(await first, f"job {name} was successfully restarted")
    await wait_for_attempts(client, name, "Succeeded", 2)


async def test_a_stop_during_a_restart_wins_over_its_start(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    name = (await post_job(client, shell("sleep 1; exit 0")))["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    start = kube.faults.hold("PATCH", rf"/jobs/{name}$")
    restarting = asyncio.create_task(restart(client, f"jobs/{name}"))
    await start.wait_arrived(TIMEOUT_SECONDS)
    await wait_for_status(client, name, "Waiting", TIMEOUT_SECONDS)

    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    start.release()
    await expect_restarted(await restarting, f"job {name} was successfully restarted")

    stopped = await wait_for_status(client, name, "Stopped", TIMEOUT_SECONDS)
    assert len(stopped["podStatuses"]) == 1  # the attempt before the restart, and no new one


# -- on Kubernetes: a scheduler killed in the middle of a restart ---------------------------------


@dataclass(frozen=True)
class Step:
    id: str
    method: str
    path: str  # `{name}` is the job's
    landed: bool  # the held request reaches the API server after the kill (else it is lost)


STEPS = [
    Step("record-post", "POST", r"/configmaps$", landed=True),
    # The old Job's mark (its patch names its field manager) and the record's word of it.
    Step("old-job-mark", "PATCH", r"/jobs/{name}\?", landed=False),
    Step("old-job-mark-landed", "PATCH", r"/jobs/{name}\?", landed=True),
    Step("record-marked-patch", "PATCH", r"/configmaps/restart-{name}$", landed=False),
    Step("old-job-delete", "DELETE", r"/jobs/{name}$", landed=False),
    Step("new-job-post", "POST", r"/jobs$", landed=True),
    Step("new-job-post-lost", "POST", r"/jobs$", landed=False),
    Step("anchor-patch", "PATCH", r"/configmaps/{name}-anchor$", landed=False),
    Step("anchor-patch-landed", "PATCH", r"/configmaps/{name}-anchor$", landed=True),
    Step("old-pod-delete", "DELETE", r"/pods/{name}-", landed=True),
    Step("start-patch", "PATCH", r"/jobs/{name}$", landed=False),
    Step("record-delete", "DELETE", r"/configmaps/restart-{name}$", landed=False),
]


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def _wait_for_job(
    http: aiohttp.ClientSession, scheduler: SchedulerProcess, name: str, attempts: int
) -> JSON:
    found: JSON = {}

    async def done() -> bool:
        nonlocal found
        status, found = await _get(http, f"{scheduler.url}/api/v1/jobs/{name}")
        pods = found.get("podStatuses") or () if status == 200 else ()
        return found.get("status") == "Succeeded" and len(pods) == attempts

    try:
        await wait_until(done, 60.0)
    except AssertionError:
        raise AssertionError(f"job {name}: {found}\n{scheduler.log_tail()}") from None
    return found


@pytest.mark.timeout(120)
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.id)
async def test_a_kill_at_any_step_of_a_restart_is_finished_by_the_next_scheduler(
    step: Step, kube: FakeKube, launch: Launch, http: aiohttp.ClientSession
) -> None:
    first = await launch()
    body = {
        "payload": PAYLOAD,
        **shell("sleep 1; cat /compute/args/payload > /dev/termination-log"),
    }
    async with http.post(f"{first.url}/api/v1/jobs", data=json.dumps(body)) as response:
        assert response.status == 200, await response.text()
        name = (await response.json())["name"]
    before = await _wait_for_job(http, first, name, 1)
    hold = kube.faults.hold(step.method, step.path.format(name=name))
    restarting = asyncio.create_task(http.post(f"{first.url}/api/v1/jobs/{name}/restart"))
    await hold.wait_arrived(TIMEOUT_SECONDS)

    await first.kill()
    with pytest.raises(aiohttp.ClientError):
        await restarting  # the client never got an answer
    if step.landed:
        hold.release()  # the request goes on to the API server, though its sender is dead
    else:
        hold.drop()
    second = await launch()

    after = await _wait_for_job(http, second, name, 2)
    assert after["podStatuses"][0] == before["podStatuses"][0]
    assert after["restart"] is not None and after["created"] == before["created"]
    async with http.get(f"{second.url}/api/v1/jobs/{name}/result") as response:
        assert (response.status, await response.read()) == (200, PAYLOAD.encode())

    async def settled() -> bool:
        return not leftovers(kube, name)

    try:
        await wait_until(settled, 60.0)
    except AssertionError:
        raise AssertionError(f"{leftovers(kube, name)}\n{second.log_tail()}") from None
