"""The local backend in a real `python -m scheduler` process: what it says at start, how it refuses
a state dir it cannot have, and what a SIGTERM or a crash leaves for the next scheduler to show."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import LOCAL_SHIMS, TEST_CONFIG, wait_until
from tests.test_local_backend import is_running, pid_written_to, process_group
from tests.test_operations import _free_port as free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")

# Generous, for a busy machine: only a hung scheduler should ever reach it.
TIMEOUT_SECONDS = 30.0
EXIT_CONFIG_ERROR = 2


@dataclass
class Scheduler:
    proc: asyncio.subprocess.Process
    url: str
    stderr: list[str] = field(default_factory=list)
    reading: asyncio.Task[None] | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}{path}", json=body) as response,
        ):
            return response.status, await response.json()

    async def ready(self) -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.url}/readyz") as response,
            ):
                return response.status == 200
        return False

    async def status_of(self, name: str) -> dict[str, Any]:
        code, body = await self.request("GET", f"/api/v1/jobs/{name}")
        assert code == 200, body
        result: dict[str, Any] = body
        return result

    async def wait_for_status(self, name: str, status: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        async def reached() -> bool:
            nonlocal found
            found = await self.status_of(name)
            return str(found["status"]) == status

        await wait_until(reached, TIMEOUT_SECONDS)
        return found

    async def ended(self) -> int:
        code = await self.proc.wait()
        if self.reading is not None:
            await self.reading
        return code

    def log_messages(self) -> list[str]:
        return [json.loads(line)["message"] for line in self.stderr]


Launch = Callable[..., Awaitable[Scheduler]]


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    # Drained all along, so a chatty scheduler never blocks on a full pipe.
    while line := await stream.readline():
        into.append(line.decode().rstrip("\n"))


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    """Starts `python -m scheduler` (flags as given) for job compute, on a free port, with no
    kubeconfig in sight; every scheduler still running at the end is killed."""
    started: list[Scheduler] = []
    home = tmp_path / "home"
    home.mkdir()

    async def start(*flags: str, **env: str) -> Scheduler:
        port = free_port()
        environ = {
            key: value
            for key, value in os.environ.items()
            if key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
        }
        environ.update(
            PATH=f"{LOCAL_SHIMS}:{os.environ.get('PATH', '')}",
            HOME=str(home),
            RADIX_CONFIG_FILE=str(TEST_CONFIG),
            RADIX_COMPONENT="compute",
            RADIX_ENVIRONMENT="dev",
            SCHEDULER_HOST="127.0.0.1",
            **env,
        )
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "scheduler", "--port", str(port)),
            *flags,
            env=environ,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        scheduler = Scheduler(proc, f"http://127.0.0.1:{port}")
        assert proc.stderr is not None
        scheduler.reading = asyncio.create_task(_collect(proc.stderr, scheduler.stderr))
        started.append(scheduler)
        return scheduler

    try:
        yield start
    finally:
        for scheduler in started:
            if scheduler.proc.returncode is None:
                scheduler.proc.kill()
            await scheduler.ended()


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """Jobs a crashed scheduler left running: their process groups are killed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def local(state_dir: Path) -> tuple[str, ...]:
    return ("--backend", "local", "--state-dir", str(state_dir))


async def ready(scheduler: Scheduler) -> Scheduler:
    await wait_until(scheduler.ready, TIMEOUT_SECONDS)
    return scheduler


async def running_job(scheduler: Scheduler, pid_file: Path) -> tuple[str, int]:
    """A long job, Running, and the pid of its process."""
    body = {
        "command": ["sh", "-c", 'echo $$ > "$PID_FILE"; exec sleep 100000'],
        "variables": {"PID_FILE": str(pid_file)},
    }
    code, created = await scheduler.request("POST", "/api/v1/jobs", body)
    assert code == 200, created
    name = str(created["name"])
    pid = await pid_written_to(pid_file)
    await scheduler.wait_for_status(name, "Running")
    return name, pid


# -- starting --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (("--backend", "local"), "chosen by SCHEDULER_BACKEND/--backend"),
        ((), "not in a pod and no kubeconfig found"),
    ],
)
async def test_the_first_log_line_names_the_backend_and_why(
    launch: Launch, tmp_path: Path, flags: tuple[str, ...], why: str
) -> None:
    scheduler = await ready(await launch(*flags, "--state-dir", str(tmp_path / "state")))
    scheduler.proc.send_signal(signal.SIGTERM)
    assert await scheduler.ended() == 0
    assert scheduler.log_messages()[0] == f"backend: local ({why})"


async def test_a_second_scheduler_on_the_same_state_dir_exits_2_with_one_line_naming_the_pid(
    launch: Launch, tmp_path: Path
) -> None:
    first = await ready(await launch(*local(tmp_path / "state")))
    second = await launch(*local(tmp_path / "state"))
    assert await second.ended() == EXIT_CONFIG_ERROR
    assert len(second.stderr) == 1, second.stderr
    line = second.stderr[0]
    assert "is in use by another scheduler" in line
    assert f"pid {first.proc.pid}" in line
    assert await first.ready(), "the first one serves on"


async def test_an_unusable_state_dir_exits_2_with_one_line(launch: Launch, tmp_path: Path) -> None:
    # Root may write anywhere, but no one makes a directory under a regular file.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    scheduler = await launch(*local(blocker / "state"))
    assert await scheduler.ended() == EXIT_CONFIG_ERROR
    assert len(scheduler.stderr) == 1, scheduler.stderr
    line = scheduler.stderr[0]
    assert f"state dir {blocker / 'state'} cannot be used" in line


# -- stopping and crashing -------------------------------------------------------------------


async def test_sigterm_stops_the_running_job_and_the_next_scheduler_says_why(
    launch: Launch, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = await ready(await launch(*local(state)))
    name, pid = await running_job(first, tmp_path / "pid")
    first.proc.send_signal(signal.SIGTERM)
    assert await first.ended() == 0
    assert not is_running(pid)
    assert process_group(pid) == []
    second = await ready(await launch(*local(state)))
    status = await second.status_of(name)
    assert status["status"] == "Failed"
    assert status["message"].startswith("the scheduler was shut down while the job ran")


async def test_after_a_crash_the_next_scheduler_fails_the_job_that_was_running(
    launch: Launch, tmp_path: Path, orphans: list[int]
) -> None:
    state = tmp_path / "state"
    first = await ready(await launch(*local(state)))
    name, pid = await running_job(first, tmp_path / "pid")
    # Nothing ends the job's process when its scheduler is killed.
    orphans.append(pid)
    first.proc.send_signal(signal.SIGKILL)
    assert await first.ended() == -signal.SIGKILL
    second = await ready(await launch(*local(state)))
    status = await second.status_of(name)
    assert status["status"] == "Failed"
    assert status["message"].startswith("the scheduler stopped while the job ran")
    assert any(name in message for message in second.log_messages())


async def test_the_schedulers_own_secret_does_not_reach_a_job(
    launch: Launch, tmp_path: Path
) -> None:
    secret = "webhook-secret-4711"
    scheduler = await ready(
        await launch(*local(tmp_path / "state"), SCHEDULER_WEBHOOK_SECRET=secret)
    )
    code, created = await scheduler.request("POST", "/api/v1/jobs", {"command": ["env"]})
    assert code == 200, created
    name = created["name"]
    await scheduler.wait_for_status(name, "Succeeded")
    job_env = (tmp_path / "state" / "logs" / name / "0.log").read_text()
    assert f"RADIX_JOB_NAME={name}" in job_env
    assert secret not in job_env
