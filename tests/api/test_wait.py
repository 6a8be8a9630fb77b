"""`GET ...?wait=SECONDS` of a job, a batch and a batch's job, on both backends: the answer comes
when the job (every job of the batch) has ended, or when the wait runs out, with the body a GET
gives then. A wait makes no request to the API server, outlives a watch's reconnect, and ends
when its client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from scheduler.api.keys import BATCHES, VIEW, WAITING
from scheduler.api.leaving import CLIENT_CHECK_SECONDS
from scheduler.domain.waiting import Waiting
from tests.api.calls import (
    LONG,
    batch_of,
    expect_failure,
    post_batch,
    running_job,
)
from tests.conftest import (
    ClientFactory,
    job_status,
    make_app,
    make_local_app,
    make_settings,
    ok_json,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import Client
from tests.fakekube import FakeKube

# Three seconds of real time on either backend's test clock (`sleep N` lasts N * 0.05 s).
THREE_SECONDS = {"command": ["sh", "-c", "sleep 60; exit 0"]}
# Far longer than any of these tests: what a wait that ends early has not waited for.
LONG_WAIT = 120
ENDED = {"Succeeded", "Failed", "Stopped"}


def waiters(client: Client) -> int:
    count: int = client.app[WAITING].count
    return count


async def waiting_gauge(client: Client) -> float:
    """`job_scheduler_waiting_requests` as /metrics shows it."""
    text = await (await client.get("/metrics")).text()
    found = re.search(r"^job_scheduler_waiting_requests (\S+)$", text, re.MULTILINE)
    assert found is not None, "the gauge is on /metrics"
    return float(found.group(1))


def waiting_for(client: Client, path: str, seconds: int = LONG_WAIT) -> asyncio.Task[Any]:
    """`GET path?wait=seconds`, started; once the scheduler has its waiter, the test goes on."""
    return asyncio.create_task(client.get(path, params={"wait": str(seconds)}))


async def until_waiters(client: Client, count: int) -> None:
    async def reached() -> bool:
        return waiters(client) == count

    await wait_until(reached)


async def timed(client: Client, path: str, wait: int, method: str = "GET") -> tuple[Any, float]:
    """The answer to `METHOD path?wait=wait`, and the seconds it took to come."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.request(method, path, params={"wait": str(wait)})
    return response, loop.time() - started


# -- a job --------------------------------------------------------------------------------------


async def test_a_wait_on_an_ended_job_answers_at_once_with_the_body_of_a_get(
    client: Client,
) -> None:
    name = (await post_job(client, {"command": ["sh", "-c", "exit 0"]}))["name"]
    ended = await wait_for_status(client, name, "Succeeded")
    response, seconds = await timed(client, f"/api/v1/jobs/{name}", LONG_WAIT)
    assert await ok_json(response) == ended
    assert seconds < 5


async def test_a_wait_answers_when_the_job_ends_well_before_the_wait_runs_out(
    client: Client,
) -> None:
    name = (await post_job(client, THREE_SECONDS))["name"]
    await wait_for_status(client, name, "Running")
    started = asyncio.get_running_loop().time()
    waited = waiting_for(client, f"/api/v1/jobs/{name}")
    await until_waiters(client, 1)
    assert await waiting_gauge(client) == 1
    found = await ok_json(await waited)
    assert found["status"] == "Succeeded" and found["ended"] is not None
    assert asyncio.get_running_loop().time() - started < LONG_WAIT / 4
    assert found == await job_status(client, name)
    assert waiters(client) == 0 and await waiting_gauge(client) == 0


async def test_a_wait_answers_when_the_job_is_stopped(client: Client) -> None:
    name = await running_job(client)
    waited = waiting_for(client, f"/api/v1/jobs/{name}")
    await until_waiters(client, 1)
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    assert (await ok_json(await waited))["status"] == "Stopped"


async def test_a_wait_that_runs_out_answers_200_with_the_unchanged_body(client: Client) -> None:
    name = await running_job(client)
    before = await job_status(client, name)
    response, seconds = await timed(client, f"/api/v1/jobs/{name}", 1)
    assert await ok_json(response) == before
    assert seconds >= 1
    assert waiters(client) == 0


async def test_a_job_deleted_while_waited_on_is_404_as_a_get_would_be(client: Client) -> None:
    name = await running_job(client)
    waited = waiting_for(client, f"/api/v1/jobs/{name}")
    await until_waiters(client, 1)
    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200
    await expect_failure(await waited, 404, "NotFound", f"job {name} not found")
    assert waiters(client) == 0


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/jobs/compute-nope", "job compute-nope not found"),
        ("/api/v1/batches/batch-compute-nope", "batch batch-compute-nope not found"),
        ("/api/v1/batches/batch-compute-nope/jobs/x", "batch batch-compute-nope not found"),
    ],
)
async def test_a_wait_on_what_does_not_exist_is_404_at_once(
    client: Client, path: str, message: str
) -> None:
    response, seconds = await timed(client, path, LONG_WAIT)
    await expect_failure(response, 404, "NotFound", message)
    assert seconds < 5


