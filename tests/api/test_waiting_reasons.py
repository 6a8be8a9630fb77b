"""Why a job waits, in its message: on Kubernetes what its pod is stuck on (no node fits it, its
image cannot be pulled), on the local backend its place in line with an estimated start, and on
both when a job held for its start time starts."""

from __future__ import annotations

import dataclasses
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler.api.keys import BACKEND, VIEW
from scheduler.backends.local.queue import LINE_SHOWN, about, duration, line_reason, ordinal
from scheduler.backends.local.schema import StoredJob
from tests.api.calls import LONG, SHORT, stop
from tests.conftest import ClientFactory, job_status, post_job, wait_for_status, wait_until
from tests.factories import JSON, T0, Client, job_request

# -- on Kubernetes ---------------------------------------------------------------------------------


async def message_becomes(client: Client, name: str, expected: str) -> JSON:
    """The job's status once its message is `expected`."""
    found: JSON = {}

    async def says_so() -> bool:
        nonlocal found
        found = await job_status(client, name)
        return found.get("message") == expected

    await wait_until(says_so, timeout=15)
    return found


async def test_a_job_no_node_has_room_for_says_so(scheduler: Client) -> None:
    body = {**SHORT, "resources": {"requests": {"cpu": "100m", "memory": "1Ti"}}}
    name = (await post_job(scheduler, body))["name"]

    status = await message_becomes(
        scheduler, name, "Unschedulable: 0/1 nodes are available: 1 Insufficient memory"
    )
    assert status["status"] == "Active"  # as in Radix: its pod exists, it is not running


async def test_a_job_whose_image_is_not_there_says_so(scheduler: Client) -> None:
    name = (await post_job(scheduler, {**SHORT, "image": "busybox:does-not-exist"}))["name"]

    status = await message_becomes(
        scheduler, name, 'ImagePullBackOff: image "busybox:does-not-exist" not found'
    )
    assert status["status"] == "Active"
    pod = status["podStatuses"][0]
    assert pod["replicaStatus"]["status"] == "Pending"
    assert pod["statusMessage"] == status["message"]


# -- on the local backend --------------------------------------------------------------------------

local_only = pytest.mark.skipif(sys.platform != "linux", reason="the local backend reads /proc")


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (101, "101st"),
        (111, "111th"),
    ],
)
def test_places_in_line_are_ordinals(number: int, expected: str) -> None:
    assert ordinal(number) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.2, "about 1 s"),
        (42, "about 42 s"),
        (150, "about 2 min"),
        (5400, "about 1.5 h"),
        (7200, "about 2 h"),
    ],
)
def test_an_estimate_is_rounded_as_a_person_would_say_it(seconds: float, expected: str) -> None:
    assert about(seconds) == expected


def test_a_place_in_line_says_how_many_run_at_once_and_when_it_may_start() -> None:
    assert line_reason(2, 4, []) == "2nd in line; 4 running at most"
    # The median of recent jobs' durations, times the jobs before it, shared by the slots.
    assert line_reason(2, 4, [50.0, 60.0, 3000.0]) == (
        "2nd in line; 4 running at most; starts in about 30 s"
    )
    assert line_reason(LINE_SHOWN + 1, 4, [60.0]) == (
        f"more than {LINE_SHOWN} in line; 4 running at most"
    )


def stored_job(**changes: Any) -> StoredJob:
    job = StoredJob(
        name="j",
        uid="u",
        seq=1,
        batch_name=None,
        batch_id=None,
        job_id=None,
        request=job_request(payload=None),
        payload_file=None,
        created=T0,
        started=None,
        completed=None,
        state="waiting",
        failed_attempts=0,
        condition_type=None,
        condition_reason=None,
        condition_message=None,
        condition_time=None,
        stopped_at=None,
        version=1,
    )
    return dataclasses.replace(job, **changes)


def test_only_jobs_that_succeeded_or_failed_have_a_duration() -> None:
    begun = T0
    ran = stored_job(state="succeeded", started=begun, completed=begun + timedelta(seconds=90))
    assert duration(ran) == 90.0
    assert duration(stored_job(state="stopped", started=begun)) is None
    assert duration(stored_job(state="waiting")) is None


@local_only
async def test_jobs_in_line_say_their_place_which_moves_up_as_jobs_end(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory(SCHEDULER_MAX_PARALLEL="1")
    holder = (await post_job(client, LONG))["name"]
    await wait_for_status(client, holder, "Running")
    first = await post_job(client, LONG)
    second = await post_job(client, LONG)

    assert first["message"] == "1st in line; 1 running at most"
    assert second["message"] == "2nd in line; 1 running at most"
    await stop(client, holder)
    await wait_for_status(client, first["name"], "Running")
    await message_becomes(client, second["name"], "1st in line; 1 running at most")


@local_only
async def test_a_place_in_line_estimates_the_start_from_recent_jobs(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory(SCHEDULER_MAX_PARALLEL="1")
    done = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, done, "Succeeded")
    holder = (await post_job(client, LONG))["name"]
    await wait_for_status(client, holder, "Running")

    waiting = await post_job(client, LONG)
    assert re.fullmatch(
        r"1st in line; 1 running at most; starts in about \d+ s", waiting["message"]
    ), waiting["message"]


@local_only
async def test_a_job_held_under_a_fake_clock_starts_once_the_clock_reaches_its_time(
    local_scheduler_factory: ClientFactory,
) -> None:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    client = await local_scheduler_factory(options={"clock": clock})
    begin = clock.now + timedelta(hours=6)
    created = await post_job(client, {**SHORT, "startAfter": begin.isoformat()})
    name = created["name"]
    assert created["message"] == f"starts at {begin.strftime('%Y-%m-%dT%H:%M:%SZ')}"

    clock.now = begin - timedelta(seconds=1)
    await poke(client, name)
    # A job posted now is handed out by a look at the line that finds the held one not yet due.
    after = (await post_job(client, SHORT))["name"]
    await wait_for_status(client, after, "Succeeded")
    assert (await job_status(client, name))["status"] == "Waiting"
    clock.now = begin
    await poke(client, name)
    await wait_for_status(client, name, "Succeeded")


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def poke(client: Client, name: str) -> None:
    """What the starter does when the job's time comes: tell the backend to start it."""
    job = client.app[VIEW].job(name)
    assert job is not None
    await client.app[BACKEND].start_held_job(name, job.uid)
