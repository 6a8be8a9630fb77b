"""`/api/v1/batches` end to end, on both backends: the scheduler app over the fake Kubernetes API
server and over the local backend's processes.

Each job of a batch is the batch's defaults merged under the job's own options. What a batch is
in the cluster (a ConfigMap that owns its Jobs), that a refused batch makes no write, and how a
batch survives a failing API server, is in tests/backends/kubernetes.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.calls import (
    FAILING,
    LONG,
    SHORT,
    batch_of,
    completed_or_pruned,
    expect_failure,
    get_batch,
    job_statuses,
    listed,
    post_batch,
    wait_for_batch,
)
from tests.conftest import (
    TEST_CONFIG,
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import Client

ONE_MIB = 1024 * 1024


def write_radixconfig(tmp_path: Path, **job_keys: Any) -> Path:
    """tests/radixconfig.yaml with extra keys on the `compute` job."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    compute = next(job for job in config["spec"]["jobs"] if job["name"] == "compute")
    compute.update(job_keys)
    path = tmp_path / "radixconfig-variant.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def nothing_listed(client: Client) -> bool:
    return not await listed(client, "/api/v1/batches") and not await listed(client, "/api/v1/jobs")


# -- creating ---------------------------------------------------------------------------------


async def test_a_batch_is_created_with_its_ids_echoed_and_radix_names(client: Client) -> None:
    created = await post_batch(
        client, batch_of({"jobId": "a"}, {"jobId": "b"}, {}, batchId="my-batch")
    )
    name = created["name"]
    assert re.fullmatch(r"batch-compute-\d{14}-[a-z]{8}", name)
    assert (created["batchType"], created["batchId"]) == ("batch", "my-batch")
    # Waiting, unless a job has started by the time the answer is made.
    assert created["status"] in ("Waiting", "Active")
    assert created["created"] is not None and created["ended"] is None
    jobs = created["jobStatuses"]
    assert sorted(str(job.get("jobId")) for job in jobs) == ["None", "a", "b"]
    assert len({job["name"] for job in jobs}) == 3
    for job in jobs:
        assert re.fullmatch(rf"{name}-[a-z]{{8}}", job["name"])
        assert (job["batchName"], job["batchId"]) == (name, "my-batch")
    # Listed and readable by name at once.
    assert await listed(client, "/api/v1/batches") == [name]
    assert (await get_batch(client, name))["batchId"] == "my-batch"


async def test_job_statuses_follow_the_order_of_the_job_descriptions(client: Client) -> None:
    ids = [f"job-{index}" for index in range(8)]
    created = await post_batch(client, batch_of(*({"jobId": i} for i in ids)))
    assert [job["jobId"] for job in created["jobStatuses"]] == ids
    batch = await get_batch(client, created["name"])
    assert [job["jobId"] for job in batch["jobStatuses"]] == ids


# -- reading ----------------------------------------------------------------------------------


async def test_get_batches_is_an_empty_list_not_null(client: Client) -> None:
    for path in ("/api/v1/batches", "/api/v1/batches/"):
        response = await client.get(path)
        assert response.status == 200
        assert await response.text() == "[]"


async def test_a_batch_job_is_found_by_its_short_and_full_name_and_through_jobs(
    client: Client,
) -> None:
    created = await post_batch(client, batch_of({"jobId": "j1"}, batchId="b1"))
    batch, full = created["name"], created["jobStatuses"][0]["name"]
    short = full.removeprefix(f"{batch}-")
    assert len(short) == 8
    for job_name in (short, full):
        response = await client.get(f"/api/v1/batches/{batch}/jobs/{job_name}")
        assert response.status == 200, await response.text()
        found = await response.json()
        assert (found["name"], found["jobId"], found["batchName"]) == (full, "j1", batch)
    through_jobs = await job_status(client, full)
    assert (through_jobs["batchName"], through_jobs["batchId"]) == (batch, "b1")


async def test_get_jobs_lists_single_jobs_only(client: Client) -> None:
    single = (await post_job(client))["name"]
    await post_batch(client, batch_of({}, {}))
    assert await listed(client, "/api/v1/jobs") == [single]
    batches = await (await client.get("/api/v1/batches")).json()
    assert len(batches) == 1 and len(batches[0]["jobStatuses"]) == 2


