"""A real `python -m scheduler` and the state dir it is given: a directory holding another
program's files is refused with one line and exit code 2, and left as it was; the files the
scheduler makes are its owner's alone, under a loose umask, in a dir that was 0755 before."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.backends.local.test_process import Scheduler
from tests.backends.local.test_store import foreign_dir, modes, owner_only, tree
from tests.conftest import LOCAL_SHIMS, TEST_CONFIG, wait_until
from tests.factories import free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="jobs are Linux processes")

# Generous, for a busy machine: only a hung scheduler should ever reach it.
TIMEOUT_SECONDS = 30.0
EXIT_CONFIG_ERROR = 2
REPO = Path(__file__).resolve().parents[3]


def scheduler_environ(home: Path) -> dict[str, str]:
    """A scheduler for job compute on loopback, with no kubeconfig in sight."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    home.mkdir(exist_ok=True)
    environ.update(
        PATH=f"{LOCAL_SHIMS}:{os.environ.get('PATH', '')}",
        HOME=str(home),
        RADIX_CONFIG_FILE=str(TEST_CONFIG),
        RADIX_COMPONENT="compute",
        RADIX_ENVIRONMENT="dev",
        SCHEDULER_HOST="127.0.0.1",
    )
    return environ


def scheduler_argv(port: int, state_dir: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "scheduler", "--port", str(port)),
        *("--backend", "local", "--state-dir", str(state_dir)),
    ]


def test_a_state_dir_holding_another_programs_files_exits_2_with_one_line_touching_nothing(
    tmp_path: Path,
) -> None:
    foreign = foreign_dir(tmp_path)
    (foreign / "payloads").mkdir()
    before = tree(foreign)

    done = subprocess.run(
        scheduler_argv(free_port(), foreign),
        env=scheduler_environ(tmp_path / "home"),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )

    assert done.returncode == EXIT_CONFIG_ERROR
    lines = done.stderr.decode().splitlines()
    assert lines == [
        f"job-scheduler: state dir {foreign} is not empty and holds no scheduler state (no "
        "state.sqlite3): give a new or empty one, as a scheduler removes files there"
    ]
    assert tree(foreign) == before


@contextlib.asynccontextmanager
async def running(tmp_path: Path, state_dir: Path, umask: int) -> AsyncIterator[Scheduler]:
    """A ready scheduler started under `umask`, stopped with SIGTERM at the end."""
    port = free_port()
    with (tmp_path / "scheduler.stderr").open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *scheduler_argv(port, state_dir),
            env=scheduler_environ(tmp_path / "home"),
            cwd=REPO,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            umask=umask,
        )
    scheduler = Scheduler(proc, f"http://127.0.0.1:{port}")
    try:
        await wait_until(scheduler.ready, TIMEOUT_SECONDS)
        yield scheduler
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), TIMEOUT_SECONDS)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_under_a_loose_umask_in_a_dir_that_was_0755_state_files_are_the_owners_alone(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    state_dir.chmod(0o755)
    async with running(tmp_path, state_dir, umask=0o022) as scheduler:
        body = {"command": ["sh", "-c", "echo hello"], "payload": "a secret"}
        code, created = await scheduler.request("POST", "/api/v1/jobs", body)
        assert code == 200, created
        name = created["name"]

        async def ended() -> bool:
            code, job = await scheduler.request("GET", f"/api/v1/jobs/{name}")
            return code == 200 and job["status"] in ("Succeeded", "Failed")

        await wait_until(ended, TIMEOUT_SECONDS)
        found = modes(state_dir)  # while it runs: with the database's -wal and -shm
    assert {"state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"} <= found.keys()
    assert {f"payloads/{name}/payload", f"logs/{name}/0.log", f"results/{name}"} <= found.keys()
    assert found == {path: owner_only(path) for path in found}
