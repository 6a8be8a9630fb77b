"""A job's processes on the local backend where the sandbox cannot work (no namespaces): its
process group ends with it, it gets only fds 0-2 and a clean environment, and a restarted
scheduler kills what its killed predecessor left running before it reports the job as ended."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.backends.base import JobRequest
from scheduler.backends.local import sandbox
from scheduler.backends.local.store import LocalStore
from tests.backends.local.test_backend import log_texts, shell
from tests.backends.local.test_process import processes_with, wait_for_processes, wait_until_gone
from tests.conftest import ClientFactory, post_job, wait_for_status
from tests.factories import job_request

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")

TIMEOUT_SECONDS = 30.0


@pytest.fixture(autouse=True)
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    async def unavailable() -> str:
        return "no user namespaces here"

    monkeypatch.setattr(sandbox, "probe", unavailable)


def marked() -> tuple[str, dict[str, str]]:
    value = str(uuid.uuid4())
    return f"MARKER={value}", {"MARKER": value}


async def test_a_job_ends_with_its_first_process_and_takes_its_children_along(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory()
    marker, variables = marked()
    name = (await post_job(client, shell("sleep 100000 & exit 0", variables=variables)))["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    await wait_until_gone(marker)


async def test_a_stop_ends_the_jobs_children_too(local_scheduler_factory: ClientFactory) -> None:
    client = await local_scheduler_factory()
    marker, variables = marked()
    body = shell("sleep 100000 & sleep 100000 & wait", variables=variables)
    name = (await post_job(client, body))["name"]
    await wait_for_processes(marker, 3)
    await wait_for_status(client, name, "Running")
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    await wait_for_status(client, name, "Stopped", TIMEOUT_SECONDS)
    await wait_until_gone(marker)


async def test_a_job_has_only_fds_0_to_2_and_none_of_the_schedulers_variables(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    base_env = {**os.environ, "MY_CLOUD_TOKEN": "cloud-token-0815", "LC_TIME": "C"}
    client = await local_scheduler_factory(options={"base_env": base_env})
    name = (await post_job(client, shell("ls /proc/$$/fd; env; true")))["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    lines = log_texts(tmp_path, name)
    assert lines[:3] == ["0", "1", "2"]
    assert lines[3] != "3"
    assert "LC_TIME=C" in lines
    assert f"PATH={os.environ['PATH']}" in lines
    assert not [line for line in lines if "cloud-token" in line]


def request(name: str) -> JobRequest:
    return job_request(
        name=name,
        job_id=None,
        image="busybox",
        command=("sh",),
        args=None,
        env={},
        ports=(),
        requests={},
        limits={},
        payload=None,
        payload_path=None,
        time_limit_seconds=600,
    )


async def test_a_restarted_scheduler_ends_what_a_killed_one_left_before_failing_the_job(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    # What a scheduler killed with SIGKILL leaves, without a sandbox: a job Running, its attempt
    # started with the pid of a process group whose children outlived their leader.
    marker, variables = marked()
    leader = await asyncio.create_subprocess_exec(
        *("sh", "-c", "sleep 300 & sleep 300 & echo started; wait"),
        env={**os.environ, **variables},
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout is not None
    assert await leader.stdout.readline() == b"started\n"
    name = "compute-left-running"
    async with LocalStore(tmp_path / "state") as store:
        now = datetime.now(UTC)
        await store.add_job(request(name), now)
        await store.update_job(name, state="running", started=now)
        attempt = await store.start_attempt(name, now=now, pid=None)
        await store.record_start(name, attempt.idx, now=now, pid=leader.pid)
    assert len(await wait_for_processes(marker, 3)) == 3

    client = await local_scheduler_factory()

    assert processes_with(marker) == []
    status = await wait_for_status(client, name, "Failed")
    assert status["message"].startswith("the scheduler stopped while the job ran")
    assert await asyncio.wait_for(leader.wait(), TIMEOUT_SECONDS) < 0


async def test_a_restarted_scheduler_leaves_a_process_that_reused_the_pid_alone(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    later = await asyncio.create_subprocess_exec("sleep", "300", start_new_session=True)
    try:
        name = "compute-long-gone"
        async with LocalStore(tmp_path / "state") as store:
            # The attempt started long before the process now holding its pid did.
            then = datetime(2020, 1, 1, tzinfo=UTC)
            await store.add_job(request(name), then)
            await store.update_job(name, state="running", started=then)
            attempt = await store.start_attempt(name, now=then, pid=None)
            await store.record_start(name, attempt.idx, now=then, pid=later.pid)

        client = await local_scheduler_factory()

        await wait_for_status(client, name, "Failed")
        assert later.returncode is None, "not the attempt's process: it runs on"
    finally:
        later.kill()
        await later.wait()


async def test_the_result_reaches_the_job_as_before(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory()
    name = (await post_job(client, shell('echo done > "$RADIX_RESULT_PATH"')))["name"]
    status = await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    assert status["podStatuses"][0]["replicaStatus"]["status"] == "Succeeded"