async def test_unknown_batches_and_batch_jobs_are_404(client: Client) -> None:
    created = await post_batch(client, batch_of({}))
    batch = created["name"]
    single = (await post_job(client))["name"]
    unknown = "batch-compute-20240101000000-abcdefgh"
    for method, path in [
        ("GET", f"/api/v1/batches/{unknown}"),
        ("DELETE", f"/api/v1/batches/{unknown}"),
        ("POST", f"/api/v1/batches/{unknown}/stop"),
        ("GET", f"/api/v1/batches/{unknown}/jobs/abcdefgh"),
        ("POST", f"/api/v1/batches/{unknown}/jobs/abcdefgh/stop"),
        # A single job is not a batch.
        ("GET", f"/api/v1/batches/{single}"),
        # A batch that exists, a job that does not: 404, not Radix's 500.
        ("GET", f"/api/v1/batches/{batch}/jobs/abcdefgh"),
        ("GET", f"/api/v1/batches/{batch}/jobs/{batch}-abcdefgh"),
        ("POST", f"/api/v1/batches/{batch}/jobs/abcdefgh/stop"),
        # Another batch's job is not this batch's.
        ("GET", f"/api/v1/batches/{batch}/jobs/{single}"),
    ]:
        response = await client.request(method, path)
        await expect_failure(response, 404, "NotFound")


async def test_a_batch_is_active_while_a_job_runs_and_completed_when_all_ended(
    client: Client,
) -> None:
    created = await post_batch(client, batch_of(SHORT, LONG))
    name = created["name"]
    assert created["status"] in ("Waiting", "Active")
    active = await wait_for_batch(
        client, name, lambda b: sorted(job_statuses(b)) == ["Running", "Succeeded"]
    )
    assert active["status"] == "Active"
    assert active["started"] is not None and active["ended"] is None
    long_job = next(j["name"] for j in active["jobStatuses"] if j["status"] == "Running")
    response = await client.post(f"/api/v1/jobs/{long_job}/stop")
    assert response.status == 200, await response.text()
    done = await wait_for_batch(client, name, lambda b: b["status"] == "Completed")
    assert sorted(job_statuses(done)) == ["Stopped", "Succeeded"]
    assert done["ended"] is not None
    assert done["ended"] == max(job["ended"] for job in done["jobStatuses"])


async def test_batch_status_rules_of_the_radixconfig_decide_the_batch_status(
    start: ClientFactory, tmp_path: Path
) -> None:
    rules = [
        {"condition": "Any", "operator": "In", "jobStatuses": ["Failed"], "batchStatus": "Failed"},
        {
            "condition": "All",
            "operator": "In",
            "jobStatuses": ["Succeeded"],
            "batchStatus": "Succeeded",
        },
    ]
    config = write_radixconfig(tmp_path, batchStatusRules=rules)
    client = await start(RADIX_CONFIG_FILE=str(config))
    succeeding = (await post_batch(client, batch_of(SHORT, SHORT)))["name"]
    failing = (await post_batch(client, batch_of(FAILING, LONG)))["name"]
    done = await wait_for_batch(client, succeeding, lambda b: b["status"] == "Succeeded")
    assert job_statuses(done) == ["Succeeded", "Succeeded"]
    # Failed as soon as one job fails, though the other still runs.
    failed = await wait_for_batch(client, failing, lambda b: b["status"] == "Failed")
    assert sorted(job_statuses(failed)) == ["Failed", "Running"]


async def test_without_rules_a_batch_with_a_failed_job_is_completed(client: Client) -> None:
    name = (await post_batch(client, batch_of(FAILING, SHORT)))["name"]
    done = await wait_for_batch(client, name, lambda b: b["status"] == "Completed")
    assert sorted(job_statuses(done)) == ["Failed", "Succeeded"]
    assert done["failed"] == 1


# -- stopping ---------------------------------------------------------------------------------


