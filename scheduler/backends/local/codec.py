"""The local store's rows and text as records and back: `jobs` and `attempts` rows as `StoredJob`
and `Attempt`, a `JobRequest` as JSON (its payload bytes are a file of their own), and times as
ISO-8601 UTC text."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scheduler.backends.base import (
    ExitCodeRule,
    JobRequest,
    NodeSpec,
    PortSpec,
    RuntimeSpec,
    Usage,
    Waited,
)
from scheduler.backends.local.schema import Attempt, StoredJob


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
        usage=_usage(row),
        waited=Waited(row["waited_reason"], row["waited_message"])
        if row["waited_reason"] is not None
        else None,
    )


def _usage(row: sqlite3.Row) -> Usage | None:
    if not row["usage_samples"]:
        return None
    return Usage(row["peak_memory_bytes"], row["cpu_seconds"], row["usage_samples"])


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
        "start_after": None if request.start_after is None else to_text(request.start_after),
        "waiting_timeout_seconds": request.waiting_timeout_seconds,
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
        # Absent in rows stored before jobs could wait for a time or time out waiting.
        start_after=optional_time(data.get("start_after")),
        waiting_timeout_seconds=data.get("waiting_timeout_seconds"),
    )


def _strings(values: list[Any] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(v) for v in values)


def _string_map(values: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in values.items()}
