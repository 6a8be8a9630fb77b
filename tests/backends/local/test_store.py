"""The local backend's SQLite store: what it keeps, what it removes, and who may open it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from scheduler.backends.base import (
    BatchRequest,
    ExitCodeRule,
    JobRequest,
    NodeSpec,
    RuntimeSpec,
    Waited,
)
from scheduler.backends.local.codec import request_from_json, request_to_json
from scheduler.backends.local.schema import MIGRATIONS, JobChanges
from scheduler.backends.local.statedir import MARKER_FILE, MARKER_TEXT
from scheduler.backends.local.store import INTERRUPTED_MESSAGE, LocalStore
from scheduler.errors import ConfigError, ConflictError, InvalidError, NotFoundError
from scheduler.settings import default_state_dir
from tests.factories import job_request

NOW = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)
REPO = Path(__file__).resolve().parents[3]

# Opens the store in its own process, says so, and holds it until stdin closes.
HOLDER = """
import asyncio, sys
from pathlib import Path
from scheduler.backends.local.store import LocalStore

async def main():
    async with LocalStore(Path(sys.argv[1])):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def request(name: str, **changes: Any) -> JobRequest:
    return job_request(
        name=name, job_id=f"id-{name}", args=("sleep 1",), backoff_limit=2, **changes
    )


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
async def store(state_dir: Path) -> AsyncIterator[LocalStore]:
    async with LocalStore(state_dir) as opened:
        yield opened


# -- what it keeps ---------------------------------------------------------------------------


def test_a_request_round_trips_through_json_without_its_payload() -> None:
    full = request(
        "compute-1",
        command=None,
        run_as_user=1000,
        failure_rules=(ExitCodeRule("FailJob", "In", (1, 42)),),
        node=NodeSpec(gpu="nvidia-v100", gpu_count="2"),
        runtime=RuntimeSpec(architecture="arm64", node_type="gpu-pool"),
        batch_name="batch-compute-1",
        batch_id="b1",
        batch_index=3,
    )
    assert request_from_json(request_to_json(full)) == dataclasses.replace(full, payload=None)


async def test_an_added_job_comes_back_with_its_payload_in_a_read_only_file(
    store: LocalStore, state_dir: Path
) -> None:
    added = await store.add_job(request("compute-1"), NOW)
    stored = await store.get("compute-1")
    assert stored is not None and stored == added
    assert stored.request == dataclasses.replace(request("compute-1"), payload=None)
    assert (stored.state, stored.job_id, stored.created) == ("waiting", "id-compute-1", NOW)
    assert stored.payload_file == state_dir / "payloads" / "compute-1" / "payload"
    assert stored.payload_file is not None
    assert stored.payload_file.read_bytes() == b'{"x": 10}'
    assert stat.S_IMODE(stored.payload_file.stat().st_mode) == 0o400
    assert stat.S_IMODE(stored.payload_file.parent.stat().st_mode) == 0o700


async def test_an_empty_payload_is_a_file_and_no_payload_is_none(store: LocalStore) -> None:
    empty = await store.add_job(request("empty", payload=b""), NOW)
    none = await store.add_job(request("none", payload=None, payload_path=None), NOW)
    assert empty.payload_file is not None and empty.payload_file.read_bytes() == b""
    assert none.payload_file is None


async def test_an_unknown_job_is_none(store: LocalStore) -> None:
    assert await store.get("nobody") is None


async def test_times_are_stored_as_utc(store: LocalStore, state_dir: Path) -> None:
    oslo = timezone(timedelta(hours=1))
    job = await store.add_job(request("compute-1"), NOW.astimezone(oslo))
    assert job.created == NOW and job.created.tzinfo == UTC
    with pytest.raises(ValueError, match="naive"):
        await store.add_job(request("compute-2"), NOW.replace(tzinfo=None))


