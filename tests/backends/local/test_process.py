"""The local backend in a real `python -m scheduler` process: what it says at start, how it refuses
a state dir it cannot have, and what a SIGTERM or a crash leaves for the next scheduler to show."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.backends.local.test_backend import is_running, pid_written_to, process_group
from tests.conftest import LOCAL_SHIMS, TEST_CONFIG, wait_until
from tests.factories import free_port

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
            RADIX_COMPONENT="compute",
            RADIX_ENVIRONMENT="dev",
            # A test may name another host, or none ("") for the default, or another config.
            **{"SCHEDULER_HOST": "127.0.0.1", "RADIX_CONFIG_FILE": str(TEST_CONFIG), **env},
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


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory a job may write to whatever user it runs as (under root: its runAsUser);
    not under tmp_path, whose parents pytest keeps private to the test's user, nor under /tmp,
    of which a job of another user has its own."""
    directory = Path(tempfile.mkdtemp(prefix="radix-local-process-", dir="/var/tmp"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory)


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


def processes_with(marker: str) -> list[int]:
    """The live processes that have `marker` in their environment: a job's, whatever they
    started (the launcher and the init of its sandbox included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_running(int(entry.name)):
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
    return found


async def wait_for_processes(marker: str, count: int) -> list[int]:
    async def started() -> bool:
        return len(processes_with(marker)) >= count

    await wait_until(started, TIMEOUT_SECONDS)
    return processes_with(marker)


async def wait_until_gone(marker: str, timeout: float = 5.0) -> None:
    async def gone() -> bool:
        return processes_with(marker) == []

    await wait_until(gone, timeout)


async def post(scheduler: Scheduler, script: str, **fields: Any) -> str:
    code, created = await scheduler.request(
        "POST", "/api/v1/jobs", {"command": ["sh", "-c", script], **fields}
    )
    assert code == 200, created
    return str(created["name"])


def job_log(state: Path, name: str) -> list[str]:
    path = state / "logs" / name / "0.log"
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()]


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
    port = scheduler.url.rsplit(":", 1)[1]
    assert scheduler.log_messages()[0] == (
        f"backend: local ({why}), listening on 127.0.0.1:{port} (this machine only)"
    )


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
    launch: Launch, tmp_path: Path, shared_dir: Path
) -> None:
    state = tmp_path / "state"
    first = await ready(await launch(*local(state)))
    name, pid = await running_job(first, shared_dir / "pid")
    first.proc.send_signal(signal.SIGTERM)
    assert await first.ended() == 0
    assert not is_running(pid)
    assert process_group(pid) == []
    second = await ready(await launch(*local(state)))
    status = await second.status_of(name)
    assert status["status"] == "Failed"
    assert status["message"].startswith("the scheduler was shut down while the job ran")


async def test_a_killed_scheduler_takes_its_jobs_processes_with_it(
    launch: Launch, tmp_path: Path, orphans: list[int]
) -> None:
    state = tmp_path / "state"
    first = await ready(await launch(*local(state)))
    marker = f"MARKER={uuid.uuid4()}"
    name = await post(first, "sleep 300 & sleep 300", variables=dict([marker.split("=")]))
    # The launcher, the sandbox's init, the shell and its two sleeps.
    orphans.extend(await wait_for_processes(marker, 4))
    await first.wait_for_status(name, "Running")
    first.proc.send_signal(signal.SIGKILL)
    assert await first.ended() == -signal.SIGKILL
    await wait_until_gone(marker)
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


# -- a job's processes -----------------------------------------------------------------------


def marked() -> tuple[str, dict[str, str]]:
    """A variable that marks every process of one job: the marker and the job's variables."""
    value = str(uuid.uuid4())
    return f"MARKER={value}", {"MARKER": value}


@pytest.mark.parametrize(
    "script",
    ["sleep 100 & exit 0", "setsid sleep 34 </dev/null >/dev/null 2>&1 & exit 0"],
    ids=["background child", "child in its own session"],
)
async def test_a_job_ends_with_its_first_process_and_takes_its_children_along(
    launch: Launch, tmp_path: Path, script: str
) -> None:
    scheduler = await ready(await launch(*local(tmp_path / "state")))
    marker, variables = marked()
    name = await post(scheduler, f"sleep 1; {script}", variables=variables)
    await wait_for_processes(marker, 1)
    status = await scheduler.wait_for_status(name, "Succeeded")
    assert status["podStatuses"][0]["exitCode"] == 0
    await wait_until_gone(marker)


@pytest.mark.parametrize("ending", ["stop", "time limit", "delete", "scheduler SIGTERM"])
async def test_every_way_a_job_ends_ends_all_its_processes(
    launch: Launch, tmp_path: Path, ending: str
) -> None:
    scheduler = await ready(await launch(*local(tmp_path / "state")))
    marker, variables = marked()
    fields: dict[str, Any] = {"variables": variables}
    if ending == "time limit":
        fields["timeLimitSeconds"] = 3
    # TERM ends the shell, not its children in the background: they go with the job's group.
    name = await post(scheduler, "sleep 300 & sleep 300 & wait", **fields)
    await wait_for_processes(marker, 5)
    await scheduler.wait_for_status(name, "Running")
    if ending == "stop":
        assert (await scheduler.request("POST", f"/api/v1/jobs/{name}/stop"))[0] == 200
    elif ending == "delete":
        assert (await scheduler.request("DELETE", f"/api/v1/jobs/{name}"))[0] == 200
    elif ending == "scheduler SIGTERM":
        scheduler.proc.send_signal(signal.SIGTERM)
    await wait_until_gone(marker, TIMEOUT_SECONDS)
    if ending == "stop":
        await scheduler.wait_for_status(name, "Stopped")
    elif ending == "time limit":
        await scheduler.wait_for_status(name, "Failed")
    elif ending == "scheduler SIGTERM":
        assert await scheduler.ended() == 0


async def test_a_job_has_only_stdin_stdout_and_stderr_open(launch: Launch, tmp_path: Path) -> None:
    state = tmp_path / "state"
    scheduler = await ready(await launch(*local(state)))
    # `; true`: the shell forks ls rather than exec it, so ls lists the shell's descriptors.
    name = await post(scheduler, "ls /proc/$$/fd; true")
    await scheduler.wait_for_status(name, "Succeeded")
    assert job_log(state, name) == ["0", "1", "2"]


async def test_a_job_sees_neither_the_state_dir_nor_other_jobs_nor_the_schedulers_secrets(
    launch: Launch, shared_dir: Path
) -> None:
    # Where any user may reach it: what hides it from the job is the sandbox, not a mode.
    state = shared_dir / "state"
    scheduler = await ready(
        await launch(
            *local(state),
            SCHEDULER_WEBHOOK_SECRET="webhook-secret-4711",
            MY_CLOUD_TOKEN="cloud-token-0815",
        )
    )
    other = await post(scheduler, "sleep 300", payload="PAYLOAD-SECRET-p4ss")
    await scheduler.wait_for_status(other, "Running")
    pid = scheduler.proc.pid
    script = (
        f"cat {state}/payloads/*/payload {state}/state.sqlite3 /proc/{pid}/environ"
        f" /proc/{pid}/cmdline; ls -A {state}; ls /proc | grep -c '^[0-9]'; env; touch {state}/x"
    )
    name = await post(scheduler, f"{script}; true", payload="mine")
    await scheduler.wait_for_status(name, "Succeeded")
    seen = "\n".join(job_log(state, name))
    for secret in ("PAYLOAD-SECRET-p4ss", "webhook-secret-4711", "cloud-token-0815", "SQLite"):
        assert secret not in seen
    assert f"touch: cannot touch '{state}/x': Read-only file system" in seen
    assert not (state / "x").exists()
    # What the job's directory listing of the state dir showed: its own results only.
    assert "results" in job_log(state, name)
    # Its own processes only: the init, the shell, the ls and the grep.
    assert "4" in job_log(state, name)


async def test_under_root_a_job_runs_as_its_run_as_user_or_else_as_nobody(
    launch: Launch, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root may run jobs as other users")
    config = tmp_path / "radixconfig.yaml"
    config.write_text(TEST_CONFIG.read_text().replace("runAsUser: 1000", ""))
    state = tmp_path / "state"
    scheduler = await ready(await launch(*local(state)))
    named = await post(scheduler, 'id -u; id -g; grep CapEff /proc/self/status; echo "$HOME"')
    await scheduler.wait_for_status(named, "Succeeded")
    assert job_log(state, named)[:3] == ["1000", "1000", "CapEff:\t0000000000000000"]
    scheduler.proc.send_signal(signal.SIGTERM)
    assert await scheduler.ended() == 0

    unnamed_state = tmp_path / "state2"
    scheduler = await ready(await launch(*local(unnamed_state), RADIX_CONFIG_FILE=str(config)))
    unnamed = await post(scheduler, 'id -u; echo "$HOME"', payload="p")
    await scheduler.wait_for_status(unnamed, "Succeeded")
    assert job_log(unnamed_state, unnamed)[0] == "65534"
