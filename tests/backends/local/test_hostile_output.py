"""Jobs on the local backend that write what the scheduler does not expect, as real processes: a
FIFO or a symlink where their result goes, and a flood of output without a single newline. The
job ends as it should, its log keeps its limit, and the scheduler stays responsive."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ClientFactory, job_status, post_job, wait_for_status, wait_until
from tests.factories import Client

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="jobs are Linux processes")

# Generous, for a busy machine: only a hung job should ever reach it.
TIMEOUT_SECONDS = 40.0
# The default executor's threads (asyncio's default): each FIFO read once held one forever.
EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)


def shell(script: str) -> dict[str, Any]:
    return {"command": ["sh", "-c", script]}


async def result_of(client: Client, name: str) -> tuple[int, str]:
    response = await client.get(f"/api/v1/jobs/{name}/result")
    return response.status, await response.text()


async def test_a_fifo_or_a_symlink_at_the_result_path_is_no_result_and_holds_up_nothing(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory()
    fifos = [
        (await post_job(client, shell('mkfifo "$RADIX_RESULT_PATH"')))["name"]
        for _ in range(EXECUTOR_THREADS + 1)
    ]
    linked = (await post_job(client, shell('ln -s /etc/hostname "$RADIX_RESULT_PATH"')))["name"]
    plain = (await post_job(client, shell('echo done > "$RADIX_RESULT_PATH"')))["name"]
    for name in [*fifos, linked, plain]:
        await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    for name in [*fifos, linked]:
        status, text = await result_of(client, name)
        assert status == 404 and f"job {name} wrote no result" in text
    assert await result_of(client, plain) == (200, "done\n")


async def test_50_mb_without_a_newline_keep_the_log_within_its_limit_and_the_scheduler_responsive(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    limit = 1024 * 1024
    client = await local_scheduler_factory(SCHEDULER_LOG_LIMIT_BYTES=str(limit))
    body = shell("head -c 50000000 /dev/zero | tr '\\0' a")
    name = (await post_job(client, body))["name"]
    loop = asyncio.get_running_loop()
    slowest, status = 0.0, ""

    async def ended() -> bool:
        nonlocal slowest, status
        asked = loop.time()
        response = await client.get("/healthz")
        slowest = max(slowest, loop.time() - asked)
        assert response.status == 200
        status = (await job_status(client, name))["status"]
        return status in ("Succeeded", "Failed")

    await wait_until(ended, TIMEOUT_SECONDS)
    assert status == "Succeeded"
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s"
    response = await client.get(f"/api/v1/jobs/{name}/logs")
    assert response.status == 200
    text = await response.read()
    # The newest of the output, in lines of bounded length.
    assert 0 < len(text) <= limit
    assert set(text) == set(b"a\n")
    log_file = tmp_path / "state" / "logs" / name / "0.log"
    assert log_file.stat().st_size <= limit