async def test_jobs_list_in_submission_order_and_waiting_gives_the_oldest_first(
    store: LocalStore,
) -> None:
    for name in ("c", "a", "d", "b"):
        await store.add_job(request(name), NOW)
    await store.update_job("a", state="running", started=LATER)
    assert [job.name for job in await store.jobs()] == ["c", "a", "d", "b"]
    assert [job.name for job in await store.waiting(2)] == ["c", "d"]
    assert [job.seq for job in await store.jobs()] == [1, 2, 3, 4]


async def test_a_job_name_taken_is_a_conflict_that_keeps_the_first_payload(
    store: LocalStore,
) -> None:
    first = await store.add_job(request("compute-1"), NOW)
    with pytest.raises(ConflictError, match="compute-1"):
        await store.add_job(request("compute-1", payload=b"other"), NOW)
    assert first.payload_file is not None and first.payload_file.read_bytes() == b'{"x": 10}'
    assert await store.jobs() == [first]


@pytest.mark.parametrize("name", ["", ".", "..", "../escape", "a/b", ".hidden"])
async def test_a_name_that_is_no_file_name_is_invalid(store: LocalStore, name: str) -> None:
    with pytest.raises(InvalidError):
        await store.add_job(request(name), NOW)
    assert await store.jobs() == []


async def test_update_job_sets_the_given_columns_and_a_new_version(store: LocalStore) -> None:
    added = await store.add_job(request("compute-1"), NOW)
    changes: JobChanges = {
        "state": "failed",
        "started": NOW,
        "completed": None,
        "failed_attempts": 3,
        "condition_type": "Failed",
        "condition_reason": "BackoffLimitExceeded",
        "condition_message": "three strikes",
        "condition_time": LATER,
        "stopped_at": LATER,
    }
    updated = await store.update_job("compute-1", **changes)
    assert updated == await store.get("compute-1")
    assert updated.version > added.version
    assert updated == dataclasses.replace(added, **changes, version=updated.version)


async def test_update_job_of_an_unknown_job_is_not_found(store: LocalStore) -> None:
    with pytest.raises(NotFoundError):
        await store.update_job("nobody", state="running")


async def test_update_job_refuses_a_column_it_does_not_own(store: LocalStore) -> None:
    await store.add_job(request("compute-1"), NOW)
    with pytest.raises(TypeError, match="name"):
        await store.update_job("compute-1", name="other")  # type: ignore[call-arg]


async def test_the_version_rises_with_every_change(store: LocalStore) -> None:
    seen = [await store.version()]
    await store.add_job(request("compute-1"), NOW)
    seen.append(await store.version())
    await store.update_job("compute-1", state="running")
    seen.append(await store.version())
    await store.start_attempt("compute-1", now=NOW, pid=123)
    seen.append(await store.version())
    await store.finish_attempt(
        "compute-1", 0, now=LATER, exit_code=0, reason="Completed", message=None
    )
    seen.append(await store.version())
    removed = await store.delete_job("compute-1")
    seen.append(await store.version())
    assert seen == sorted(set(seen)) and seen[0] == 0
    assert removed.version == seen[-1]


# -- batches ---------------------------------------------------------------------------------


async def test_a_batch_is_stored_with_all_its_jobs(store: LocalStore) -> None:
    batch = BatchRequest("batch-1", "b-id", (request("batch-1-a"), request("batch-1-b")))
    jobs = await store.add_batch(batch, NOW)
    assert [job.name for job in jobs] == ["batch-1-a", "batch-1-b"]
    assert await store.jobs() == jobs
    assert {(job.batch_name, job.batch_id) for job in jobs} == {("batch-1", "b-id")}
    assert jobs[0].request.batch_name == "batch-1"


async def test_a_batch_with_a_job_name_twice_leaves_no_row_and_no_payload(
    store: LocalStore, state_dir: Path
) -> None:
    batch = BatchRequest("batch-1", None, (request("batch-1-a"), request("batch-1-a")))
    with pytest.raises(ConflictError, match="batch-1-a"):
        await store.add_batch(batch, NOW)
    assert await store.jobs() == []
    assert list((state_dir / "payloads").iterdir()) == []
    # The batch row went too: the same batch can be added again, whole.
    fixed = BatchRequest("batch-1", None, (request("batch-1-a"), request("batch-1-b")))
    assert len(await store.add_batch(fixed, NOW)) == 2