async def test_wait_0_and_a_head_answer_at_once(client: Client) -> None:
    name = await running_job(client)
    zero, seconds = await timed(client, f"/api/v1/jobs/{name}", 0)
    assert (await ok_json(zero))["status"] == "Running" and seconds < 5
    head, seconds = await timed(client, f"/api/v1/jobs/{name}", LONG_WAIT, "HEAD")
    assert head.status == 200 and seconds < 5
    assert waiters(client) == 0


# -- a batch and a batch's job ---------------------------------------------------------------


async def test_a_wait_on_a_batch_answers_once_every_job_has_ended_and_one_on_its_job_at_its_end(
    client: Client,
) -> None:
    batch = await post_batch(client, batch_of(THREE_SECONDS, LONG))
    name = batch["name"]
    first, second = (job["name"] for job in batch["jobStatuses"])
    on_batch = waiting_for(client, f"/api/v1/batches/{name}")
    short = first.removeprefix(f"{name}-")
    on_first = waiting_for(client, f"/api/v1/batches/{name}/jobs/{short}")
    await until_waiters(client, 2)

    assert (await ok_json(await on_first))["status"] == "Succeeded"
    assert not on_batch.done() and waiters(client) == 1
    stopped = await client.post(f"/api/v1/batches/{name}/jobs/{second}/stop")
    assert stopped.status == 200
    found = await ok_json(await on_batch)
    assert [job["status"] for job in found["jobStatuses"]] == ["Succeeded", "Stopped"]
    assert found["ended"] is not None
    assert waiters(client) == 0


async def test_a_wait_on_a_batch_that_runs_out_answers_its_unchanged_status(
    client: Client,
) -> None:
    batch = await post_batch(client, batch_of(LONG))
    name, job = batch["name"], batch["jobStatuses"][0]["name"]
    await wait_for_status(client, job, "Running")
    for path in (f"/api/v1/batches/{name}", f"/api/v1/batches/{name}/jobs/{job}"):
        before = await ok_json(await client.get(path))
        response, seconds = await timed(client, path, 1)
        assert await ok_json(response) == before
        assert seconds >= 1


# -- what a wait may be -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("soon", "'soon' is not a whole number of seconds"),
        ("-1", "'-1' is not a whole number of seconds"),
        ("1.5", "'1.5' is not a whole number of seconds"),
        ("", "'' is not a whole number of seconds"),
        ("\uff11", "'\uff11' is not a whole number of seconds"),  # a fullwidth 1, not ASCII
        ("301", "301 is above this scheduler's limit of 300 seconds"),
    ],
)
async def test_a_bad_wait_is_422_naming_it(client: Client, value: str, fragment: str) -> None:
    name = await running_job(client)
    for path in (f"/api/v1/jobs/{name}", "/api/v1/batches/b", "/api/v1/batches/b/jobs/j"):
        response = await client.get(path, params={"wait": value})
        await expect_failure(response, 422, "Invalid", f"wait is invalid: {fragment}")


async def test_the_longest_wait_is_a_setting(start: ClientFactory) -> None:
    client = await start(SCHEDULER_MAX_WAIT_SECONDS="2")
    name = await running_job(client)
    response = await client.get(f"/api/v1/jobs/{name}?wait=3")
    await expect_failure(response, 422, "Invalid", "3 is above this scheduler's limit of 2 seconds")
    assert (await client.get(f"/api/v1/jobs/{name}?wait=2")).status == 200


# -- a client that leaves ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[aiohttp.ClientSession]:
    """The app served as in production: aiohttp's test server cancels a handler whose client
    leaves, the production server does not."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            yield session
    finally:
        await runner.cleanup()


@pytest.fixture
def production_app(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> web.Application:
    settings = make_settings(tmp_path, SCHEDULER_BACKEND=backend)
    if backend == "local":
        return make_local_app(settings, tmp_path / "state")
    return make_app(request.getfixturevalue("kube"), settings)


async def test_a_client_that_leaves_frees_its_waiter_at_once(
    production_app: web.Application,
) -> None:
    async with served(production_app) as session:

        async def ready() -> bool:
            async with session.get("/readyz") as response:
                return response.status == 200

        await wait_until(ready)
        async with session.post("/api/v1/jobs", json=LONG) as created:
            name = (await created.json())["name"]
        waiting = production_app[WAITING]
        leaving = asyncio.create_task(session.get(f"/api/v1/jobs/{name}?wait={LONG_WAIT}"))

        async def waited_on() -> bool:
            return waiting.count == 1

        await wait_until(waited_on)
        leaving.cancel()  # the client gives up: its connection closes

        async def freed() -> bool:
            async with session.get("/metrics") as response:
                text = await response.text()
            return waiting.count == 0 and "job_scheduler_waiting_requests 0.0" in text

        # One look at the connection, and the waiter is gone.
        await wait_until(freed, timeout=CLIENT_CHECK_SECONDS + 1)
        async with session.post(f"/api/v1/jobs/{name}/stop") as stopped:
            assert stopped.status == 200


# -- the wait's clock ---------------------------------------------------------------------------


@dataclasses.dataclass
class _Timer:
    at: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class TurnedClock:
    """Timers that fire only when the test turns the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_Timer] = []

    def call_later(self, seconds: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self.now + seconds, callback)
        self.timers.append(timer)
        return timer

    def turn(self, seconds: float) -> None:
        self.now += seconds
        for timer in self.timers:
            if timer.at <= self.now and not timer.cancelled:
                timer.cancelled = True
                timer.callback()

    @property
    def set(self) -> int:
        return sum(not timer.cancelled for timer in self.timers)


