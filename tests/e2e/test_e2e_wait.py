"""A client that waits on the server instead of polling, against a real cluster (or the fake): one
`GET ...?wait=` per job or batch answers at its end, goes on through cut connections between the
scheduler and the API server, and answers when the wait runs out with the job's status then."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.e2e.conftest import E2E_MARKS, Client, Cluster
from tests.e2e.proxy import CuttingProxy
from tests.e2e.test_e2e_jobs import FINISHED, JOB_SECONDS, follow, post_job, sh

pytestmark = E2E_MARKS

# Longer than any job here takes, image pull included; within the scheduler's limit (300).
WAIT_SECONDS = int(JOB_SECONDS)


def seconds_of_work(cluster: Cluster, seconds: int) -> int:
    """`sleep` seconds that last `seconds` of real time: the fake's clock runs ten times faster."""
    return seconds * 10 if cluster.is_fake else seconds


async def waited(client: Client, path: str, seconds: int = WAIT_SECONDS) -> tuple[Any, float]:
    """The body of `GET path?wait=seconds` and how long it took to come."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.get(path, params={"wait": str(seconds)})
    assert response.status == 200, await response.text()
    return await response.json(), loop.time() - started


async def test_one_waiting_get_answers_when_the_job_ends_instead_of_a_polling_loop(
    scheduler: Client, cluster: Cluster
) -> None:
    name = (await post_job(scheduler, {"command": sh(seconds_of_work(cluster, 3), 0)}))["name"]
    found, seconds = await waited(scheduler, f"/api/v1/jobs/{name}")
    assert found["status"] == "Succeeded" and found["ended"] is not None
    assert seconds < WAIT_SECONDS


async def test_one_waiting_get_answers_when_every_job_of_a_batch_has_ended(
    scheduler: Client, cluster: Cluster
) -> None:
    jobs = [{"command": sh(seconds_of_work(cluster, n), 0)} for n in (1, 3)]
    body = json.dumps({"jobScheduleDescriptions": jobs})
    response = await scheduler.post("/api/v1/batches", data=body)
    assert response.status == 200, await response.text()
    name = (await response.json())["name"]
    found, seconds = await waited(scheduler, f"/api/v1/batches/{name}")
    assert [job["status"] for job in found["jobStatuses"]] == ["Succeeded", "Succeeded"]
    assert found["ended"] is not None and seconds < WAIT_SECONDS


async def test_a_wait_that_runs_out_answers_the_running_job(
    scheduler: Client, cluster: Cluster
) -> None:
    name = (await post_job(scheduler, {"command": sh(seconds_of_work(cluster, 600), 0)}))["name"]
    await follow(scheduler, name, {"Running"})
    found, seconds = await waited(scheduler, f"/api/v1/jobs/{name}", 2)
    assert found["status"] == "Running" and seconds >= 2
    assert (await scheduler.post(f"/api/v1/jobs/{name}/stop")).status == 200
    await follow(scheduler, name, FINISHED)


async def test_a_wait_goes_on_through_cut_connections_to_the_api_server(
    proxied_scheduler: Client, proxy: CuttingProxy, cluster: Cluster
) -> None:
    body = {"command": sh(seconds_of_work(cluster, 6), 0)}
    name = (await post_job(proxied_scheduler, body))["name"]
    await follow(proxied_scheduler, name, {"Running", *FINISHED})
    waiting = asyncio.create_task(waited(proxied_scheduler, f"/api/v1/jobs/{name}"))
    for _ in range(2):
        await asyncio.sleep(1.0)
        proxy.cut()  # the scheduler's watches break off; they resume
    found, _ = await asyncio.wait_for(waiting, WAIT_SECONDS + 10)
    assert found["status"] == "Succeeded"