async def test_a_batch_clashing_with_a_stored_job_keeps_that_job_and_its_payload(
    store: LocalStore, state_dir: Path
) -> None:
    kept = await store.add_job(request("taken", payload=b"mine"), NOW)
    batch = BatchRequest("batch-1", None, (request("batch-1-a"), request("taken")))
    with pytest.raises(ConflictError):
        await store.add_batch(batch, NOW)
    assert await store.jobs() == [kept]
    assert [p.name for p in (state_dir / "payloads").iterdir()] == ["taken"]
    assert kept.payload_file is not None and kept.payload_file.read_bytes() == b"mine"


async def test_a_batch_name_taken_is_a_conflict(store: LocalStore) -> None:
    await store.add_batch(BatchRequest("batch-1", None, (request("batch-1-a"),)), NOW)
    with pytest.raises(ConflictError, match="batch batch-1"):
        await store.add_batch(BatchRequest("batch-1", None, (request("batch-1-b"),)), NOW)
    assert [job.name for job in await store.jobs()] == ["batch-1-a"]


# -- attempts --------------------------------------------------------------------------------


async def test_attempts_are_numbered_and_their_log_dir_is_made(
    store: LocalStore, state_dir: Path
) -> None:
    await store.add_job(request("compute-1"), NOW)
    first = await store.start_attempt("compute-1", now=NOW, pid=100)
    assert (first.idx, first.pid, first.started, first.finished) == (0, 100, NOW, None)
    assert first.log_path == store.log_path("compute-1", 0) == state_dir / "logs/compute-1/0.log"
    assert first.log_path.parent.is_dir()
    done = await store.finish_attempt(
        "compute-1", 0, now=LATER, exit_code=1, reason="Error", message="exit code 1"
    )
    assert done == dataclasses.replace(
        first,
        finished=LATER,
        exit_code=1,
        reason="Error",
        message="exit code 1",
        version=done.version,
    )
    second = await store.start_attempt("compute-1", now=LATER, pid=None)
    assert (second.idx, second.pid, second.started) == (1, None, None)
    running = await store.record_start("compute-1", 1, now=LATER, pid=200)
    assert (running.pid, running.started, running.created) == (200, LATER, LATER)
    assert await store.attempts("compute-1") == [done, running]


async def test_an_attempt_keeps_why_its_job_waited_before_it_also_once_reopened(
    state_dir: Path,
) -> None:
    queued = Waited("Queued", "2nd in line; 4 running at most")
    async with LocalStore(state_dir) as store:
        await store.add_job(request("compute-1"), NOW)
        first = await store.start_attempt("compute-1", now=NOW, pid=None, waited=queued)
        await store.record_start("compute-1", 0, now=LATER, pid=100)
        await store.finish_attempt(
            "compute-1", 0, now=LATER, exit_code=1, reason="Error", message=None
        )
        retry = await store.start_attempt("compute-1", now=LATER, pid=200)
        assert (first.waited, retry.waited) == (queued, None)
    async with LocalStore(state_dir) as store:
        assert [a.waited for a in await store.attempts("compute-1")] == [queued, None]


def state_of_schema(state_dir: Path, version: int) -> None:
    """A state dir as a scheduler of schema `version` left it, with no job yet."""
    state_dir.mkdir()
    conn = sqlite3.connect(state_dir / "state.sqlite3")
    conn.executescript("".join(MIGRATIONS[:version]) + f"PRAGMA user_version = {version};")
    conn.close()


async def test_a_state_file_of_schema_4_gains_why_attempts_waited(state_dir: Path) -> None:
    state_of_schema(state_dir, 4)
    async with LocalStore(state_dir) as store:
        await store.add_job(request("compute-1"), NOW)
        await store.start_attempt("compute-1", now=NOW, pid=100, waited=Waited("Queued"))
        assert [a.waited for a in await store.attempts("compute-1")] == [Waited("Queued")]


