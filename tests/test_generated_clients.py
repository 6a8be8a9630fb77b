"""Clients generated with openapi-generator work against the scheduler unchanged: one generated
from Radix's published swagger.json (an existing Radix client), and one from ours."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

ROOT = Path(__file__).parent.parent
SPECS = {
    "radix_client": ROOT.parent / "shared" / "reference" / "radix-swagger.json",
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


@pytest.mark.parametrize("package", sorted(SPECS))
async def test_a_generated_client_creates_lists_reads_and_deletes_jobs(
    generated: Path, scheduler: TestClient[Any, Any], package: str
) -> None:
    host = f"http://127.0.0.1:{scheduler.server.port}/api/v1"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT_SCRIPT,
        package,
        host,
        cwd=generated,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    seen = json.loads(out)
    name = seen["created"][0]
    assert seen["created"] == [name, "Waiting", "gen-1"]
    assert seen["listed"] == [name]
    assert seen["one"] == [name, "datetime"]
    assert seen["deleted"] == ["Success", 200, f"job {name} successfully deleted"]
    assert seen["missing"] == 404
