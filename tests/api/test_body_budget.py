"""Large request bodies share a budget of memory: one that does not fit waits its turn, first
come first served, and small ones never wait. Bodies are read without a copy kept on the
request, and a body sent in chunks is refused past the limit as one with a Content-Length."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from scheduler.api.memory import BodyBudget
from tests.api.calls import expect_failure
from tests.conftest import ClientFactory

MIB = 1024 * 1024


async def _enter(budget: BodyBudget, size: int, entered: list[int], leave: asyncio.Event) -> None:
    async with budget.holding(size):
        entered.append(size)
        await leave.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_bodies_that_fit_together_are_held_at_once() -> None:
    budget = BodyBudget(10)
    entered: list[int] = []
    leave = asyncio.Event()
    tasks = [asyncio.create_task(_enter(budget, size, entered, leave)) for size in (4, 6)]
    await _settle()
    assert entered == [4, 6]
    leave.set()
    await asyncio.gather(*tasks)
    assert budget.held_bytes == 0


async def test_a_body_that_does_not_fit_waits_and_later_ones_wait_behind_it() -> None:
    budget = BodyBudget(10)
    entered: list[int] = []
    first_leaves, others_leave = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_enter(budget, 8, entered, first_leaves))
    await _settle()
    # 5 does not fit beside 8; 1 would, but it came later, so it waits behind 5.
    later = [asyncio.create_task(_enter(budget, size, entered, others_leave)) for size in (5, 1)]
    await _settle()
    assert entered == [8]
    first_leaves.set()
    await _settle()
    assert entered == [8, 5, 1]
    others_leave.set()
    await asyncio.gather(first, *later)
    assert budget.held_bytes == 0


async def test_a_body_larger_than_the_budget_waits_until_it_is_alone() -> None:
    budget = BodyBudget(10)
    entered: list[int] = []
    small_leaves, large_leaves = asyncio.Event(), asyncio.Event()
    small = asyncio.create_task(_enter(budget, 3, entered, small_leaves))
    await _settle()
    large = asyncio.create_task(_enter(budget, 50, entered, large_leaves))
    await _settle()
    assert entered == [3]
    small_leaves.set()
    await _settle()
    assert entered == [3, 50]
    assert budget.held_bytes == 10
    large_leaves.set()
    await asyncio.gather(small, large)
    assert budget.held_bytes == 0


async def test_a_client_that_leaves_while_waiting_frees_its_place() -> None:
    budget = BodyBudget(10)
    entered: list[int] = []
    first_leaves, others_leave = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(_enter(budget, 8, entered, first_leaves))
    await _settle()
    gone = asyncio.create_task(_enter(budget, 9, entered, others_leave))
    behind = asyncio.create_task(_enter(budget, 2, entered, others_leave))
    await _settle()
    gone.cancel()
    await _settle()
    # With the 9 gone, the 2 fits beside the 8 at once.
    assert entered == [8, 2]
    first_leaves.set()
    others_leave.set()
    await asyncio.gather(first, behind)
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert budget.held_bytes == 0


async def test_large_posts_beyond_the_budget_all_get_their_jobs(start: ClientFactory) -> None:
    client = await start(SCHEDULER_BODY_BUDGET_BYTES=str(MIB))
    body = json.dumps({"payload": "x" * (700 * 1024)}).encode()
    responses = await asyncio.gather(
        *(client.post("/api/v1/jobs", data=body, headers={"Content-Type": "application/json"})
          for _ in range(4))
    )  # fmt: skip
    assert [response.status for response in responses] == [200] * 4
    names = {(await response.json())["name"] for response in responses}
    listed = {job["name"] for job in await (await client.get("/api/v1/jobs")).json()}
    assert names <= listed and len(names) == 4


async def test_a_body_sent_in_chunks_past_the_limit_is_413(start: ClientFactory) -> None:
    client = await start(SCHEDULER_MAX_REQUEST_BYTES=str(2 * MIB))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"payload": "'
        for _ in range(40):
            yield b"x" * (64 * 1024)
        yield b'"}'

    response = await client.post(
        "/api/v1/jobs", data=chunks(), headers={"Content-Type": "application/json"}
    )
    await expect_failure(response, 413, "RequestEntityTooLarge", "2097152")
    listed = await (await client.get("/api/v1/jobs")).json()
    assert listed == []