async def test_finishing_an_attempt_twice_is_a_conflict(store: LocalStore) -> None:
    await store.add_job(request("compute-1"), NOW)
    await store.start_attempt("compute-1", now=NOW, pid=100)
    await store.finish_attempt(
        "compute-1", 0, now=LATER, exit_code=0, reason="Completed", message=None
    )
    with pytest.raises(ConflictError):
        await store.finish_attempt(
            "compute-1", 0, now=LATER, exit_code=137, reason="Stopped", message=None
        )
    assert (await store.attempts("compute-1"))[0].reason == "Completed"


async def test_attempts_of_unknown_jobs_are_not_found(store: LocalStore) -> None:
    with pytest.raises(NotFoundError):
        await store.start_attempt("nobody", now=NOW, pid=1)
    await store.add_job(request("compute-1"), NOW)
    with pytest.raises(NotFoundError):
        await store.finish_attempt(
            "compute-1", 5, now=NOW, exit_code=0, reason="Completed", message=None
        )


async def test_mark_interrupted_fails_running_jobs_and_finishes_their_attempts(
    store: LocalStore,
) -> None:
    for name in ("running", "waiting", "done"):
        await store.add_job(request(name), NOW)
    await store.update_job("running", state="running", started=NOW)
    await store.start_attempt("running", now=NOW, pid=100)
    await store.update_job("done", state="succeeded", completed=NOW, condition_type="Complete")
    before = {job.name: job for job in await store.jobs()}

    assert await store.mark_interrupted(LATER) == ["running"]

    failed = await store.get("running")
    assert failed is not None and failed.version > before["running"].version
    assert failed == dataclasses.replace(
        before["running"],
        state="failed",
        condition_type="Failed",
        condition_reason="SchedulerStopped",
        condition_message=INTERRUPTED_MESSAGE,
        condition_time=LATER,
        failed_attempts=1,  # the attempt it cut short
        version=failed.version,
    )
    [attempt] = await store.attempts("running")
    assert (attempt.finished, attempt.reason) == (LATER, "SchedulerStopped")
    assert attempt.message == INTERRUPTED_MESSAGE
    assert await store.get("waiting") == before["waiting"]
    assert await store.get("done") == before["done"]
    assert await store.mark_interrupted(LATER) == []


async def test_mark_interrupted_takes_the_message_of_a_sigterm(store: LocalStore) -> None:
    await store.add_job(request("compute-1"), NOW)
    await store.update_job("compute-1", state="running")
    await store.mark_interrupted(LATER, message="the scheduler was terminated (SIGTERM)")
    job = await store.get("compute-1")
    assert job is not None
    assert job.condition_message == "the scheduler was terminated (SIGTERM)"


# -- what it removes -------------------------------------------------------------------------


async def test_delete_job_removes_its_rows_payload_dir_and_logs(
    store: LocalStore, state_dir: Path
) -> None:
    await store.add_job(request("compute-1"), NOW)
    kept = await store.add_job(request("compute-2"), NOW)
    attempt = await store.start_attempt("compute-1", now=NOW, pid=100)
    attempt.log_path.write_text("hello\n")
    elsewhere = state_dir.parent / "elsewhere.log"
    elsewhere.write_text("hello\n")
    await store.start_attempt("compute-1", now=NOW, pid=101, log_path=elsewhere)

    removed = await store.delete_job("compute-1")

    assert removed.jobs == ("compute-1",)
    assert set(removed.paths) == {
        state_dir / "payloads" / "compute-1",
        state_dir / "logs" / "compute-1",
        state_dir / "results" / "compute-1",
        elsewhere,
    }
    assert not any(path.exists() for path in removed.paths)
    assert await store.jobs() == [kept]
    assert await store.attempts("compute-1") == []
    with pytest.raises(NotFoundError):
        await store.delete_job("compute-1")


