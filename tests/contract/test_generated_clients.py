"""Clients generated with openapi-generator work against the scheduler unchanged: one generated
from Radix's published contract (an existing Radix client; tests/radix/radix-contract.json holds
the facts of Radix's swagger.json), and one from ours."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

ROOT = Path(__file__).parents[2]
SPECS = {
    "radix_client": ROOT / "tests" / "radix" / "radix-contract.json",
    "our_client": ROOT / "swagger.json",
}
GENERATOR = Path(sys.executable).parent / "openapi-generator-cli"

# Runs in its own process with the generated package on sys.path; prints what the client saw.
CLIENT_SCRIPT = """
import json, sys
package = __import__(sys.argv[1])
host = sys.argv[2]
api = package.JobApi(package.ApiClient(package.Configuration(host=host)))
created = api.create_job(package.JobScheduleDescription(payload='{"x": 1}', job_id="gen-1"))
listed = api.get_jobs()
one = api.get_job(created.name)
deleted = api.delete_job(created.name)
try:
    api.get_job(created.name)
    missing = None
except package.ApiException as exc:
    missing = exc.status
print(json.dumps({
    "created": [created.name, created.status, created.job_id],
    "listed": [job.name for job in listed],
    "one": [one.name, type(one.created).__name__],
    "deleted": [deleted.status, deleted.code, deleted.message],
    "missing": missing,
}))
"""


# All fourteen operations through the generated JobApi and BatchApi, each call with a timeout.
# The fake API server runs `sleep N` for N * 0.05 s: jobs sleeping 30 s or 60 s run 1.5 s or 3 s.
OPERATIONS_SCRIPT = """
import json, sys
package = __import__(sys.argv[1])
host = sys.argv[2]
client = package.ApiClient(package.Configuration(host=host))
jobs, batches = package.JobApi(client), package.BatchApi(client)
timeout = {"_request_timeout": 10}


def sleeping(seconds):
    return ["sh", "-c", f"sleep {seconds}; exit 0"]


def batch_of(batch_id, *job_ids):
    return package.BatchScheduleDescription(
        batch_id=batch_id,
        default_radix_job_component_config=package.RadixJobComponentConfig(command=sleeping(60)),
        job_schedule_descriptions=[package.JobScheduleDescription(job_id=j) for j in job_ids],
    )


job = jobs.create_job(package.JobScheduleDescription(command=sleeping(30)), **timeout)
job_stopped = jobs.stop_job(job.name, **timeout)

batch = batches.create_batch(batch_of("b-1", "j1", "j2"), **timeout)
listed = batches.get_batches(**timeout)
read = batches.get_batch(batch.name, **timeout)
j1 = next(status for status in read.job_statuses if status.job_id == "j1")
batch_job = batches.get_batch_job(batch.name, j1.name, **timeout)
short_name = j1.name.removeprefix(batch.name + "-")
batch_job_stopped = batches.stop_batch_job(batch.name, short_name, **timeout)
batch_stopped = batches.stop_batch(batch.name, **timeout)

other = batches.create_batch(batch_of("b-2", "k1"), **timeout)
all_batches_stopped = batches.stop_all_batches(**timeout)
other_job = jobs.create_job(package.JobScheduleDescription(command=sleeping(30)), **timeout)
all_jobs_stopped = jobs.stop_all_jobs(**timeout)

batch_deleted = batches.delete_batch(batch.name, **timeout)
try:
    batches.get_batch(batch.name, **timeout)
    batch_missing = None
except package.ApiException as exc:
    batch_missing = exc.status
listed_jobs = jobs.get_jobs(**timeout)

