"""`GET .../logs` of a job and of a batch's job, on both backends: the fake Kubernetes API (its
kubelet logs a container's `echo` lines) and the local one (a job's output in its attempt's file)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse, web

from scheduler.api.keys import LOGS
from scheduler.domain.logs import DEFAULT_MAX_FOLLOWERS
from tests.conftest import (
    ClientFactory,
    job_status,
    make_app,
    make_local_app,
    make_settings,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import Client

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="local jobs are Linux processes")

# Each line after its RFC 3339 time (the kubelet's to the nanosecond, ours to the microsecond).
STAMPED_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) (.*)")
LONG = "echo first; sleep 1000; echo never"  # 50 s on either backend's test clock
MIB = 1024 * 1024


def shell(script: str, **fields: Any) -> dict[str, Any]:
    return {"command": ["sh", "-c", script], **fields}


@pytest.fixture
async def client(start: ClientFactory) -> Client:
    return await start("etl")


async def logs(client: Client, job: str, **query: Any) -> ClientResponse:
    params = {key: str(value).lower() for key, value in query.items() if value is not None}
    return await client.get(f"/api/v1/jobs/{job}/logs", params=params)


async def text_of(response: ClientResponse) -> str:
    assert response.status == 200, await response.text()
    return await response.text()


async def finished_job(client: Client, script: str = "echo one; echo two; echo three") -> str:
    name = str((await post_job(client, shell(script)))["name"])
    await wait_for_status(client, name, "Succeeded")
    return name


async def failure(response: ClientResponse, code: int, reason: str) -> str:
    """The message of a `Status` failure with that code and reason."""
    assert response.status == code, await response.text()
    body = await response.json()
    assert (body["status"], body["reason"], body["code"]) == ("Failure", reason, code)
    return str(body["message"])


# -- reading a finished job --------------------------------------------------------------------


async def test_the_log_of_a_finished_job_is_its_output_as_plain_text(client: Client) -> None:
    name = await finished_job(client)
    response = await logs(client, name)
    assert await text_of(response) == "one\ntwo\nthree\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["X-Request-Id"]


async def test_tail_gives_only_the_last_lines(client: Client) -> None:
    name = await finished_job(client)
    assert await text_of(await logs(client, name, tail=2)) == "two\nthree\n"
    assert await text_of(await logs(client, name, tail=10)) == "one\ntwo\nthree\n"
    assert await text_of(await logs(client, name, tail=0)) == ""


async def test_timestamps_begin_each_line_with_the_time_it_was_written(client: Client) -> None:
    name = await finished_job(client)
    lines = (await text_of(await logs(client, name, timestamps=True))).splitlines()
    matches = [STAMPED_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    assert [m.group(2) for m in matches if m] == ["one", "two", "three"]
    times = [datetime.fromisoformat(m.group(1)[:26].rstrip(".Z") + "+00:00") for m in matches if m]
    assert times == sorted(times)
    last = await text_of(await logs(client, name, timestamps=True, tail=1))
    assert last == lines[-1] + "\n"


async def test_attempt_reads_an_earlier_attempt_and_the_default_is_the_latest(
    backend: str, client: Client, tmp_path: Path
) -> None:
    if backend == "local":
        # Each attempt is a new process: it counts itself in a file.
        counter = tmp_path / "attempts"
        script = (
            f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n + 1)) > {counter}; "
            'echo "attempt $n"; exit 1'
        )
    else:
        script = 'echo "attempt $HOSTNAME"; exit 1'  # a pod's host name is the pod's name
    name = str((await post_job(client, shell(script, backoffLimit=1)))["name"])
    await wait_for_status(client, name, "Failed")
    pods = [pod["name"] for pod in (await job_status(client, name))["podStatuses"]]
    assert len(pods) == 2
    said = [f"attempt {k if backend == 'local' else pods[k]}\n" for k in range(2)]

    assert await text_of(await logs(client, name, attempt=0)) == said[0]
    assert await text_of(await logs(client, name, attempt=1)) == said[1]
    assert await text_of(await logs(client, name)) == said[1]
    message = await failure(await logs(client, name, attempt=2), 404, "NotFound")
    assert message == f"job {name} has no attempt 2: its attempts are 0 to 1"


# -- following ---------------------------------------------------------------------------------


async def test_follow_streams_the_log_until_the_job_ends(client: Client) -> None:
    name = str((await post_job(client, shell("echo first; sleep 10; echo last")))["name"])
    # Asked at once, so it may have to wait for the job to start.
    response = await logs(client, name, follow=True)
    assert await text_of(response) == "first\nlast\n"
    await wait_for_status(client, name, "Succeeded")


async def test_follow_sends_each_line_as_it_is_written_and_ends_with_a_stop(
    client: Client,
) -> None:
    name = str((await post_job(client, shell(LONG)))["name"])
    await wait_for_status(client, name, "Running")
    response = await logs(client, name, follow=True)
    assert response.status == 200
    # The job sleeps long after this line: it came while the job ran.
    assert await response.content.readline() == b"first\n"
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    assert await response.content.read() == b""  # the response is complete
    await wait_for_status(client, name, "Stopped")


async def test_follow_goes_on_to_the_next_attempt_of_the_job(
    backend: str, client: Client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    if backend == "local":
        script = f"echo try; while [ ! -e {gate} ]; do sleep 1; done; exit 1"  # fails on the gate
    else:
        script = "echo try; sleep 20; exit 1"
    name = str((await post_job(client, shell(script, backoffLimit=1)))["name"])
    response = await logs(client, name, follow=True)
    assert response.status == 200
    assert await response.content.readline() == b"try\n"
    gate.touch()
    assert await response.content.read() == b"try\n"  # the second attempt's, then the end
    await wait_for_status(client, name, "Failed")


@pytest.fixture
def unstarted_app(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> web.Application:
    settings = make_settings(tmp_path, "etl", SCHEDULER_BACKEND=backend)
    if backend == "local":
        return make_local_app(settings, tmp_path / "state")
    return make_app(request.getfixturevalue("kube"), settings)


async def test_a_client_that_leaves_a_followed_log_ends_its_request_and_frees_the_log(
    backend: str, unstarted_app: web.Application, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Served as in production: aiohttp's test server cancels a handler whose client leaves,
    # the production server does not.
    runner = web.AppRunner(unstarted_app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            await served_lines_after_client_left(session, backend, tmp_path, caplog)
    finally:
        await runner.cleanup()


async def served_lines_after_client_left(
    session: aiohttp.ClientSession, backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scheduler.http")

    async def ready() -> bool:
        async with session.get("/readyz") as response:
            return response.status == 200

    await wait_until(ready)
    async with session.post("/api/v1/jobs", json=shell(LONG)) as created:
        name = (await created.json())["name"]
    response = await session.get(f"/api/v1/jobs/{name}/logs", params={"follow": "true"})
    assert await response.content.readline() == b"first\n"
    log_file = tmp_path / "state" / "logs" / name / "0.log"
    if backend == "local":
        assert readers_of(log_file) == 1
    response.close()  # the client leaves; the job goes on, silent

    async def request_ended() -> bool:
        return any(
            record.getMessage() == f"GET /api/v1/jobs/{name}/logs 200" for record in caplog.records
        )

    await wait_until(request_ended, timeout=30)
    assert readers_of(log_file) == 0
    async with session.post(f"/api/v1/jobs/{name}/stop") as stopped:
        assert stopped.status == 200


def readers_of(path: Path) -> int:
    """How many files this process has open on `path` for reading (the runner writes it)."""
    readers = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            info = (Path("/proc/self/fdinfo") / fd.name).read_text()
            flags = re.search(r"^flags:\s*(\d+)", info, re.MULTILINE)
            reading = flags is not None and int(flags.group(1), 8) & os.O_ACCMODE == os.O_RDONLY
            if reading and Path(os.readlink(fd)) == path:
                readers += 1
    return readers


# -- refusals ----------------------------------------------------------------------------------


async def test_the_log_of_an_unknown_job_or_batch_is_404(client: Client) -> None:
    message = await failure(await logs(client, "nope"), 404, "NotFound")
    assert message == "job nope not found"
    response = await client.get("/api/v1/batches/nope/jobs/x/logs")
    assert await failure(response, 404, "NotFound") == "batch nope not found"


@pytest.mark.parametrize(
    ("query", "wrong"),
    [
        ({"tail": "-1"}, "tail"),
        ({"tail": "ten"}, "tail"),
        ({"attempt": "1.5"}, "attempt"),
        ({"attempt": "99999999999999999999"}, "attempt"),
        ({"follow": "yes"}, "follow"),
        ({"timestamps": "maybe"}, "timestamps"),
    ],
)
async def test_an_invalid_query_parameter_is_422_naming_it(
    client: Client, query: dict[str, str], wrong: str
) -> None:
    response = await client.get("/api/v1/jobs/nope/logs", params=query)
    message = await failure(response, 422, "Invalid")
    assert message.startswith(f"{wrong} is invalid: ")


async def never_starting_job(backend: str, start: ClientFactory) -> tuple[Client, str]:
    """A scheduler and a job of it that does not start: on the local backend one waits behind
    another in the only slot; on Kubernetes its image never pulls."""
    if backend == "local":
        client = await start("etl", SCHEDULER_MAX_PARALLEL="1")
        blocker = str((await post_job(client, shell(LONG)))["name"])
        await wait_for_status(client, blocker, "Running")
        job = await post_job(client, shell("echo second"))
    else:
        client = await start("etl")
        job = await post_job(client, shell("echo second", image="busybox:does-not-exist"))
    return client, str(job["name"])


async def test_the_log_of_a_job_with_no_attempt_started_yet_is_409(
    backend: str, start: ClientFactory
) -> None:
    client, name = await never_starting_job(backend, start)
    message = await failure(await logs(client, name), 409, "Conflict")
    assert message == f"job {name} has no attempt started yet"
    assert (await logs(client, name, attempt=0)).status == 409


async def test_past_its_limit_of_followers_follow_is_503_with_retry_after_and_reading_is_not(
    client: Client,
) -> None:
    reader = client.app[LOGS]
    assert reader.max_followers == DEFAULT_MAX_FOLLOWERS == 100
    reader.max_followers = 2
    name = str((await post_job(client, shell(LONG)))["name"])
    await wait_for_status(client, name, "Running")
    first, second = await logs(client, name, follow=True), await logs(client, name, follow=True)
    for followed in (first, second):
        assert await followed.content.readline() == b"first\n"

    refused = await logs(client, name, follow=True)
    message = await failure(refused, 503, "ServiceUnavailable")
    assert "2 logs are followed, as many as the scheduler follows at once" in message
    assert refused.headers["Retry-After"] == "10"
    assert await text_of(await logs(client, name)) == "first\n"  # reading without follow works

    first.close()  # a follower leaves: its place is free again

    async def one_left() -> bool:
        return reader.following == 1

    await wait_until(one_left, timeout=15)
    again = await logs(client, name, follow=True)
    assert await again.content.readline() == b"first\n"
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    assert await second.content.read() == b"" and await again.content.read() == b""
    assert reader.following == 0


async def test_head_on_a_log_answers_the_gets_headers_at_once_even_with_follow(
    client: Client,
) -> None:
    name = str((await post_job(client, shell(LONG)))["name"])
    await wait_for_status(client, name, "Running")
    response = await client.head(f"/api/v1/jobs/{name}/logs", params={"follow": "true"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await response.read() == b""
    assert client.app[LOGS].following == 0
    missing = await client.head("/api/v1/jobs/etl-nope/logs")
    assert missing.status == 404
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200


async def test_follow_waits_for_the_first_attempt_to_start(
    local_scheduler_factory: ClientFactory,
) -> None:
    client, name = await never_starting_job("local", local_scheduler_factory)
    following = asyncio.create_task(logs(client, name, follow=True))
    reader = client.app[LOGS]

    async def waiting() -> bool:
        return reader.waiting > 0

    await wait_until(waiting)
    # The second job starts once the first one, in the only slot, is stopped.
    blocker = next(
        job["name"]
        for job in await (await client.get("/api/v1/jobs")).json()
        if job["name"] != name
    )
    assert (await client.post(f"/api/v1/jobs/{blocker}/stop")).status == 200
    assert await text_of(await following) == "second\n"
    assert (await job_status(client, name))["status"] == "Succeeded"


# -- batches -----------------------------------------------------------------------------------


async def test_a_stopped_job_keeps_its_log_and_its_stopped_attempt(
    backend: str, client: Client
) -> None:
    name = str((await post_job(client, shell(LONG)))["name"])
    response = await logs(client, name, follow=True)
    assert await response.content.readline() == b"first\n"
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    await wait_for_status(client, name, "Stopped")
    attempt = (await job_status(client, name))["podStatuses"][-1]
    assert (attempt["replicaStatus"]["status"], attempt["reason"]) == ("Stopped", "Stopped")
    if backend == "kubernetes":
        # Kubernetes deletes a stopped job's pods, and their logs with them: the job's record
        # serves the log from then on.
        async def pod_gone() -> bool:
            return (await logs(client, name)).headers.get("X-Log-Source") == "record"

        await wait_until(pod_gone)
    response = await logs(client, name)
    assert await text_of(response) == "first\n"
    assert "X-Log-Truncated" not in response.headers


async def test_a_batch_job_log_is_found_by_its_full_and_its_short_name(client: Client) -> None:
    response = await client.post(
        "/api/v1/batches",
        json={"jobScheduleDescriptions": [shell("echo alpha"), shell("echo beta")]},
    )
    assert response.status == 200, await response.text()
    batch = await response.json()
    name, jobs = batch["name"], [job["name"] for job in batch["jobStatuses"]]
    for job in jobs:
        await wait_for_status(client, job, "Succeeded")
    short = jobs[1].removeprefix(f"{name}-")
    assert short != jobs[1]
    for job in (jobs[1], short):
        response = await client.get(f"/api/v1/batches/{name}/jobs/{job}/logs")
        assert await text_of(response) == "beta\n"
    # A batch's job is a job too.
    assert await text_of(await logs(client, jobs[0])) == "alpha\n"
    response = await client.get(f"/api/v1/batches/{name}/jobs/nope/logs")
    assert await failure(response, 404, "NotFound") == f"job nope not found in batch {name}"


# -- the local backend's files -----------------------------------------------------------------


async def test_a_100_mib_log_streams_whole_in_constant_memory(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory("etl", SCHEDULER_LOG_LIMIT_BYTES=str(200 * MIB))
    size = 100 * MIB
    script = f"head -c {size} /dev/zero | tr '\\0' 'x' | fold -w 1000"
    name = str((await post_job(client, shell(script)))["name"])
    await wait_for_status(client, name, "Succeeded", timeout=50)
    received = lines = 0
    tracemalloc.start()
    try:
        response = await logs(client, name)
        assert response.status == 200
        async for chunk in response.content.iter_chunked(64 * 1024):
            received += len(chunk)
            lines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # fold's last line (600 bytes) has no newline of its own; the log ends it.
    expected_lines = size // 1000 + 1
    assert (received, lines) == (size + expected_lines, expected_lines)
    assert peak < 16 * MIB, f"streaming took {peak / MIB:.1f} MiB"


async def test_following_a_log_the_runner_compacts_gives_no_line_twice(
    local_scheduler_factory: ClientFactory,
) -> None:
    # The smallest log limit: the runner replaces the file with its newest lines every ~1 KiB.
    client = await local_scheduler_factory("etl", SCHEDULER_LOG_LIMIT_BYTES="4096")
    script = (
        'i=0; while [ $i -lt 600 ]; do echo "line $i ........................................."; '
        "[ $((i % 40)) -eq 0 ] && sleep 1; i=$((i + 1)); done"
    )
    name = str((await post_job(client, shell(script)))["name"])
    text = await text_of(await logs(client, name, follow=True))
    numbers = [int(line.split()[1]) for line in text.splitlines()]
    # Lines the runner dropped before they were read are gone; none comes twice or out of order.
    assert numbers == sorted(set(numbers))
    assert numbers[-1] == 599