async def test_stopping_a_batch_stops_its_unfinished_jobs(client: Client) -> None:
    name = (await post_batch(client, batch_of(SHORT, LONG, LONG)))["name"]
    await wait_for_batch(
        client, name, lambda b: sorted(job_statuses(b)) == ["Running", "Running", "Succeeded"]
    )
    response = await client.post(f"/api/v1/batches/{name}/stop")
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "Success"
    done = await wait_for_batch(
        client, name, lambda b: sorted(job_statuses(b)) == ["Stopped", "Stopped", "Succeeded"]
    )
    assert done["status"] == "Completed"
    # Nothing left to stop: 400, as for a finished job.
    await expect_failure(await client.post(f"/api/v1/batches/{name}/stop"), 400, "BadRequest", name)


async def test_stopping_one_job_of_a_batch_leaves_the_others_running(client: Client) -> None:
    created = await post_batch(client, batch_of(LONG, LONG))
    name = created["name"]
    first, second = (job["name"] for job in created["jobStatuses"])
    await wait_for_batch(client, name, lambda b: job_statuses(b) == ["Running", "Running"])
    short = first.removeprefix(f"{name}-")
    response = await client.post(f"/api/v1/batches/{name}/jobs/{short}/stop")
    assert response.status == 200, await response.text()
    await wait_for_status(client, first, "Stopped")
    assert (await job_status(client, second))["status"] == "Running"
    assert (await get_batch(client, name))["status"] == "Active"
    # By its full name too; a second stop of a stopped job is 400.
    await expect_failure(
        await client.post(f"/api/v1/batches/{name}/jobs/{first}/stop"), 400, "BadRequest"
    )


async def test_stop_all_batches_stops_every_batch_and_no_single_job(client: Client) -> None:
    single = (await post_job(client, LONG))["name"]
    names = [(await post_batch(client, batch_of(LONG)))["name"] for _ in range(2)]
    for name in names:
        await wait_for_batch(client, name, lambda b: job_statuses(b) == ["Running"])
    await wait_for_status(client, single, "Running")
    response = await client.post("/api/v1/batches/stop")
    assert response.status == 200, await response.text()
    assert (await response.json())["status"] == "Success"
    for name in names:
        await wait_for_batch(client, name, lambda b: job_statuses(b) == ["Stopped"])
    assert (await job_status(client, single))["status"] == "Running"
    # With nothing left to stop it is still 200.
    assert (await client.post("/api/v1/batches/stop")).status == 200


# -- deleting ---------------------------------------------------------------------------------


async def test_deleting_a_batch_answers_success_and_its_jobs_are_gone(client: Client) -> None:
    created = await post_batch(client, batch_of({"payload": "p1"}, {"payload": "p2", **LONG}))
    name = created["name"]
    await wait_for_batch(client, name, lambda b: "Running" in job_statuses(b))
    response = await client.delete(f"/api/v1/batches/{name}")
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "status": "Success",
        "message": f"batch {name} successfully deleted",
        "code": 200,
    }
    await expect_failure(await client.get(f"/api/v1/batches/{name}"), 404, "NotFound")
    assert await (await client.get("/api/v1/batches")).json() == []
    for job in created["jobStatuses"]:
        await expect_failure(await client.get(f"/api/v1/jobs/{job['name']}"), 404, "NotFound")


async def test_deleting_a_batch_job_through_jobs_is_422(client: Client) -> None:
    created = await post_batch(client, batch_of({}))
    job = created["jobStatuses"][0]["name"]
    await expect_failure(
        await client.delete(f"/api/v1/jobs/{job}"), 422, "Invalid", "not a single job"
    )
    assert (await get_batch(client, created["name"]))["jobStatuses"][0]["name"] == job


# -- refused batches create nothing -----------------------------------------------------------


async def test_an_empty_or_missing_job_list_is_422_and_creates_nothing(client: Client) -> None:
    message = "BatchScheduleDescription is invalid: empty job description list"
    for data in (b"", b"null", json.dumps(batch_of()).encode()):
        response = await client.post("/api/v1/batches", data=data)
        await expect_failure(response, 422, "Invalid", message)
    # Radix says "empty job description list" here too; we name the missing field.
    response = await client.post("/api/v1/batches", data=b"{}")
    await expect_failure(response, 422, "Invalid", "BatchScheduleDescription is invalid")
    assert await nothing_listed(client)


