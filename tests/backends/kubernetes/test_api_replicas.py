"""Several schedulers in one namespace: replicas of one job's scheduler see and act on each
other's jobs; another job's scheduler sees none of them. Kubernetes only: on the local backend two
schedulers cannot share a state dir, so each sees only its own jobs (tests/backends/local has a
second scheduler on one state dir refused)."""

from __future__ import annotations

from tests.api.calls import (
    SHORT,
    batch_of,
    expect_bad_request,
    expect_failure,
    expect_stopped_answer,
    job_statuses,
    listed,
    post_batch,
    running_job,
    stop,
    wait_for_batch,
)
from tests.conftest import NAMESPACE, ClientFactory, post_job, wait_for_status, wait_until
from tests.fakekube import FakeKube


async def test_a_second_replica_sees_jobs_created_by_the_first(
    scheduler_factory: ClientFactory,
) -> None:
    one, two = await scheduler_factory(), await scheduler_factory()
    name = (await post_job(one))["name"]
    await wait_for_status(two, name, "Succeeded")
    assert (await two.delete(f"/api/v1/jobs/{name}")).status == 200

    async def gone_from_one() -> bool:
        return (await one.get(f"/api/v1/jobs/{name}")).status == 404

    await wait_until(gone_from_one)


async def test_jobs_of_another_scheduler_in_the_namespace_are_invisible_and_untouched(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    compute, etl = await scheduler_factory("compute"), await scheduler_factory("etl")
    theirs = (await post_job(etl))["name"]
    ours = (await post_job(compute))["name"]
    assert await listed(compute, "/api/v1/jobs") == [ours]
    assert (await compute.get(f"/api/v1/jobs/{theirs}")).status == 404
    await expect_failure(await compute.delete(f"/api/v1/jobs/{theirs}"), 404, "NotFound")
    assert kube.get("Job", NAMESPACE, theirs) is not None


async def test_a_second_scheduler_shows_the_same_stopped_job(
    scheduler_factory: ClientFactory,
) -> None:
    one, two = await scheduler_factory(), await scheduler_factory()
    name = await running_job(one)
    await expect_stopped_answer(await stop(one, name), name)
    seen_by_one = await wait_for_status(one, name, "Stopped")
    seen_by_two = await wait_for_status(two, name, "Stopped")
    assert seen_by_two["ended"] == seen_by_one["ended"]
    # The second one knows it is stopped: it refuses to stop it again.
    await expect_bad_request(await stop(two, name), name, "Stopped")


async def test_a_second_scheduler_shows_every_job_of_a_batch_whose_start_failed_once(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    one, two = await scheduler_factory(), await scheduler_factory()
    # The batch is committed; starting its first job fails once: the start is tried again.
    kube.faults.fail("PATCH", r"/jobs/batch-", status=500, times=1)
    created = await post_batch(one, batch_of(SHORT, SHORT))
    name = created["name"]

    async def two_sees_both_jobs() -> bool:
        response = await two.get(f"/api/v1/batches/{name}")
        return response.status == 200 and len((await response.json())["jobStatuses"]) == 2

    await wait_until(two_sees_both_jobs)
    done = await wait_for_batch(two, name, lambda b: job_statuses(b) == ["Succeeded", "Succeeded"])
    assert done["status"] == "Completed"
