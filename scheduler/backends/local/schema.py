"""The local store's SQLite schema: its tables, as SQL and as the rows they are read into, and the
connection that keeps them (opened and migrated, transactions begun and committed by us). The I/O
here runs on the store's worker thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, TypedDict, get_args

from scheduler.backends.base import JobRequest, Usage, Waited
from scheduler.backends.local.files import own_file
from scheduler.errors import ConfigError

JobState = Literal["waiting", "running", "succeeded", "failed", "stopped"]
ConditionType = Literal["Complete", "Failed"]
AttemptReason = Literal[
    "Completed", "Error", "DeadlineExceeded", "OOMKilled", "Stopped", "SchedulerStopped"
]
# SQLite waits this long for a lock an outside reader (the sqlite3 shell) holds.
BUSY_TIMEOUT_MS: Final = 5000


def _one_of(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# One script per schema version; `PRAGMA user_version` says how many have run. The `meta` rows
# are counters: `version` (raised by every change) and `seq` (submission order).
MIGRATIONS: Final = (
    f"""
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('version', 0), ('seq', 0);
    CREATE TABLE batches (name TEXT PRIMARY KEY, batch_id TEXT, created TEXT NOT NULL);
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        seq INTEGER NOT NULL UNIQUE,
        batch_name TEXT,
        batch_id TEXT,
        job_id TEXT,
        request TEXT NOT NULL,
        has_payload INTEGER NOT NULL CHECK (has_payload IN (0, 1)),
        created TEXT NOT NULL,
        started TEXT,
        completed TEXT,
        state TEXT NOT NULL CHECK (state IN ({_one_of(get_args(JobState))})),
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        condition_type TEXT CHECK (condition_type IN ({_one_of(get_args(ConditionType))})),
        condition_reason TEXT,
        condition_message TEXT,
        condition_time TEXT,
        stopped_at TEXT,
        version INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_state ON jobs (state, seq);
    CREATE INDEX jobs_by_batch ON jobs (batch_name);
    CREATE TABLE attempts (
        job TEXT NOT NULL REFERENCES jobs (name) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        created TEXT NOT NULL,
        started TEXT,
        finished TEXT,
        pid INTEGER,
        exit_code INTEGER,
        reason TEXT CHECK (reason IN ({_one_of(get_args(AttemptReason))})),
        message TEXT,
        log_path TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (job, idx)
    ) WITHOUT ROWID;
    """,
    # 2: Idempotency-Key claims (see keys.py).
    """
    CREATE TABLE idempotency_keys (
        key_hash TEXT PRIMARY KEY,
        body_hash TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('job', 'batch')),
        name TEXT NOT NULL,
        created TEXT NOT NULL,
        version TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created);
    """,
    # 3: restarts (when, and the first attempt of the run since) and what attempts wrote as
    # their result.
    """
    ALTER TABLE jobs ADD COLUMN restarted TEXT;
    ALTER TABLE jobs ADD COLUMN first_attempt INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE attempts ADD COLUMN result TEXT;
    """,
    # 4: what each attempt used (`Usage`), NULL for one never measured.
    """
    ALTER TABLE attempts ADD COLUMN peak_memory_bytes INTEGER;
    ALTER TABLE attempts ADD COLUMN cpu_seconds REAL;
    ALTER TABLE attempts ADD COLUMN usage_samples INTEGER;
    """,
    # 5: why an attempt waited before it started (`Waited`), NULL for nothing worth telling.
    """
    ALTER TABLE attempts ADD COLUMN waited_reason TEXT;
    ALTER TABLE attempts ADD COLUMN waited_message TEXT;
    """,
)


@dataclass(frozen=True, slots=True)
class StoredJob:
    """A `jobs` row; `request.payload` is None, the bytes are in `payload_file`."""

    name: str
    uid: str
    seq: int
    batch_name: str | None
    batch_id: str | None
    job_id: str | None
    request: JobRequest
    payload_file: Path | None
    created: datetime
    started: datetime | None
    completed: datetime | None
    state: JobState
    failed_attempts: int
    condition_type: ConditionType | None
    condition_reason: str | None
    condition_message: str | None
    condition_time: datetime | None
    stopped_at: datetime | None
    version: int
    # The last restart, and the first attempt (`idx`) of the run it began.
    restarted: datetime | None = None
    first_attempt: int = 0
    # Not stored: what the dispatch queue says of a job waiting in it (queue.py), whether it
    # holds the job until its start time, and else why the job waits (its place in line).
    held: bool = False
    waiting_reason: str | None = None

    @property
    def start_after(self) -> datetime | None:
        """When the job may start: its request's `startAfter`, which a restart drops (a
        restarted job runs at once)."""
        return self.request.start_after if self.restarted is None else None


@dataclass(frozen=True, slots=True)
class Attempt:
    """An `attempts` row: one run of a job's process (`idx` counts from 0)."""

    job: str
    idx: int
    created: datetime
    started: datetime | None
    finished: datetime | None
    pid: int | None
    exit_code: int | None
    reason: AttemptReason | None
    message: str | None
    log_path: Path
    version: int
    result: str | None = None  # what it wrote to its RADIX_RESULT_PATH (the last 4 KiB)
    usage: Usage | None = None  # what it used, once it has ended (if it was measured)
    waited: Waited | None = None  # why it waited before it started (its job's place in line)


class JobChanges(TypedDict, total=False):
    """The `jobs` columns `LocalStore.update_job` may set."""

    state: JobState
    started: datetime | None
    completed: datetime | None
    failed_attempts: int
    condition_type: ConditionType | None
    condition_reason: str | None
    condition_message: str | None
    condition_time: datetime | None
    stopped_at: datetime | None
    restarted: datetime | None
    first_attempt: int


def connect(db_file: Path) -> sqlite3.Connection:
    """Opened and migrated; ConfigError when the file cannot be used (or is from a newer
    scheduler). Transactions are ours: `transaction()` begins and commits them."""
    conn: sqlite3.Connection | None = None
    try:
        # Made 0600 before SQLite opens it: SQLite gives its -wal and -shm files the mode of the
        # database file. Those an older scheduler left are made 0600 too.
        own_file(db_file, create=True)
        conn = sqlite3.connect(db_file, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        for suffix in ("-wal", "-shm"):
            own_file(db_file.with_name(db_file.name + suffix), create=False)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        current = int(conn.execute("PRAGMA user_version").fetchall()[0][0])
        if current > len(MIGRATIONS):
            raise ConfigError(f"state file {db_file} has schema {current}, newer than ours")
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            # BEGIN inside the script: `executescript` commits a transaction begun outside it.
            # A failed migration is rolled back when the connection closes below.
            conn.executescript(
                f"BEGIN IMMEDIATE; {script.strip()} PRAGMA user_version = {number}; COMMIT;"
            )
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.Error):
            raise ConfigError(f"state file {db_file} cannot be used: {exc}") from exc
        if isinstance(exc, OSError):
            raise ConfigError(f"state file {db_file} cannot be used: {exc.strerror}") from exc
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def next_value(conn: sqlite3.Connection, counter: Literal["version", "seq"]) -> int:
    """Raise the `meta` counter and return its new value."""
    sql = "UPDATE meta SET value = value + 1 WHERE key = ? RETURNING value"
    return int(conn.execute(sql, (counter,)).fetchall()[0][0])


def exists(conn: sqlite3.Connection, table: Literal["jobs", "batches"], name: str) -> bool:
    return bool(conn.execute(f"SELECT 1 FROM {table} WHERE name = ?", (name,)).fetchall())