@pytest.fixture
def clock() -> TurnedClock:
    return TurnedClock()


def waiting_on(client: Client, clock: TurnedClock) -> Waiting:
    """Waiters of the scheduler's view and batches, on the test's clock."""
    return Waiting(client.app[VIEW], client.app[BATCHES], call_later=clock.call_later)


async def settled() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_wait_runs_out_when_its_seconds_have_passed_and_not_before(
    client: Client, clock: TurnedClock
) -> None:
    name = await running_job(client)
    waiting = waiting_on(client, clock)
    waited = asyncio.create_task(waiting.job(name, 300))
    await settled()
    clock.turn(299.5)
    await settled()
    assert not waited.done() and waiting.count == 1
    clock.turn(0.5)
    await asyncio.wait_for(waited, 5)
    assert waiting.count == 0


async def test_a_wait_that_ends_early_leaves_no_timer_behind(
    client: Client, clock: TurnedClock
) -> None:
    name = await running_job(client)
    waiting = waiting_on(client, clock)
    waited = asyncio.create_task(waiting.job(name, 300))
    await settled()
    assert clock.set == 1
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    await asyncio.wait_for(waited, 10)
    assert clock.set == 0 and waiting.count == 0


async def test_a_scheduler_shutting_down_answers_its_waiters_at_once(
    client: Client, clock: TurnedClock
) -> None:
    name = await running_job(client)
    batch = (await post_batch(client, batch_of(LONG)))["name"]
    waiting = waiting_on(client, clock)
    waits = [
        asyncio.create_task(waiting.job(name, 300)),
        asyncio.create_task(waiting.batch(batch, 300)),
    ]
    await settled()
    assert waiting.count == 2
    waiting.release_all()
    await asyncio.wait_for(asyncio.gather(*waits), 5)
    await asyncio.wait_for(waiting.job(name, 300), 5)  # a later one does not wait either
    assert waiting.count == 0 and clock.set == 0


# -- the watch, and the API server, on Kubernetes -------------------------------------------------


@pytest.mark.parametrize("relisted", [False, True], ids=["resumed", "relisted"])
async def test_a_wait_outlives_a_watch_reconnect_and_hears_of_the_end_after_it(
    scheduler: Client, kube: FakeKube, relisted: bool
) -> None:
    name = (await post_job(scheduler, THREE_SECONDS))["name"]
    await wait_for_status(scheduler, name, "Running")
    waited = waiting_for(scheduler, f"/api/v1/jobs/{name}")
    await until_waiters(scheduler, 1)
    if relisted:
        kube.expire_history()  # the watch cannot resume: the scheduler lists again (410 Gone)
    await kube.drop_watches()
    assert waiters(scheduler) == 1
    assert (await ok_json(await waited))["status"] == "Succeeded"


# What the scheduler calls on its own every few seconds (or more), waiters or not, is LISTs: the
# recovery sweep's (ConfigMaps, Jobs), the Idempotency-Key expiry's (ConfigMaps), the usage
# sampler's (PodMetrics). At most one round of them fits in a wait of two seconds.
PERIODIC_ROUND = 4


async def test_waiting_clients_make_no_request_to_the_api_server(
    scheduler: Client, kube: FakeKube
) -> None:
    name = await running_job(scheduler)
    await asyncio.sleep(0.5)  # what the start of the job made the scheduler do is done
    since = len(kube.audit)
    waits = [waiting_for(scheduler, f"/api/v1/jobs/{name}", 2) for _ in range(50)]
    await until_waiters(scheduler, 50)
    for response in await asyncio.gather(*waits):
        assert (await ok_json(response))["status"] == "Running"
    calls = [(entry.verb, entry.resource, entry.name) for entry in kube.audit[since:]]
    assert all(verb == "list" for verb, _, _ in calls), calls
    assert len(calls) <= PERIODIC_ROUND, calls
