"""A job's attempts outlive their pods in the cluster: what the Job's annotations and its
`<job>-attempts` ConfigMap keep when a job is stopped, when its pod is deleted by hand (gracefully
or by force), when it is restarted, when two replicas keep it at once, when its logs outgrow
what is kept; what goes with the job; what keeping costs, and keeping turned off. The attempts as
a user sees them on both backends are in tests/api/test_kept_attempts.py."""

from __future__ import annotations

import base64
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.api.calls import expect_stopped_answer, stop
from tests.api.test_results_and_restart import restart, wait_for_attempts
from tests.backends.kubernetes.kept import (
    attempt_record,
    attempt_records,
    attempts_kept,
    kept_attempts,
    kept_summaries,
)
from tests.backends.kubernetes.test_api_calls import writes
from tests.backends.kubernetes.test_api_faults import force_delete_pod
from tests.backends.kubernetes.test_api_objects import pods_of
from tests.conftest import (
    NAMESPACE,
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import JSON, Client
from tests.fakekube import FakeKube, kubelet
from tests.fakekube.kinds import kind_named
from tests.fakekube.options import DeleteOptions

TIMESTAMPED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (.*)")
# Attempts that run a while (`sleep 24` lasts 1.2 s on the fake's clock): each one's log tells
# it apart, and a retry is created in a later second than the attempt it follows.
LASTING = "sleep 24"
RUNS_A_WHILE = f"echo one $HOSTNAME; echo two; {LASTING}; echo three"


def shell(script: str, **fields: Any) -> JSON:
    return {"command": ["sh", "-c", script], **fields}


async def posted(client: Client, body: JSON) -> str:
    return str((await post_job(client, body))["name"])


@dataclass(frozen=True)
class Log:
    """An answer to `GET .../logs`: its status, its text and our two headers."""

    status: int
    text: str
    source: str | None = None  # "record": the attempt's record serves it, its pod is gone
    truncated: str | None = None  # "true": the record keeps only its tail

    @property
    def message(self) -> str:
        message: str = json.loads(self.text)["message"]
        return message


async def log_of(client: Client, name: str, attempt: int, **params: str) -> Log:
    query = {"attempt": str(attempt), **params}
    response = await client.get(f"/api/v1/jobs/{name}/logs", params=query)
    return Log(
        response.status,
        await response.text(),
        response.headers.get("X-Log-Source"),
        response.headers.get("X-Log-Truncated"),
    )


async def result_of(client: Client, name: str) -> tuple[int, str]:
    response = await client.get(f"/api/v1/jobs/{name}/result")
    return response.status, await response.text()


def attempts_of(status: JSON) -> list[tuple[Any, ...]]:
    return [
        (pod["name"], pod["replicaStatus"]["status"], pod["reason"], pod["exitCode"])
        for pod in status["podStatuses"]
    ]


def pod_names(status: JSON) -> list[str]:
    return [pod["name"] for pod in status["podStatuses"]]


async def restarted(client: Client, start: ClientFactory) -> Client:
    """The scheduler stopped and another started on the same cluster."""
    await client.close()
    return await start()


async def printed(client: Client, name: str, text: str) -> None:
    """Until the job's first attempt has printed `text` (read from its pod)."""

    async def has_printed() -> bool:
        log = await log_of(client, name, 0)
        return log.status == 200 and text in log.text

    await wait_until(has_printed, timeout=15)


def only_pod(kube: FakeKube, name: str) -> JSON:
    [pod] = pods_of(kube, name)
    return pod


async def a_second_after_its_creation(pod: JSON) -> None:
    """Until the wall clock is past the second `pod` was created in: a pod created from now on
    comes after it in the job's attempts (see LASTING)."""
    created = datetime.fromisoformat(pod["metadata"]["creationTimestamp"]).timestamp()

    async def past() -> bool:
        return time.time() >= created + 1

    await wait_until(past)


async def pods_gone(kube: FakeKube, name: str) -> None:
    async def gone() -> bool:
        return not pods_of(kube, name)

    await wait_until(gone, timeout=15)


def delete_pod(kube: FakeKube, pod: str, grace_seconds: int) -> None:
    """`kubectl delete pod` (`--grace-period=0 --force` for 0)."""
    options = DeleteOptions(grace_period_seconds=grace_seconds)
    kube.registry.delete(kind_named("Pod"), NAMESPACE, pod, options)


async def delete_pods(kube: FakeKube, name: str) -> None:
    """Delete the job's pods (ended ones, which nothing else deletes) and wait until they are
    gone: from then on their attempts' records serve their logs."""
    for pod in pods_of(kube, name):
        delete_pod(kube, pod["metadata"]["name"], grace_seconds=0)
    await pods_gone(kube, name)


def job_uid(kube: FakeKube, name: str) -> str:
    job = kube.get("Job", NAMESPACE, name)
    assert job is not None
    return str(job["metadata"]["uid"])


def record_size(record: JSON) -> int:
    """A ConfigMap's size as the API server counts it: its data, and its binary data decoded."""
    size = sum(len(value.encode()) for value in (record.get("data") or {}).values())
    binary = (record.get("binaryData") or {}).values()
    return size + sum(len(base64.b64decode(value)) for value in binary)


# -- a stop -----------------------------------------------------------------------------------


async def test_a_stopped_job_keeps_its_attempt_on_its_job_and_its_log_in_a_configmap_it_owns(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    name = await posted(client, shell("echo first; echo second; sleep 1000"))
    await printed(client, name, "second")
    pod = only_pod(kube, name)["metadata"]["name"]
    await expect_stopped_answer(await stop(client, name), name)
    await wait_for_status(client, name, "Stopped")
    await pods_gone(kube, name)

    kept = kept_summaries(kube, name)
    assert list(kept) == [pod]
    assert (kept[pod]["state"], kept[pod]["reason"]) == ("terminated", "Stopped")
    record = attempt_record(kube, name)
    assert record is not None
    metadata = record["metadata"]
    [owner] = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", name, job_uid(kube, name))
    assert owner["controller"] is True
    assert metadata["labels"]["radix.equinor.com/attempts"] == "true"
    assert (list(record["data"]), list(record["binaryData"])) == ([f"{pod}.json"], [f"{pod}.log"])

    async def shows_what_it_kept(scheduler: Client) -> None:
        status = await job_status(scheduler, name)
        assert attempts_of(status) == [(pod, "Stopped", "Stopped", 143)]  # SIGTERM
        assert await log_of(scheduler, name, 0) == Log(200, "first\nsecond\n", "record")
        assert await log_of(scheduler, name, 0, tail="1") == Log(200, "second\n", "record")
        stamped = await log_of(scheduler, name, 0, timestamps="true")
        assert (stamped.status, stamped.source) == (200, "record")
        lines = [TIMESTAMPED.fullmatch(line) for line in stamped.text.splitlines()]
        assert [line.group(2) if line else None for line in lines] == ["first", "second"]
        code, message = await result_of(scheduler, name)
        assert code == 404 and "wrote no result" in message

    await shows_what_it_kept(client)
    await shows_what_it_kept(await restarted(client, scheduler_factory))


# -- a pod deleted by hand --------------------------------------------------------------------


async def test_a_pod_deleted_gracefully_during_a_run_is_a_failed_attempt_whose_log_is_kept(
    scheduler_factory: ClientFactory, kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its container takes half a second to exit on SIGTERM. (The fake's takes 5 ms, and its pod
    # is gone the moment it has: sooner than anyone could read its log.)
    monkeypatch.setattr(kubelet, "POD_STOP_SECONDS", 10)
    client = await scheduler_factory()
    name = await posted(client, shell(RUNS_A_WHILE, backoffLimit=1))
    await printed(client, name, "two")
    pod = only_pod(kube, name)
    await a_second_after_its_creation(pod)
    first = pod["metadata"]["name"]
    delete_pod(kube, first, grace_seconds=30)
    second = pod_names(await wait_for_attempts(client, name, "Succeeded", 2))[1]
    expected = (
        [(first, "Failed", "Error", 143), (second, "Succeeded", "Completed", 0)],
        Log(200, f"one {first}\ntwo\n", "record"),
        Log(200, f"one {second}\ntwo\nthree\n"),
    )

    async def both_attempts(scheduler: Client) -> tuple[Any, ...]:
        status = await job_status(scheduler, name)
        logs = [await log_of(scheduler, name, attempt) for attempt in (0, 1)]
        return attempts_of(status), *logs

    async def shown() -> bool:
        return await both_attempts(client) == expected

    await wait_until(shown)  # its end is kept in the background
    assert await both_attempts(await restarted(client, scheduler_factory)) == expected


async def test_a_pod_force_deleted_during_a_run_is_listed_deleted_and_its_log_said_not_kept(
    scheduler: Client, kube: FakeKube
) -> None:
    name = await posted(scheduler, shell(RUNS_A_WHILE, backoffLimit=1))
    await printed(scheduler, name, "two")
    pod = only_pod(kube, name)
    await a_second_after_its_creation(pod)
    first = pod["metadata"]["name"]
    # Its log goes with it before the scheduler can read it.
    reads = kube.faults.hold("GET", rf"/pods/{first}/log", times=None)
    force_delete_pod(kube, first)
    await kube.wait_for("Pod", NAMESPACE, first, lambda found: found is None)
    reads.release()

    status = await wait_for_attempts(scheduler, name, "Succeeded", 2)
    second = pod_names(status)[1]
    assert attempts_of(status) == [
        (first, "Failed", "Deleted", 0),
        (second, "Succeeded", "Completed", 0),
    ]
    assert "deleted" in status["podStatuses"][0]["statusMessage"]
    assert kept_summaries(kube, name)[first]["kept"] == "status"
    log = await log_of(scheduler, name, 0)
    assert log.status == 404, log
    assert "was not kept" in log.message and first in log.message
    assert await log_of(scheduler, name, 1) == Log(200, f"one {second}\ntwo\nthree\n")


# -- a restart --------------------------------------------------------------------------------


async def test_a_job_restarted_twice_keeps_every_run_s_log_and_its_record_goes_to_the_newest_job(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    script = "echo run $HOSTNAME; echo result $HOSTNAME > /dev/termination-log"
    name = await posted(client, shell(script))
    await wait_for_status(client, name, "Succeeded")
    first_uid = job_uid(kube, name)
    for runs in (2, 3):
        assert (await restart(client, f"jobs/{name}")).status == 200
        await wait_for_attempts(client, name, "Succeeded", runs)
    await attempts_kept(kube, name)  # the last run's, on the newest Job
    pods = pod_names(await job_status(client, name))
    assert len(set(pods)) == 3
    record = attempt_record(kube, name)
    assert record is not None
    [owner] = record["metadata"]["ownerReferences"]
    assert owner["uid"] == job_uid(kube, name) != first_uid

    async def shows_every_run(scheduler: Client) -> None:
        status = await job_status(scheduler, name)
        assert attempts_of(status) == [(pod, "Succeeded", "Completed", 0) for pod in pods]
        for attempt, pod in enumerate(pods[:2]):
            assert await log_of(scheduler, name, attempt) == Log(200, f"run {pod}\n", "record")
        assert (await log_of(scheduler, name, 2)).text == f"run {pods[2]}\n"
        assert await result_of(scheduler, name) == (200, f"result {pods[2]}\n")

    await shows_every_run(client)
    await shows_every_run(await restarted(client, scheduler_factory))


# -- what goes with the job -------------------------------------------------------------------


async def ended_and_kept(client: Client, kube: FakeKube) -> str:
    name = await posted(client, shell("echo hi; sleep 1"))
    await wait_for_status(client, name, "Succeeded")
    await attempts_kept(kube, name)
    assert attempt_records(kube) == [f"{name}-attempts"]
    return name


async def record_gone(kube: FakeKube, name: str) -> None:
    """Until the garbage collector has taken the job's record with its Job."""
    await kube.wait_for("ConfigMap", NAMESPACE, f"{name}-attempts", lambda found: found is None)


async def test_deleting_a_job_takes_its_attempt_record_along(
    scheduler: Client, kube: FakeKube
) -> None:
    name = await ended_and_kept(scheduler, kube)
    assert (await scheduler.delete(f"/api/v1/jobs/{name}")).status == 200
    await record_gone(kube, name)


async def test_a_job_deleted_in_the_cluster_takes_its_attempt_record_along(
    scheduler: Client, kube: FakeKube
) -> None:
    name = await ended_and_kept(scheduler, kube)
    # As `kubectl delete job` does it.
    kube.registry.delete(kind_named("Job"), NAMESPACE, name, DeleteOptions("Background"))
    await record_gone(kube, name)


# -- two replicas -----------------------------------------------------------------------------


async def the_same_on_both(one: Client, two: Client, name: str, attempts: int) -> None:
    statuses = [await job_status(replica, name) for replica in (one, two)]
    assert statuses[0]["podStatuses"] == statuses[1]["podStatuses"]
    for attempt in range(attempts):
        assert await log_of(one, name, attempt) == await log_of(two, name, attempt)


async def test_two_replicas_keep_one_record_of_a_job_that_ends_though_their_writes_conflict(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    one, two = await scheduler_factory(), await scheduler_factory()
    name = await posted(one, shell(f"echo $HOSTNAME; {LASTING}; exit 1", backoffLimit=1))
    await wait_for_status(two, name, "Running")
    # The first conditional write of each kind is refused, as when another writer came first.
    kube.clear_audit()
    kube.faults.fail("PATCH", rf"/jobs/{name}$", status=409)
    kube.faults.fail("PATCH", rf"/configmaps/{name}-attempts$", status=409)
    pods = pod_names(await wait_for_attempts(one, name, "Failed", 2))
    await attempts_kept(kube, name, 2)
    refused = [(e.verb, e.resource) for e in kube.audit if e.status_code == 409]
    assert ("patch", "jobs") in refused and ("patch", "configmaps") in refused
    await delete_pods(kube, name)

    assert attempt_records(kube) == [f"{name}-attempts"]
    record = attempt_record(kube, name)
    assert record is not None
    assert sorted(record["binaryData"]) == sorted(f"{pod}.log" for pod in pods)
    assert kept_attempts(kube, name) == dict.fromkeys(pods, "final")
    await the_same_on_both(one, two, name, 2)
    for attempt, pod in enumerate(pods):
        assert await log_of(two, name, attempt) == Log(200, f"{pod}\n", "record")


async def test_two_replicas_keep_one_record_of_a_stopped_job(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    one, two = await scheduler_factory(), await scheduler_factory()
    name = await posted(one, shell("echo first; echo second; sleep 1000"))
    await printed(one, name, "second")
    await wait_for_status(two, name, "Running")
    pod = only_pod(kube, name)["metadata"]["name"]
    kube.clear_audit()
    await expect_stopped_answer(await stop(two, name), name)
    await wait_for_status(one, name, "Stopped")
    await pods_gone(kube, name)

    # Both replicas see its attempt end: one record is made, once.
    made = [(e.verb, e.resource) for e in kube.audit if e.status_code == 201]
    assert made == [("create", "configmaps")]
    assert attempt_records(kube) == [f"{name}-attempts"]
    assert list(kept_summaries(kube, name)) == [pod]
    await the_same_on_both(one, two, name, 1)
    assert await log_of(one, name, 0) == Log(200, "first\nsecond\n", "record")


# -- logs that outgrow what is kept -----------------------------------------------------------


async def test_a_log_longer_than_is_kept_is_served_as_its_last_whole_lines_and_said_truncated(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(SCHEDULER_ATTEMPT_LOG_BYTES="1024")
    # 100 lines of 32 bytes each (with their newline): the last 32 make 1024.
    lines = [f"line {index:03d} {'x' * 22}" for index in range(100)]
    name = await posted(client, shell("; ".join(f"echo {line}" for line in lines)))
    await wait_for_status(client, name, "Succeeded")
    await attempts_kept(kube, name)
    await delete_pods(kube, name)

    tail = "".join(f"{line}\n" for line in lines[-32:])
    assert await log_of(client, name, 0) == Log(200, tail, "record", "true")
    # A tail within what is kept is whole.
    assert await log_of(client, name, 0, tail="5") == Log(200, tail[-5 * 32 :], "record")


def noise(size: int) -> list[str]:
    """About `size` characters of text that hardly compresses (base64 of random bytes), in
    lines of 76."""
    text = base64.b64encode(random.Random(21).randbytes(size * 3 // 4)).decode()
    return [text[start : start + 76] for start in range(0, len(text), 76)]


async def test_the_oldest_attempt_s_log_is_dropped_to_keep_the_record_within_its_size(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(SCHEDULER_ATTEMPT_RECORD_BYTES="65536")
    # Each attempt prints 48 KB that compress to some 37 KB: two do not fit in 64 KiB.
    lines = noise(48_000)
    script = "; ".join([*(f"echo {line}" for line in lines), LASTING, "exit 1"])
    name = await posted(client, shell(script, backoffLimit=1))
    await wait_for_attempts(client, name, "Failed", 2)
    await attempts_kept(kube, name, 2)
    await delete_pods(kube, name)

    record = attempt_record(kube, name)
    assert record is not None and record_size(record) <= 65536
    dropped = await log_of(client, name, 0)
    assert dropped.status == 404, dropped
    assert "was dropped" in dropped.message and "at most 64 KiB" in dropped.message
    whole = "".join(f"{line}\n" for line in lines)
    assert await log_of(client, name, 1) == Log(200, whole, "record")


# -- what keeping costs, and keeping turned off -----------------------------------------------


def written(kube: FakeKube) -> list[tuple[str, str, int]]:
    return [(e.verb, e.resource, e.status_code) for e in writes(kube)]


async def test_a_job_that_runs_once_costs_the_keeper_one_configmap_and_one_job_patch(
    scheduler: Client, kube: FakeKube
) -> None:
    kube.clear_audit()
    name = await posted(scheduler, shell("echo hi; sleep 1"))
    creation = written(kube)
    await wait_for_status(scheduler, name, "Succeeded")
    await attempts_kept(kube, name)
    assert written(kube) == [*creation, ("create", "configmaps", 201), ("patch", "jobs", 200)]


async def test_with_keeping_off_a_job_that_runs_once_costs_nothing_beyond_its_creation(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(SCHEDULER_KEEP_ATTEMPTS="false")
    kube.clear_audit()
    first = await posted(client, shell("echo hi; sleep 1"))
    creation = written(kube)
    await wait_for_status(client, first, "Succeeded")
    # Another job runs after it: time enough for a keeper to have written, were there one.
    second = await posted(client, shell("echo hi; sleep 1"))
    await wait_for_status(client, second, "Succeeded")
    assert written(kube) == creation * 2
    assert attempt_records(kube) == []
    assert kept_summaries(kube, first) == kept_summaries(kube, second) == {}


async def test_with_keeping_off_a_stopped_job_s_attempts_go_with_their_pods(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory(SCHEDULER_KEEP_ATTEMPTS="false")
    name = await posted(client, shell("echo first; sleep 1000"))
    await printed(client, name, "first")
    await expect_stopped_answer(await stop(client, name), name)
    await pods_gone(kube, name)

    async def no_attempt_left() -> bool:
        status = await job_status(client, name)
        return bool(status["status"] == "Stopped" and status["podStatuses"] == [])

    await wait_until(no_attempt_left)
    assert (await log_of(client, name, 0)).status == 404
    assert attempt_records(kube) == []
    assert kept_summaries(kube, name) == {}
