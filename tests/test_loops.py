"""A background loop outlives every failure of its step: it logs it, waits the back-off (or its
interval), and goes on until cancelled or its step says there is nothing left to do."""

from __future__ import annotations

import asyncio
import logging

import pytest

from scheduler.backoff import Backoff
from scheduler.errors import SchedulerError
from scheduler.loops import Stop, forever, woken

log = logging.getLogger("tests.loops")


async def test_a_failing_step_is_logged_and_tried_again_until_it_stops_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[BaseException | None] = [
        SchedulerError("the API server is away"),
        RuntimeError("a bug"),
        None,
        Stop(),
    ]
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    with caplog.at_level(logging.WARNING, logger="tests.loops"):
        await asyncio.wait_for(forever("the test loop", step, log=log), 5)
    assert steps == 4
    warning, error = caplog.records
    assert warning.levelname == "WARNING"
    assert "the test loop failed" in warning.getMessage()
    assert "the API server is away" in warning.getMessage()
    assert error.levelname == "ERROR" and error.exc_info is not None


async def test_failures_wait_the_back_off_and_a_success_starts_it_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    results = iter([False, False, True, False, None])

    async def step() -> None:
        outcome = next(results)
        if outcome is None:
            raise Stop
        if not outcome:
            raise SchedulerError("down")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("scheduler.loops.asyncio.sleep", sleep)
    await forever("loop", step, log=log, backoff=Backoff(0.2, 4.0, rng=lambda: 1.0))
    assert waits == pytest.approx([0.2, 0.4, 0.0, 0.2])


async def test_a_cancelled_loop_ends_at_once() -> None:
    async def step() -> None:
        await asyncio.sleep(3600)

    task = asyncio.create_task(forever("loop", step, log=log, interval_seconds=1.0))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)


async def test_woken_says_whether_the_event_came_or_the_time_ran_out() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    event.set()
    assert await woken(event, 10) is True


async def test_a_cancellation_that_comes_as_the_event_is_set_is_not_lost() -> None:
    event = asyncio.Event()
    waiting = asyncio.create_task(woken(event, 10))
    await asyncio.sleep(0)
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