print(json.dumps({
    "job": [job.name, job.status],
    "job_stopped": job_stopped.status,
    "batch": [batch.name, batch.batch_type, batch.batch_id],
    "listed": [
        [b.name, b.batch_type, sorted(s.job_id for s in b.job_statuses or [])] for b in listed
    ],
    "read": [read.name, read.batch_id, sorted(s.name for s in read.job_statuses)],
    "j1": j1.name,
    "batch_job": [batch_job.name, batch_job.job_id],
    "batch_job_stopped": batch_job_stopped.status,
    "batch_stopped": batch_stopped.status,
    "other": [other.name, other.batch_type, other.batch_id],
    "all_batches_stopped": all_batches_stopped.status,
    "all_jobs_stopped": all_jobs_stopped.status,
    "batch_deleted": batch_deleted.status,
    "batch_missing": batch_missing,
    "listed_jobs": sorted([j.name, j.status] for j in listed_jobs),
    "single_jobs": sorted([job.name, other_job.name]),
}))
"""
BATCH_NAME = r"batch-compute-\d{14}-[a-z]{8}"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GENERATOR.exists():
        pytest.fail(f"{GENERATOR} is missing: install the test extra")
    out = tmp_path_factory.mktemp("clients")
    for package, spec in SPECS.items():
        target = out / package
        subprocess.run(
            [
                str(GENERATOR),
                "generate",
                "-i",
                str(spec),
                "-g",
                "python",
                "-o",
                str(target),
                "--package-name",
                package,
                "--global-property",
                "apiTests=false,modelTests=false,apiDocs=false,modelDocs=false",
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        shutil.move(str(target / package), str(out / f"{package}_pkg"))
        shutil.rmtree(target)
        (out / f"{package}_pkg").rename(out / package)
    return out


async def _run_client(
    script: str, generated: Path, scheduler: TestClient[Any, Any], package: str
) -> dict[str, Any]:
    """Runs a client script with the generated package; returns what it printed."""
    host = f"http://127.0.0.1:{scheduler.server.port}/api/v1"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        package,
        host,
        cwd=generated,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=50)
    assert process.returncode == 0, err.decode()
    seen: dict[str, Any] = json.loads(out)
    return seen


@pytest.mark.parametrize("package", sorted(SPECS))
async def test_a_generated_client_creates_lists_reads_and_deletes_jobs(
    generated: Path, scheduler: TestClient[Any, Any], package: str
) -> None:
    seen = await _run_client(CLIENT_SCRIPT, generated, scheduler, package)
    name = seen["created"][0]
    assert seen["created"] == [name, "Waiting", "gen-1"]
    assert seen["listed"] == [name]
    assert seen["one"] == [name, "datetime"]
    assert seen["deleted"] == ["Success", 200, f"job {name} successfully deleted"]
    assert seen["missing"] == 404


async def test_a_client_generated_from_radix_spec_drives_all_fourteen_operations(
    generated: Path, scheduler: TestClient[Any, Any]
) -> None:
    seen = await _run_client(OPERATIONS_SCRIPT, generated, scheduler, "radix_client")
    job, job_status = seen["job"]
    assert job_status == "Waiting"
    assert seen["job_stopped"] == "Success"

    batch = seen["batch"][0]
    assert re.fullmatch(BATCH_NAME, batch), batch
    assert seen["batch"] == [batch, "batch", "b-1"]
    assert seen["listed"] == [[batch, "batch", ["j1", "j2"]]]
    assert seen["read"][:2] == [batch, "b-1"]
    batch_jobs = seen["read"][2]
    assert len(batch_jobs) == 2
    assert all(re.fullmatch(rf"{batch}-[a-z]{{8}}", name) for name in batch_jobs), batch_jobs
    assert seen["j1"] in batch_jobs
    assert seen["batch_job"] == [seen["j1"], "j1"]
    assert seen["batch_job_stopped"] == "Success"
    assert seen["batch_stopped"] == "Success"

    other = seen["other"][0]
    assert re.fullmatch(BATCH_NAME, other) and other != batch
    assert seen["other"] == [other, "batch", "b-2"]
    assert seen["all_batches_stopped"] == "Success"
    assert seen["all_jobs_stopped"] == "Success"

    assert seen["batch_deleted"] == "Success"
    assert seen["batch_missing"] == 404
    # Single jobs only, both stopped: the remaining batch's job is not among them.
    assert [name for name, _ in seen["listed_jobs"]] == seen["single_jobs"]
    assert job in seen["single_jobs"]
    assert {status for _, status in seen["listed_jobs"]} <= {"Stopping", "Stopped"}