async def test_delete_batch_removes_all_its_jobs_and_their_files(
    store: LocalStore, state_dir: Path
) -> None:
    other = await store.add_job(request("single"), NOW)
    batch = BatchRequest("batch-1", None, (request("batch-1-a"), request("batch-1-b")))
    await store.add_batch(batch, NOW)
    await store.start_attempt("batch-1-a", now=NOW, pid=100)

    removed = await store.delete_batch("batch-1")

    assert removed.jobs == ("batch-1-a", "batch-1-b")
    assert set(removed.paths) == {
        state_dir / "payloads" / "batch-1-a",
        state_dir / "payloads" / "batch-1-b",
        state_dir / "logs" / "batch-1-a",
        state_dir / "results" / "batch-1-a",
    }
    assert await store.jobs() == [other]
    assert sorted(p.name for p in (state_dir / "payloads").iterdir()) == ["single"]
    with pytest.raises(NotFoundError, match="batch batch-1"):
        await store.delete_batch("batch-1")


async def test_files_of_jobs_no_longer_stored_are_removed_at_open(state_dir: Path) -> None:
    async with LocalStore(state_dir) as store:
        await store.add_job(request("kept"), NOW)
    orphan = state_dir / "payloads" / "crashed"
    orphan.mkdir()
    (orphan / "payload").write_bytes(b"x")
    (state_dir / "logs" / "crashed").mkdir()
    async with LocalStore(state_dir) as store:
        assert [job.name for job in await store.jobs()] == ["kept"]
    assert sorted(p.name for p in (state_dir / "payloads").iterdir()) == ["kept"]
    assert list((state_dir / "logs").iterdir()) == []


async def test_at_open_only_dirs_named_like_jobs_are_removed(state_dir: Path) -> None:
    async with LocalStore(state_dir):
        pass
    mine = [
        state_dir / "logs" / "app.log",
        state_dir / "logs" / ".hidden",
        state_dir / "results" / "Experiment_1",
        state_dir / "payloads" / "notes.txt",
    ]
    for path in mine:
        if path.suffix or path.name.startswith("."):
            path.write_text("the user's")
        else:
            path.mkdir()
            (path / "data.csv").write_text("the user's")
    (state_dir / "results" / "crashed-1").mkdir()
    async with LocalStore(state_dir):
        pass
    assert all(path.exists() for path in mine)
    assert not (state_dir / "results" / "crashed-1").exists()


# -- restarting ------------------------------------------------------------------------------


async def test_a_reopened_store_lists_the_same_jobs_and_counts_on(state_dir: Path) -> None:
    async with LocalStore(state_dir) as store:
        await store.add_job(request("compute-1"), NOW)
        await store.add_batch(BatchRequest("batch-1", "b", (request("batch-1-a"),)), NOW)
        await store.start_attempt("compute-1", now=NOW, pid=100)
        before, attempts, version = (
            await store.jobs(),
            await store.attempts("compute-1"),
            (await store.version()),
        )
    async with LocalStore(state_dir) as store:
        assert await store.jobs() == before
        assert await store.attempts("compute-1") == attempts
        assert await store.version() == version
        later = await store.add_job(request("compute-2"), NOW)
        assert later.seq > before[-1].seq and later.version > version


async def test_the_database_is_in_wal_mode_with_the_schema_version_set(
    store: LocalStore,
) -> None:
    conn = sqlite3.connect(store.db_file)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    finally:
        conn.close()


async def test_a_database_of_a_newer_scheduler_is_refused(state_dir: Path) -> None:
    async with LocalStore(state_dir) as store:
        pass
    conn = sqlite3.connect(store.db_file)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigError, match="schema 99"):
        await LocalStore(state_dir).open()


async def test_a_file_that_is_no_database_is_a_config_error(state_dir: Path) -> None:
    write_garbage(state_dir / "state.sqlite3")
    with pytest.raises(ConfigError, match=r"state\.sqlite3.*not a database"):
        await LocalStore(state_dir).open()
    # The failed open let go of the lock.
    with pytest.raises(ConfigError, match="not a database"):
        await LocalStore(state_dir).open()


def write_garbage(path: Path) -> None:
    path.parent.mkdir()
    path.write_bytes(b"not a database, just some text" * 100)


# -- who may open it -------------------------------------------------------------------------


