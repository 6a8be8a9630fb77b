"""How the local store writes its state down: the SQLite connection and schema, rows as records,
a `JobRequest` as JSON, its payload as a file of its own, and times as ISO-8601 UTC text.
The I/O here runs on the store's worker thread."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal, TypedDict, get_args

from scheduler.backends.base import ExitCodeRule, JobRequest, NodeSpec, PortSpec, RuntimeSpec
from scheduler.backends.local.files import make_dir, own_file
from scheduler.errors import ConfigError, InvalidError

log = logging.getLogger(__name__)

JobState = Literal["waiting", "running", "succeeded", "failed", "stopped"]
ConditionType = Literal["Complete", "Failed"]
AttemptReason = Literal[
    "Completed", "Error", "DeadlineExceeded", "OOMKilled", "Stopped", "SchedulerStopped"
]
# Readable by its owner alone: the job runs as that owner (the scheduler's user, or the user the
# job's files are handed to when it runs as another).
PAYLOAD_MODE: Final = 0o400
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


@dataclass(frozen=True, slots=True)
class Removed:
    """What a delete took away; `version` is the counter after it."""

    jobs: tuple[str, ...]
    paths: tuple[Path, ...]
    version: int


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


def job_from_row(row: sqlite3.Row, payloads: Path) -> StoredJob:
    """`payloads` is the dir holding each job's `<name>/payload`."""
    return StoredJob(
        name=row["name"],
        uid=row["uid"],
        seq=row["seq"],
        batch_name=row["batch_name"],
        batch_id=row["batch_id"],
        job_id=row["job_id"],
        request=request_from_json(row["request"]),
        payload_file=payloads / row["name"] / "payload" if row["has_payload"] else None,
        created=from_text(row["created"]),
        started=optional_time(row["started"]),
        completed=optional_time(row["completed"]),
        state=row["state"],
        failed_attempts=row["failed_attempts"],
        condition_type=row["condition_type"],
        condition_reason=row["condition_reason"],
        condition_message=row["condition_message"],
        condition_time=optional_time(row["condition_time"]),
        stopped_at=optional_time(row["stopped_at"]),
        version=row["version"],
        restarted=optional_time(row["restarted"]),
        first_attempt=row["first_attempt"],
    )


def attempt_from_row(row: sqlite3.Row) -> Attempt:
    return Attempt(
        job=row["job"],
        idx=row["idx"],
        created=from_text(row["created"]),
        started=optional_time(row["started"]),
        finished=optional_time(row["finished"]),
        pid=row["pid"],
        exit_code=row["exit_code"],
        reason=row["reason"],
        message=row["message"],
        log_path=Path(row["log_path"]),
        version=row["version"],
        result=row["result"],
    )


def to_text(moment: datetime) -> str:
    """Always with microseconds, so the text sorts like the time it names."""
    if moment.tzinfo is None:
        raise ValueError(f"a naive datetime cannot be stored: {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def optional_time(text: str | None) -> datetime | None:
    return None if text is None else from_text(text)


def request_to_json(request: JobRequest) -> str:
    """Everything but the payload bytes, which the store keeps in a file of their own."""
    node, runtime = request.node, request.runtime
    data: dict[str, Any] = {
        "name": request.name,
        "job_id": request.job_id,
        "image": request.image,
        "command": None if request.command is None else list(request.command),
        "args": None if request.args is None else list(request.args),
        "env": dict(request.env),
        "ports": [{"name": p.name, "port": p.port} for p in request.ports],
        "requests": dict(request.requests),
        "limits": dict(request.limits),
        "payload_path": request.payload_path,
        "time_limit_seconds": request.time_limit_seconds,
        "backoff_limit": request.backoff_limit,
        "run_as_user": request.run_as_user,
        "failure_rules": [
            {"action": r.action, "operator": r.operator, "values": list(r.values)}
            for r in request.failure_rules
        ],
        "node": None if node is None else {"gpu": node.gpu, "gpu_count": node.gpu_count},
        "runtime": None
        if runtime is None
        else {"architecture": runtime.architecture, "node_type": runtime.node_type},
        "batch_name": request.batch_name,
        "batch_id": request.batch_id,
        "batch_index": request.batch_index,
        "schedule": request.schedule,
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def request_from_json(text: str) -> JobRequest:
    """The request as stored, with `payload=None`: read the payload from the job's payload file."""
    data = json.loads(text)
    node, runtime = data["node"], data["runtime"]
    return JobRequest(
        name=str(data["name"]),
        job_id=data["job_id"],
        image=str(data["image"]),
        command=_strings(data["command"]),
        args=_strings(data["args"]),
        env=_string_map(data["env"]),
        ports=tuple(PortSpec(str(p["name"]), int(p["port"])) for p in data["ports"]),
        requests=_string_map(data["requests"]),
        limits=_string_map(data["limits"]),
        payload=None,
        payload_path=data["payload_path"],
        time_limit_seconds=int(data["time_limit_seconds"]),
        backoff_limit=int(data["backoff_limit"]),
        run_as_user=data["run_as_user"],
        failure_rules=tuple(
            ExitCodeRule(str(r["action"]), str(r["operator"]), tuple(int(v) for v in r["values"]))
            for r in data["failure_rules"]
        ),
        node=None if node is None else NodeSpec(gpu=node["gpu"], gpu_count=node["gpu_count"]),
        runtime=None
        if runtime is None
        else RuntimeSpec(architecture=runtime["architecture"], node_type=runtime["node_type"]),
        batch_name=data["batch_name"],
        batch_id=data["batch_id"],
        batch_index=data.get("batch_index"),  # absent in rows stored before it was kept
        schedule=data.get("schedule"),  # absent in rows of schema 1
    )


def _strings(values: list[Any] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(v) for v in values)


def _string_map(values: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in values.items()}


def write_payload(directory: Path, payload: bytes) -> None:
    """`<directory>/payload`, read-only, appearing whole or not at all (temp file + rename)."""
    make_dir(directory)
    temp = directory / ".payload.tmp"
    temp.unlink(missing_ok=True)
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(payload)
        # No fsync: the database commits with synchronous=NORMAL, which a power cut may undo
        # too; the rename alone keeps the file whole across a crash of the process.
        os.fchmod(file.fileno(), PAYLOAD_MODE)
    os.replace(temp, directory / "payload")


def remove_paths(paths: Sequence[Path]) -> list[Path]:
    """Remove files and dirs; returns those that were there. A failure is logged, not raised:
    the rows are gone, and the next `open()` sweeps what is left."""
    removed: list[Path] = []
    for path in paths:
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc)
            continue
        removed.append(path)
    return removed


# A job's name as the scheduler makes them (a DNS label): only entries of this shape in the
# state dir's payloads/, logs/ and results/ can be a job's files.
_JOB_NAME: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def is_job_name(name: str) -> bool:
    return _JOB_NAME.fullmatch(name) is not None


def is_file_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\0")


def check_name(name: str) -> None:
    if not is_file_name(name) or name.startswith("."):
        raise InvalidError(f"{name!r} cannot name a job's files")