# Batch bodies that do not fit, each with what its 422 names.
UNFIT_BATCHES = [
    (b"{not json", "BatchScheduleDescription is invalid"),
    (b"[]", "BatchScheduleDescription is invalid"),
    (json.dumps({"jobScheduleDescriptions": {}}).encode(), "jobScheduleDescriptions"),
    (
        json.dumps(batch_of({}, {"timeLimitSeconds": 0})).encode(),
        "jobScheduleDescriptions.1.timeLimitSeconds",
    ),
    (
        json.dumps(batch_of({}, defaultRadixJobComponentConfig={"backoffLimit": -1})).encode(),
        "defaultRadixJobComponentConfig.backoffLimit",
    ),
    (json.dumps(batch_of(*([{}] * 501))).encode(), "jobScheduleDescriptions"),
]


@pytest.mark.parametrize(("body", "fragment"), UNFIT_BATCHES)
async def test_a_body_that_does_not_fit_is_422_and_creates_nothing(
    client: Client, body: bytes, fragment: str
) -> None:
    response = await client.post("/api/v1/batches", data=body)
    await expect_failure(response, 422, "Invalid", fragment)
    assert await nothing_listed(client)


async def test_a_batch_of_500_jobs_is_accepted(client: Client) -> None:
    created = await post_batch(client, batch_of(*([{}] * 500)))
    assert len(created["jobStatuses"]) == 500


async def test_a_payload_over_one_mib_is_413_naming_it_and_creates_nothing(client: Client) -> None:
    body = batch_of({"payload": "small"}, {"payload": "x" * (ONE_MIB + 1)})
    response = await client.post("/api/v1/batches", data=io.BytesIO(json.dumps(body).encode()))
    await expect_failure(
        response, 413, "RequestEntityTooLarge", "jobScheduleDescriptions[1].payload"
    )
    assert await nothing_listed(client)


async def test_a_request_over_the_body_limit_is_413_and_creates_nothing(
    start: ClientFactory,
) -> None:
    client = await start(SCHEDULER_MAX_REQUEST_BYTES=str(2 * ONE_MIB))
    # Every payload is under 1 MiB; together they are over the 2 MiB limit.
    body = batch_of(*({"payload": "x" * (ONE_MIB - 1024)} for _ in range(3)))
    response = await client.post("/api/v1/batches", data=io.BytesIO(json.dumps(body).encode()))
    await expect_failure(response, 413, "RequestEntityTooLarge")
    assert await nothing_listed(client)


async def test_a_payload_for_a_job_without_payload_path_is_422_and_creates_nothing(
    start: ClientFactory,
) -> None:
    etl = await start("etl")
    response = await etl.post("/api/v1/batches", json=batch_of({}, {"payload": "data"}))
    await expect_failure(response, 422, "Invalid", "jobScheduleDescriptions[1].payload")
    assert await nothing_listed(etl)


# -- history ----------------------------------------------------------------------------------


async def test_history_keeps_the_latest_succeeded_and_the_latest_other_batch(
    start: ClientFactory,
) -> None:
    client = await start(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1")
    single = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, single, "Succeeded")
    names: dict[str, str] = {}
    for key, jobs in [
        ("succeeded", (SHORT, SHORT)),
        ("failed", (FAILING, SHORT)),
        ("succeeded later", (SHORT,)),
    ]:
        names[key] = (await post_batch(client, batch_of(*jobs)))["name"]
        await wait_until(completed_or_pruned(client, names[key]))
    kept: list[str] = []

    async def pruned() -> bool:
        kept[:] = await listed(client, "/api/v1/batches")
        return len(kept) == 2

    await wait_until(pruned)
    # One of the two succeeded batches goes (their end times are whole seconds and may tie);
    # the batch with a failed job has a bucket of its own.
    assert names["failed"] in kept
    assert len(set(kept) & {names["succeeded"], names["succeeded later"]}) == 1
    # Batches do not count against single jobs.
    assert await listed(client, "/api/v1/jobs") == [single]
