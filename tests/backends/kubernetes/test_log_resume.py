"""A followed log on Kubernetes goes on when the API server ends or breaks its stream (a restart,
the kubelet's or a proxy's timeout, an outage): it opens the log again from the time of the last
line it passed on, so the client sees every line once, in order, until the job ends."""

from __future__ import annotations

import asyncio
import re

import pytest

from scheduler.backends.kubernetes.logs import Cursor
from tests.api.test_events_stream import open_stream, statuses
from tests.conftest import NAMESPACE, ClientFactory, post_job, wait_for_status, wait_until
from tests.factories import Client
from tests.fakekube import FakeKube

STAMPED_LINE = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z (.*)")


def burst(first: int, last: int) -> str:
    return "; ".join(f"echo line-{n}" for n in range(first, last + 1))


# Two bursts of lines with a pause between them (1 s on the fake's test clock).
SCRIPT = f"{burst(1, 30)}; sleep 20; {burst(31, 60)}; exit 0"
EVERY_LINE = [f"line-{n}" for n in range(1, 61)]


async def follow(client: Client, name: str, **query: str) -> list[bytes]:
    response = await client.get(f"/api/v1/jobs/{name}/logs", params={"follow": "true", **query})
    assert response.status == 200, await response.text()
    return (await response.read()).splitlines()


async def running_job(client: Client) -> str:
    name = str((await post_job(client, {"command": ["sh", "-c", SCRIPT]}))["name"])
    await wait_for_status(client, name, "Running")
    return name


@pytest.mark.parametrize("clean", [False, True], ids=["broken", "ended"])
async def test_a_followed_log_cut_in_the_middle_of_a_burst_loses_and_repeats_no_line(
    scheduler_factory: ClientFactory, kube: FakeKube, clean: bool
) -> None:
    client = await scheduler_factory()
    name = await running_job(client)
    # Each of the first three streams ends after a few lines (a broken one half-way through the
    # next line); the fourth runs to the end.
    kube.faults.cut_logs(after_lines=7, times=3, clean=clean)
    lines = await follow(client, name)
    assert [line.decode() for line in lines] == EVERY_LINE
    await wait_for_status(client, name, "Succeeded")


async def test_a_resumed_log_keeps_the_kubelets_times_when_asked_for(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    client = await scheduler_factory()
    name = await running_job(client)
    kube.faults.cut_logs(after_lines=10, times=2)
    lines = await follow(client, name, timestamps="true")
    matches = [STAMPED_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [m.group(2).decode() for m in matches if m] == EVERY_LINE


async def test_streams_go_on_after_an_api_server_outage(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    """The issue's outage, on the test clock: the API server is away while one client follows a
    log and another holds `/events`, and a job ends meanwhile."""
    client = await scheduler_factory()
    script = f"{burst(1, 30)}; sleep 60; {burst(31, 60)}"
    followed = str((await post_job(client, {"command": ["sh", "-c", script]}))["name"])
    ending = str((await post_job(client, {"command": ["sh", "-c", "sleep 25"]}))["name"])
    await wait_for_status(client, followed, "Running")
    await wait_for_status(client, ending, "Running")
    events = await open_stream(client)
    reading = asyncio.create_task(follow(client, followed))

    async def following() -> bool:
        return any(e.subresource == "log" and followed in e.path for e in kube.audit)

    async def ended() -> bool:
        pods = kube.list("Pod", NAMESPACE, f"job-name={ending}")
        return bool(pods) and all(pod["status"]["phase"] == "Succeeded" for pod in pods)

    await wait_until(following)
    kube.faults.down = True  # the open streams break, and every request gets 503
    await wait_until(ended)  # `ending` ends meanwhile (1.25 s after it started)
    kube.faults.down = False
    back = asyncio.get_running_loop().time()

    async def ready() -> bool:
        return (await client.get("/readyz")).status == 200

    await wait_until(ready, timeout=5)
    assert asyncio.get_running_loop().time() - back < 5
    lines = await asyncio.wait_for(reading, 30)
    assert [line.decode() for line in lines] == EVERY_LINE
    # The event stream tells of the end that came during the outage, or says to start over.
    while True:
        frame = await asyncio.wait_for(events.frame(), 15)
        if frame.event == "reset":
            break
        if frame.body["name"] == ending and statuses(frame) == ["Succeeded"]:
            break


def test_lines_of_the_same_time_are_told_apart_by_how_many_were_passed_on() -> None:
    cursor = Cursor(keep_times=False)
    same = b"2024-05-01T12:00:00.5Z"
    assert cursor.feed(same + b" a\n" + same + b" b\n" + same[:10]) == b"a\nb\n"
    # The stream broke half-way through a third line of the same time, and opens again.
    cursor.resume()
    assert cursor.since == same.decode()
    replayed = same + b" a\n" + same + b" b\n" + same + b" c\n"
    assert cursor.feed(replayed + b"2024-05-01T12:00:01Z d\n") == b"c\nd\n"


def test_lines_from_before_the_resume_time_are_left_out() -> None:
    cursor = Cursor(keep_times=True)
    cursor.feed(b"2024-05-01T12:00:00.123456789Z x\n")
    cursor.resume()
    # A server that rounds the time down sends earlier lines again.
    again = b"2024-05-01T12:00:00.1Z old\n2024-05-01T12:00:00.123456789Z x\n"
    assert cursor.feed(again + b"2024-05-01T12:00:00.2Z y\n") == b"2024-05-01T12:00:00.2Z y\n"
