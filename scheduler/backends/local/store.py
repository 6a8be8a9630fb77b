"""The local backend's state: jobs, attempts and batches in `<state_dir>/state.sqlite3`, payloads
and logs in files beside it. All disk work runs on one worker thread that owns the connection, so
the event loop never waits on disk; a `flock` keeps a second scheduler off the same state dir."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, TypeVar, Unpack

from scheduler.backends.base import BatchRequest, JobRequest, Usage, Waited
from scheduler.backends.local.codec import attempt_from_row, job_from_row, request_to_json, to_text
from scheduler.backends.local.files import (
    check_name,
    is_job_name,
    make_dir,
    remove_paths,
    write_payload,
)
from scheduler.backends.local.schema import (
    Attempt,
    AttemptReason,
    JobChanges,
    StoredJob,
    connect,
    exists,
    next_value,
    transaction,
)
from scheduler.backends.local.statedir import DB_FILE, lock
from scheduler.errors import ConfigError, ConflictError, NotFoundError

log = logging.getLogger(__name__)

T = TypeVar("T")

INTERRUPTED_MESSAGE: Final = "the scheduler stopped while the job ran"
# Says that a directory is a scheduler's state dir, whose files the scheduler may remove.
SUBDIRS: Final = ("payloads", "logs", "results")
_SINGULAR: Final = {"jobs": "job", "batches": "batch"}


@dataclass(frozen=True, slots=True)
class Removed:
    """What a delete took away; `version` is the counter after it."""

    jobs: tuple[str, ...]
    paths: tuple[Path, ...]
    version: int


class LocalStore:
    """Use as `async with LocalStore(dir) as store`, or `open()` and `close()`."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.db_file = state_dir / DB_FILE
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None  # made and used on the worker thread only
        self._lock_fd: int | None = None

    def log_path(self, job: str, idx: int) -> Path:
        return self._log_dir(job) / f"{idx}.log"

    def _payload_dir(self, job: str) -> Path:
        check_name(job)
        return self.state_dir / "payloads" / job

    def _log_dir(self, job: str) -> Path:
        check_name(job)
        return self.state_dir / "logs" / job

    def result_path(self, job: str, idx: int) -> Path:
        """Where attempt `idx` of `job` may write its result (its RADIX_RESULT_PATH)."""
        return self._result_dir(job) / str(idx)

    def _result_dir(self, job: str) -> Path:
        check_name(job)
        return self.state_dir / "results" / job

    # -- opening and closing ------------------------------------------------------------------

    async def open(self) -> None:
        """ConfigError when the state dir cannot be used or another scheduler holds it."""
        if self._executor is not None:
            raise RuntimeError(f"the store in {self.state_dir} is already open")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="local-store")
        try:
            await self._run(self._opening)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._closing)
        finally:
            self._executor.shutdown()  # the worker is idle now: this only joins it
            self._executor = None

    async def __aenter__(self) -> LocalStore:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _opening(self) -> None:
        self._lock_fd = lock(self.state_dir)
        try:
            for sub in SUBDIRS:
                make_dir(self.state_dir / sub)
        except OSError as exc:
            raise ConfigError(f"state dir {self.state_dir} cannot be used: {exc.strerror}") from exc
        self._conn = conn = connect(self.db_file)
        names = {row[0] for row in conn.execute("SELECT name FROM jobs")}
        # Files a crash left behind between a commit and their removal (or creation): a job's
        # are in a dir named after it; anything else there is not ours to remove.
        orphans = [
            d
            for sub in SUBDIRS
            for d in (self.state_dir / sub).iterdir()
            if is_job_name(d.name) and d.name not in names and _is_dir(d)
        ]
        if orphans:
            log.warning("removing files of jobs no longer stored: %s", [str(o) for o in orphans])
            remove_paths(orphans)

    def _closing(self) -> None:
        conn, fd, self._conn, self._lock_fd = self._conn, self._lock_fd, None, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if fd is not None:
                os.close(fd)  # releases the flock

    async def _run(self, work: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError(f"the store in {self.state_dir} is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one transaction on the worker thread."""

        def writing() -> T:
            conn = self._db()
            with transaction(conn):
                return work(conn)

        return await self._run(writing)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in one transaction on the store's thread, for tables beside the jobs' (keys)."""
        return await self._write(work)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"the store in {self.state_dir} is not open")
        return self._conn

    def _select(self, sql: str, *params: object) -> list[sqlite3.Row]:
        return self._db().execute(sql, params).fetchall()

    async def _jobs(self, where: str, *params: object) -> list[StoredJob]:
        sql = f"SELECT * FROM jobs {where}"
        payloads = self.state_dir / "payloads"
        return await self._run(
            lambda: [job_from_row(r, payloads) for r in self._select(sql, *params)]
        )

    # -- jobs ---------------------------------------------------------------------------------

    async def add_job(self, request: JobRequest, now: datetime) -> StoredJob:
        """ConflictError when a job of that name exists; the payload file is written first."""
        return (await self._run(lambda: self._adding(None, [request], now)))[0]

    async def add_batch(self, batch: BatchRequest, now: datetime) -> list[StoredJob]:
        """The batch row and all its jobs, or nothing (no row, no payload file). Each job is
        stored with the batch's name and id."""
        return await self._run(lambda: self._adding(batch, batch.jobs, now))

    def _adding(
        self, batch: BatchRequest | None, requests: Sequence[JobRequest], now: datetime
    ) -> list[StoredJob]:
        conn = self._db()
        written: list[Path] = []
        try:
            with transaction(conn):
                if batch is not None:
                    check_name(batch.name)
                    if exists(conn, "batches", batch.name):
                        raise ConflictError(f"batch {batch.name} already exists")
                    conn.execute(
                        "INSERT INTO batches (name, batch_id, created) VALUES (?, ?, ?)",
                        (batch.name, batch.batch_id, to_text(now)),
                    )
                    requests = [
                        dataclasses.replace(r, batch_name=batch.name, batch_id=batch.batch_id)
                        for r in requests
                    ]
                return [self._inserting(conn, r, now=now, written=written) for r in requests]
        except BaseException:
            remove_paths(written)
            raise

    def _inserting(
        self, conn: sqlite3.Connection, request: JobRequest, *, now: datetime, written: list[Path]
    ) -> StoredJob:
        name = request.name
        check_name(name)
        if exists(conn, "jobs", name):
            raise ConflictError(f"job {name} already exists")
        if request.payload is not None:
            # No stored job owns this dir (checked above): whatever is in it is an orphan.
            written.append(self._payload_dir(name))
            write_payload(self._payload_dir(name), request.payload)
        row = conn.execute(
            "INSERT INTO jobs (name, uid, seq, batch_name, batch_id, job_id, request, has_payload,"
            " created, state, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'waiting', ?)"
            " RETURNING *",
            (
                name,
                str(uuid.uuid4()),
                next_value(conn, "seq"),
                request.batch_name,
                request.batch_id,
                request.job_id,
                request_to_json(request),
                request.payload is not None,
                to_text(now),
                next_value(conn, "version"),
            ),
        ).fetchall()[0]
        return job_from_row(row, self.state_dir / "payloads")

    async def get(self, name: str) -> StoredJob | None:
        return next(iter(await self._jobs("WHERE name = ?", name)), None)

    async def jobs(self) -> list[StoredJob]:
        """All jobs in submission order."""
        return await self._jobs("ORDER BY seq")

    async def waiting(self, limit: int) -> list[StoredJob]:
        """Up to `limit` waiting jobs, oldest submission first."""
        return await self._jobs("WHERE state = 'waiting' ORDER BY seq LIMIT ?", limit)

    async def version(self) -> int:
        """The global change counter: every job or attempt change (and delete) raises it."""
        rows = await self._run(lambda: self._select("SELECT value FROM meta WHERE key='version'"))
        return int(rows[0][0])

    async def update_job(self, name: str, /, **changes: Unpack[JobChanges]) -> StoredJob:
        """Set the given columns and give the job a new version. NotFoundError if it is gone."""
        unknown = changes.keys() - JobChanges.__optional_keys__
        if unknown:
            raise TypeError(f"update_job cannot set {sorted(unknown)}")
        columns = "".join(f"{column} = ?, " for column in changes)
        values = [to_text(v) if isinstance(v, datetime) else v for v in changes.values()]
        sql = f"UPDATE jobs SET {columns}version = ? WHERE name = ? RETURNING *"

        def updating(conn: sqlite3.Connection) -> StoredJob:
            rows = conn.execute(sql, (*values, next_value(conn, "version"), name)).fetchall()
            if not rows:
                raise NotFoundError(f"job {name} not found")
            return job_from_row(rows[0], self.state_dir / "payloads")

        return await self._write(updating)

    # -- attempts -----------------------------------------------------------------------------

    async def start_attempt(
        self,
        name: str,
        *,
        now: datetime,
        pid: int | None,
        log_path: Path | None = None,
        waited: Waited | None = None,
    ) -> Attempt:
        """A new attempt (the next `idx`), its log dir made. `log_path` defaults to
        `log_path(name, idx)`; with `pid=None` it is not started yet (see `record_start`).
        `waited`: why the job waited before it."""

        def starting(conn: sqlite3.Connection) -> Attempt:
            if not exists(conn, "jobs", name):
                raise NotFoundError(f"job {name} not found")
            sql = "SELECT COALESCE(MAX(idx) + 1, 0) FROM attempts WHERE job = ?"
            idx = int(conn.execute(sql, (name,)).fetchall()[0][0])
            make_dir(self._log_dir(name))
            make_dir(self._result_dir(name))
            row = conn.execute(
                "INSERT INTO attempts (job, idx, created, started, pid, log_path, version,"
                " waited_reason, waited_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
                (
                    name,
                    idx,
                    to_text(now),
                    None if pid is None else to_text(now),
                    pid,
                    str(log_path or self.log_path(name, idx)),
                    next_value(conn, "version"),
                    waited.reason if waited else None,
                    waited.message if waited else None,
                ),
            ).fetchall()[0]
            return attempt_from_row(row)

        return await self._write(starting)

    async def record_start(self, name: str, idx: int, *, now: datetime, pid: int) -> Attempt:
        """The attempt's process runs as `pid` since `now`."""
        return await self._update_attempt(name, idx, started=to_text(now), pid=pid)

    async def finish_attempt(
        self,
        name: str,
        idx: int,
        *,
        now: datetime,
        exit_code: int | None,
        reason: AttemptReason,
        message: str | None,
        result: str | None = None,
        usage: Usage | None = None,
    ) -> Attempt:
        """ConflictError when the attempt was finished already (e.g. by `mark_interrupted`)."""
        return await self._update_attempt(
            name,
            idx,
            finished=to_text(now),
            exit_code=exit_code,
            reason=reason,
            message=message,
            result=result,
            peak_memory_bytes=usage.peak_memory_bytes if usage else None,
            cpu_seconds=usage.cpu_seconds if usage else None,
            usage_samples=usage.samples if usage else None,
        )

    async def _update_attempt(self, name: str, idx: int, **columns: object) -> Attempt:
        """Sets `columns` of the unfinished attempt and gives it a new version."""
        sets = "".join(f"{column} = ?, " for column in columns)
        sql = (
            f"UPDATE attempts SET {sets}version = ?"
            " WHERE job = ? AND idx = ? AND finished IS NULL RETURNING *"
        )

        def updating(conn: sqlite3.Connection) -> Attempt:
            values = (*columns.values(), next_value(conn, "version"), name, idx)
            rows = conn.execute(sql, values).fetchall()
            if rows:
                return attempt_from_row(rows[0])
            found = "SELECT 1 FROM attempts WHERE job = ? AND idx = ?"
            if conn.execute(found, (name, idx)).fetchall():
                raise ConflictError(f"attempt {idx} of job {name} has finished already")
            raise NotFoundError(f"attempt {idx} of job {name} not found")

        return await self._write(updating)

    async def attempts(self, name: str) -> list[Attempt]:
        sql = "SELECT * FROM attempts WHERE job = ? ORDER BY idx"
        return await self._run(lambda: [attempt_from_row(r) for r in self._select(sql, name)])

    async def mark_interrupted(
        self, now: datetime, message: str = INTERRUPTED_MESSAGE
    ) -> list[str]:
        """Fail every running job and finish every open attempt, both for `SchedulerStopped`:
        no process of theirs is supervised any more. Returns the failed jobs' names."""

        def marking(conn: sqlite3.Connection) -> list[str]:
            sql = "SELECT name FROM jobs WHERE state = 'running' ORDER BY seq"
            names = [str(row[0]) for row in conn.execute(sql).fetchall()]
            for name in names:
                conn.execute(
                    "UPDATE jobs SET state = 'failed', condition_type = 'Failed',"
                    " condition_reason = 'SchedulerStopped', condition_message = ?,"
                    " condition_time = ?, version = ?, failed_attempts = failed_attempts"
                    " + (SELECT COUNT(*) FROM attempts WHERE job = name AND finished IS NULL)"
                    " WHERE name = ?",
                    (message, to_text(now), next_value(conn, "version"), name),
                )
            sql = "SELECT job, idx FROM attempts WHERE finished IS NULL ORDER BY job, idx"
            for job, idx in conn.execute(sql).fetchall():
                conn.execute(
                    "UPDATE attempts SET finished = ?, reason = 'SchedulerStopped', message = ?,"
                    " version = ? WHERE job = ? AND idx = ?",
                    (to_text(now), message, next_value(conn, "version"), job, idx),
                )
            return names

        return await self._write(marking)

    # -- deleting -----------------------------------------------------------------------------

    async def delete_job(self, name: str) -> Removed:
        """The job's rows, payload dir and logs. NotFoundError when it is gone already."""
        return await self._run(lambda: self._deleting("jobs", name, "name = ?"))

    async def delete_batch(self, name: str) -> Removed:
        """The batch row and all its jobs' rows, payload dirs and logs."""
        return await self._run(lambda: self._deleting("batches", name, "batch_name = ?"))

    def _deleting(self, table: Literal["jobs", "batches"], name: str, where: str) -> Removed:
        conn = self._db()
        with transaction(conn):
            if not exists(conn, table, name):
                raise NotFoundError(f"{_SINGULAR[table]} {name} not found")
            names = [str(r[0]) for r in self._select(f"SELECT name FROM jobs WHERE {where}", name)]
            sql = f"SELECT log_path FROM attempts JOIN jobs ON job = name WHERE {where}"
            logs = [Path(r[0]) for r in self._select(sql, name)]
            conn.execute(f"DELETE FROM jobs WHERE {where}", (name,))  # their attempts cascade
            if table == "batches":
                conn.execute("DELETE FROM batches WHERE name = ?", (name,))
            # Each job deleted takes a version of its own, as every change does.
            version = 0
            for _ in range(max(len(names), 1)):
                version = next_value(conn, "version")
        # After the commit: a crash in between leaves orphans, which the next `open()` removes.
        dirs = [
            d for n in names for d in (self._payload_dir(n), self._log_dir(n), self._result_dir(n))
        ]
        outside = [p for p in logs if not any(p.is_relative_to(d) for d in dirs)]
        return Removed(tuple(names), tuple(remove_paths([*dirs, *outside])), version)


# -- worker-thread helpers ----------------------------------------------------------------------


def _is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()