async def test_a_second_scheduler_process_on_the_same_dir_is_refused_naming_its_pid(
    state_dir: Path,
) -> None:
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(state_dir),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert await holder.stdout.readline() == b"ready\n"
        with pytest.raises(ConfigError) as caught:
            await LocalStore(state_dir).open()
        assert str(caught.value) == (
            f"state dir {state_dir} is in use by another scheduler (pid {holder.pid})"
        )
    finally:
        holder.kill()  # as a crash would: the lock goes with the process
        holder.stdin.close()
        await holder.wait()
    async with LocalStore(state_dir) as store:
        assert await store.jobs() == []


async def test_a_second_store_in_the_same_process_is_refused_too(
    store: LocalStore, state_dir: Path
) -> None:
    with pytest.raises(ConfigError, match=rf"in use by another scheduler \(pid {os.getpid()}\)"):
        await LocalStore(state_dir).open()
    assert await store.jobs() == []  # the first is unharmed


async def test_a_state_dir_under_a_regular_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    where = tmp_path / "file" / "sub"
    with pytest.raises(ConfigError) as caught:
        await LocalStore(where).open()
    assert str(caught.value) == f"state dir {where} cannot be used: Not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file modes")
async def test_a_state_dir_in_a_read_only_dir_is_a_config_error(tmp_path: Path) -> None:
    tmp_path.joinpath("ro").mkdir(mode=0o500)
    where = tmp_path / "ro" / "state"
    try:
        with pytest.raises(ConfigError) as caught:
            await LocalStore(where).open()
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert str(caught.value) == f"state dir {where} cannot be used: Permission denied"


def foreign_dir(tmp_path: Path) -> Path:
    """A directory another program filled with files named as the scheduler would name its
    own: `results/experiment-1/data.csv` and `logs/app.log`."""
    foreign = tmp_path / "experiments"
    (foreign / "results" / "experiment-1").mkdir(parents=True)
    (foreign / "results" / "experiment-1" / "data.csv").write_text("1,2,3\n")
    (foreign / "logs").mkdir()
    (foreign / "logs" / "app.log").write_text("started\n")
    return foreign


