"""A job's result (`GET .../result`) and restarts (`POST .../restart`) end to end, on both
backends: the fake Kubernetes API server (a result is the container's termination message) and
the local backend (the file named by `RADIX_RESULT_PATH`). What a restart leaves in the cluster,
and a scheduler killed at each step of one, is in
tests/backends/kubernetes/test_restart_in_the_cluster.py."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scheduler.api.keys import VIEW
from scheduler.backends.base import ContainerState, PodRecord
from scheduler.backends.kubernetes.records import attempt_summary, previous_attempts
from scheduler.backends.kubernetes.restarting import replacement_job
from scheduler.backends.local.runner import read_result
from scheduler.domain.results import latest_attempt
from scheduler.domain.status import derive_status
from scheduler.models import JobStatus, JobStatusEnum
from tests.conftest import (
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import JSON, T0, Client, at, job_record, pod_record
from tests.fakekube.script import Cat, Echo, Write, parse_script

# Generous, for a busy machine: only a hung job should ever reach it.
TIMEOUT_SECONDS = 30.0
PAYLOAD = "the same payload"


@dataclass(frozen=True)
class JobFiles:
    """Where a job writes its result and finds its payload on one backend."""

    result_file: str
    payload_file: str

    def writing(self, text: str) -> str:
        """A statement that writes `text` (and a newline) as the job's result."""
        return f"echo '{text}' > {self.result_file}"

    def returning_payload(self) -> str:
        """A statement that makes the job's payload its result."""
        return f"cat {self.payload_file} > {self.result_file}"


@pytest.fixture
def files(backend: str) -> JobFiles:
    if backend == "kubernetes":
        return JobFiles("/dev/termination-log", "/compute/args/payload")
    return JobFiles('"$RADIX_RESULT_PATH"', '"$RADIX_PAYLOAD_PATH/payload"')


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

FAILED_STATE = ContainerState("terminated", "Error", "it broke\nand more", 3, T0, T0)


def a_pod(name: str, created: int, state: ContainerState, **changes: Any) -> PodRecord:
    return pod_record(
        name=name,
        uid=name,
        created=at(created),
        phase="Failed" if state.state == "terminated" else "Running",
        started=at(created),
        container=state,
        **changes,
    )


def test_a_restarted_job_shows_its_earlier_attempts_first_and_they_decide_nothing() -> None:
    earlier = a_pod("compute-1-a", 1, FAILED_STATE)
    restarted = job_record(restarted=at(10), previous_attempts=(earlier,))

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
    restarted = job_record(previous_attempts=(earlier,))

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


