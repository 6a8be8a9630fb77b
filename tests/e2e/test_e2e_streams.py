"""Streams through a broken connection, against a real cluster (or the fake): a proxy between a
scheduler and the API server cuts a followed log's connection mid-stream, then takes the API
server away for 10 s while one client follows a log and another holds `/events`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.e2e.conftest import E2E_MARKS, TEST_TIMEOUT_SECONDS, Client, Cluster, wait_until
from tests.e2e.proxy import CuttingProxy
from tests.e2e.test_e2e_jobs import FINISHED, follow, post_job

pytestmark = E2E_MARKS

OUTAGE_SECONDS = 10.0
READY_AGAIN_SECONDS = 5.0


def printing(cluster: Cluster, lines: int, gap_seconds: float) -> list[str]:
    """A command that prints `line-1` to `line-N`, one every `gap_seconds` of real time."""
    # The fake's clock runs ten times faster than a real one.
    gap = gap_seconds * (10 if cluster.is_fake else 1)
    script = f"; sleep {gap:g}; ".join(f"echo line-{n}" for n in range(1, lines + 1))
    return ["sh", "-c", script]


async def read_log(client: Client, name: str) -> list[str]:
    response = await client.get(f"/api/v1/jobs/{name}/logs", params={"follow": "true"})
    assert response.status == 200, await response.text()
    return (await response.text()).splitlines()


async def test_a_followed_log_cut_three_times_loses_and_repeats_no_line(
    proxied_scheduler: Client, proxy: CuttingProxy, cluster: Cluster
) -> None:
    name = (await post_job(proxied_scheduler, {"command": printing(cluster, 20, 0.5)}))["name"]
    await follow(proxied_scheduler, name, {"Running", *FINISHED})
    reading = asyncio.create_task(read_log(proxied_scheduler, name))
    for _ in range(3):
        await asyncio.sleep(2.0)
        proxy.cut()
    lines = await asyncio.wait_for(reading, TEST_TIMEOUT_SECONDS / 2)
    assert lines == [f"line-{n}" for n in range(1, 21)]


async def test_streams_go_on_after_a_10_second_api_server_outage(
    proxied_scheduler: Client, proxy: CuttingProxy, cluster: Cluster
) -> None:
    followed = (await post_job(proxied_scheduler, {"command": printing(cluster, 25, 1.0)}))["name"]
    seconds = 5 * (10 if cluster.is_fake else 1)
    ending = (await post_job(proxied_scheduler, {"command": ["sh", "-c", f"sleep {seconds}"]}))[
        "name"
    ]
    await follow(proxied_scheduler, followed, {"Running", *FINISHED})
    await follow(proxied_scheduler, ending, {"Running", *FINISHED})
    events = await proxied_scheduler.get("/api/v1/events")
    assert events.status == 200
    reading = asyncio.create_task(read_log(proxied_scheduler, followed))
    await asyncio.sleep(1.0)
    proxy.down()  # `ending` ends during the outage
    await asyncio.sleep(OUTAGE_SECONDS)
    proxy.up()

    async def ready() -> bool:
        return (await proxied_scheduler.get("/readyz")).status == 200

    await wait_until(ready, READY_AGAIN_SECONDS, "ready again after the outage")
    lines = await asyncio.wait_for(reading, TEST_TIMEOUT_SECONDS / 2)
    assert lines == [f"line-{n}" for n in range(1, 26)]
    # The event stream tells of the end that came during the outage, or says to start over.
    await asyncio.wait_for(_end_or_reset(events, ending), 60)


async def _end_or_reset(events: aiohttp.ClientResponse, job: str) -> None:
    event: str | None = None
    while line := await events.content.readline():
        text = line.decode().rstrip("\n")
        if text.startswith("event:"):
            event = text.partition(":")[2].strip()
            if event == "reset":
                return
        elif text.startswith("data:"):
            body: dict[str, Any] = json.loads(text.partition(":")[2])
            statuses = [j["status"] for j in body.get("jobStatuses") or []]
            if body.get("name") == job and statuses and statuses[0] in FINISHED:
                return
    raise AssertionError("the event stream ended before it told of the job's end")
