"""What many tests build: a job request and the records a backend publishes, each one base value
that a test changes only where it matters (`dataclasses.replace`); the type aliases of the API
tests; a free loopback port."""

from __future__ import annotations

import dataclasses
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from scheduler.backends.base import ContainerState, JobRecord, JobRequest, PodRecord, PortSpec

Client = TestClient[Any, Any]
JSON = dict[str, Any]

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
JOB_NAME = "compute-20240501120000-abcdefgh"


def at(seconds: int) -> datetime:
    """`seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


JOB_REQUEST = JobRequest(
    name="compute-20210407105556-rkwaibwe",
    job_id="job1",
    image="busybox:1.36",
    command=("sh", "-c"),
    args=("sleep 1; exit 0",),
    env={"A": "1"},
    ports=(PortSpec("http", 3000),),
    requests={"cpu": "50m"},
    limits={"memory": "64Mi"},
    payload=b'{"x": 10}',
    payload_path="/compute/args",
    time_limit_seconds=3600,
    backoff_limit=0,
)

# A job just created: no pod yet.
JOB_RECORD = JobRecord(
    name=JOB_NAME,
    uid="u",
    resource_version="1",
    job_id=None,
    created=T0,
    started=None,
    completed=None,
    active=0,
    ready=0,
    succeeded=0,
    failed=0,
)

# A pod of JOB_RECORD's created a second after it, its container not yet known.
POD_RECORD = PodRecord(
    name="p1",
    uid="p1",
    resource_version="1",
    job_name=JOB_NAME,
    created=at(1),
    phase="Pending",
    started=at(1),
    container=ContainerState("unknown"),
)


def job_request(**changes: Any) -> JobRequest:
    return dataclasses.replace(JOB_REQUEST, **changes)


def job_record(**changes: Any) -> JobRecord:
    return dataclasses.replace(JOB_RECORD, **changes)


def pod_record(**changes: Any) -> PodRecord:
    return dataclasses.replace(POD_RECORD, **changes)


def free_port() -> int:
    """A loopback port nothing listens on now (a process started next may take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