async def test_a_non_empty_dir_of_another_program_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    foreign = foreign_dir(tmp_path)
    before = tree(foreign)
    with pytest.raises(ConfigError) as caught:
        await LocalStore(foreign).open()
    assert str(caught.value) == (
        f"state dir {foreign} is not empty and holds no scheduler state (no state.sqlite3): "
        "give a new or empty one, as a scheduler removes files there"
    )
    assert tree(foreign) == before


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path below `root`, with its mode and, for a file, its content."""
    return {
        str(path.relative_to(root)): (
            path.lstat().st_mode,
            path.read_bytes() if path.is_file() else None,
        )
        for path in [root, *root.rglob("*")]
    }


async def test_an_empty_dir_becomes_a_state_dir_and_is_known_as_one_after(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    async with LocalStore(empty) as store:
        await store.add_job(request("compute-1"), NOW)
    assert (empty / MARKER_FILE).read_bytes() == MARKER_TEXT
    async with LocalStore(empty) as store:
        assert [job.name for job in await store.jobs()] == ["compute-1"]


async def test_a_state_dir_from_before_the_marker_is_known_by_its_database(
    state_dir: Path,
) -> None:
    async with LocalStore(state_dir) as store:
        await store.add_job(request("compute-1"), NOW)
    (state_dir / MARKER_FILE).unlink()
    async with LocalStore(state_dir) as store:
        assert [job.name for job in await store.jobs()] == ["compute-1"]
    assert (state_dir / MARKER_FILE).exists()


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask, under which files are made readable by all unless made otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def modes(state_dir: Path) -> dict[str, int]:
    return {
        str(path.relative_to(state_dir)): stat.S_IMODE(path.lstat().st_mode)
        for path in [state_dir, *state_dir.rglob("*")]
    }


def owner_only(path: str) -> int:
    """The mode each state file should have: the payload read-only, dirs 0700, files 0600."""
    if path.endswith("/payload"):
        return 0o400
    if path in (".", "payloads", "logs", "results") or path.count("/") == 1:
        return 0o700
    return 0o600


@pytest.mark.usefixtures("loose_umask")
async def test_state_files_are_the_owners_alone_in_a_dir_that_was_0755(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o755)
    async with LocalStore(state_dir) as store:
        await store.add_job(request("compute-1"), NOW)
        attempt = await store.start_attempt("compute-1", now=NOW, pid=100)
        found = modes(state_dir)  # while open: with the database's -wal and -shm
    assert {"state.sqlite3-wal", "state.sqlite3-shm", "lock", MARKER_FILE} <= found.keys()
    assert {"payloads/compute-1/payload", "logs/compute-1", "results/compute-1"} <= found.keys()
    assert found == {path: owner_only(path) for path in found}
    assert attempt.log_path.parent == state_dir / "logs" / "compute-1"


@pytest.mark.usefixtures("loose_umask")
async def test_state_an_older_scheduler_left_readable_is_made_the_owners_alone(
    state_dir: Path,
) -> None:
    async with LocalStore(state_dir) as store:
        await store.add_job(request("compute-1"), NOW)
    for path in (state_dir, state_dir / "payloads", state_dir / "logs"):
        path.chmod(0o755)
    (state_dir / "state.sqlite3").chmod(0o644)
    async with LocalStore(state_dir):
        found = modes(state_dir)
    assert found == {path: owner_only(path) for path in found}


async def test_a_closed_store_refuses_work(state_dir: Path) -> None:
    store = LocalStore(state_dir)
    await store.open()
    await store.close()
    await store.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="not open"):
        await store.jobs()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_STATE_HOME": "/xdg", "HOME": "/home/u"}, "/xdg/job-scheduler/app/dev/compute"),
        ({"HOME": "/home/u"}, "/home/u/.local/state/job-scheduler/app/dev/compute"),
        (
            {"XDG_STATE_HOME": "", "HOME": "/home/u"},
            "/home/u/.local/state/job-scheduler/app/dev/compute",
        ),
        (
            {"XDG_STATE_HOME": "rel", "HOME": "/home/u"},
            "/home/u/.local/state/job-scheduler/app/dev/compute",
        ),
    ],
)
def test_the_default_state_dir_follows_xdg(environ: dict[str, str], expected: str) -> None:
    assert default_state_dir(environ, app="app", environment="dev", job="compute") == Path(expected)


def test_the_default_state_dir_refuses_names_that_are_no_file_names() -> None:
    with pytest.raises(ConfigError, match=r"'\.\.'"):
        default_state_dir({"HOME": "/home/u"}, app="app", environment="..", job="compute")


# -- the event loop --------------------------------------------------------------------------


async def test_the_event_loop_keeps_ticking_while_1000_jobs_are_added(store: LocalStore) -> None:
    ticks_while_writing = 0

    async def ticking(adding: asyncio.Future[Any]) -> None:
        nonlocal ticks_while_writing
        while not adding.done():
            ticks_while_writing += 1
            await asyncio.sleep(0.001)

    # Without payloads: each payload file is fsynced, which is slow on some disks and beside
    # the point here.
    names = [f"compute-{i:04}" for i in range(1000)]
    adding = asyncio.gather(*(store.add_job(request(name, payload=None), NOW) for name in names))
    await asyncio.gather(ticking(adding), adding)
    # Each add is one call; one big batch is a single call, which must not stall the loop either.
    jobs = tuple(request(f"batch-1-{i:04}", payload=None) for i in range(1000))
    batch = BatchRequest("batch-1", None, jobs)
    adding_batch = asyncio.ensure_future(store.add_batch(batch, NOW))
    ticks_before = ticks_while_writing
    await asyncio.gather(ticking(adding_batch), adding_batch)

    assert ticks_before > 1
    assert ticks_while_writing - ticks_before > 1  # blocking, it would have ticked once at most
    assert [job.name for job in await store.jobs()] == names + [j.name for j in batch.jobs]