async def test_a_result_is_served_once_the_job_has_succeeded(
    start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    job = await post_job(client, shell(f"sleep 1; {files.writing('the answer is 42')}"))
    await wait_for_status(client, job["name"], "Succeeded", TIMEOUT_SECONDS)

    response = await client.get(f"/api/v1/jobs/{job['name']}/result")

    assert response.status == 200, await response.text()
    assert response.content_type == "application/octet-stream"
    assert await response.read() == b"the answer is 42\n"


async def test_a_result_is_there_for_a_failed_job_too_and_its_status_says_it(
    start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    body = shell(f"{files.writing('no input file')}; exit 3", backoffLimit=0)
    job = await post_job(client, body)
    failed = await wait_for_attempts(client, job["name"], "Failed", 1)

    assert await result_of(client, f"jobs/{job['name']}") == (200, b"no input file\n")
    assert failed["message"].endswith("the container exited with code 3: no input file")
    assert failed["podStatuses"][0]["statusMessage"] == (
        "the container exited with code 3: no input file"
    )


async def test_a_result_keeps_its_last_4_kib_and_statuses_show_only_its_first_line_cut(
    start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    long_line = "x" * 300 + "y" * 4796
    job = await post_job(client, shell(files.writing(long_line)))
    succeeded = await wait_for_status(client, job["name"], "Succeeded", TIMEOUT_SECONDS)

    status, result = await result_of(client, f"jobs/{job['name']}")

    assert status == 200
    assert result == (long_line + "\n").encode()[-4096:]
    shown = succeeded["podStatuses"][0]["statusMessage"]
    assert shown == "y" * 199 + "\u2026"


async def test_a_job_that_wrote_no_result_answers_404(start: ClientFactory) -> None:
    client = await start()
    job = await post_job(client, shell("sleep 1; exit 0"))
    await wait_for_status(client, job["name"], "Succeeded", TIMEOUT_SECONDS)

    await expect_failure(
        await client.get(f"/api/v1/jobs/{job['name']}/result"),
        404,
        f"job {job['name']} wrote no result",
    )


async def test_a_running_job_has_no_result_yet_409(start: ClientFactory, files: JobFiles) -> None:
    client = await start()
    job = await post_job(client, shell(f"{files.writing('partial')}; sleep 100000"))
    await wait_for_status(client, job["name"], "Running", TIMEOUT_SECONDS)

    await expect_failure(
        await client.get(f"/api/v1/jobs/{job['name']}/result"),
        409,
        f"job {job['name']} has not ended (its status is Running): its result is there once it has",
    )
    assert (await client.post(f"/api/v1/jobs/{job['name']}/stop")).status == 200


async def test_the_result_of_an_unknown_job_is_404(start: ClientFactory) -> None:
    client = await start()

    await expect_failure(
        await client.get("/api/v1/jobs/compute-nope/result"), 404, "job compute-nope not found"
    )
    await expect_failure(
        await client.get("/api/v1/batches/batch-nope/jobs/x/result"),
        404,
        "batch batch-nope not found",
    )


async def test_a_batch_job_s_result_by_its_full_and_its_short_name(
    start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    response = await client.post(
        "/api/v1/batches",
        json={
            "jobScheduleDescriptions": [{"payload": "first"}, {"payload": "second"}],
            "defaultRadixJobComponentConfig": shell(files.returning_payload()),
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
    start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    job = await post_job(
        client, {"payload": PAYLOAD, **shell(f"sleep 1; {files.returning_payload()}")}
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


async def test_a_failed_job_restarted_counts_its_failures_afresh(
    start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    job = await post_job(client, shell(f"{files.writing('failed')}; exit 3", backoffLimit=1))
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


async def test_a_stopped_job_restarted_runs_to_its_end(
    start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    job = await post_job(client, shell(f"sleep 40; {files.writing('done')}"))
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


async def test_a_job_that_has_not_ended_cannot_be_restarted_400(start: ClientFactory) -> None:
    client = await start()
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


async def test_restarting_what_does_not_exist_is_404(start: ClientFactory) -> None:
    client = await start()

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
    start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    response = await client.post(
        "/api/v1/batches",
        json={
            "jobScheduleDescriptions": [
                {"payload": "a"},
                {"payload": "b"},
                {"payload": "c", **shell("sleep 100000")},
            ],
            "defaultRadixJobComponentConfig": shell(f"sleep 1; {files.returning_payload()}"),
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


async def test_a_batch_with_no_ended_job_cannot_be_restarted_400(start: ClientFactory) -> None:
    client = await start()
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


async def test_a_restart_needs_nothing_a_scheduler_keeps_in_memory(
    start: ClientFactory, files: JobFiles
) -> None:
    first = await start()
    job = await post_job(
        first, {"payload": PAYLOAD, **shell(f"sleep 1; {files.returning_payload()}")}
    )
    name = job["name"]
    await wait_for_status(first, name, "Succeeded", TIMEOUT_SECONDS)
    await first.close()

    second = await start()
    await expect_restarted(
        await restart(second, f"jobs/{name}"), f"job {name} was successfully restarted"
    )
    restarted = await wait_for_attempts(second, name, "Succeeded", 2)
    await second.close()

    third = await start()
    assert await job_status(third, name) == restarted
    assert await result_of(third, f"jobs/{name}") == (200, PAYLOAD.encode())
