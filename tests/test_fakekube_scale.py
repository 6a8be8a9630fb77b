"""The fake holds thousands of Jobs and answers a LIST of 1,000 of them in milliseconds, so a
benchmark against it measures the client, not the fake."""

from __future__ import annotations

import json
import statistics
import time

from tests.fakekube.kinds import JOB
from tests.fakekube.testing import job_manifest, running_kube

NS = "default"
JOBS = 2000


async def test_a_list_of_a_thousand_jobs_takes_milliseconds() -> None:
    async with running_kube(time_scale=0.05, events=False) as kube:
        for index in range(JOBS):
            manifest = job_manifest(
                f"job-{index:04d}", "sleep 6000", labels={"half": str(index % 2)}
            )
            kube.fake.registry.create(JOB, NS, manifest)
        await kube.fake.settle(timeout=30)

        timings = []
        for _ in range(10):
            started = time.perf_counter()
            response = await kube.batch.list_namespaced_job_without_preload_content(
                NS, label_selector="half=0"
            )
            body = json.loads(await response.read())
            timings.append(time.perf_counter() - started)

        assert len(body["items"]) == JOBS // 2
        assert len(kube.fake.list("Pod", NS)) == JOBS
        assert statistics.median(timings) < 0.05
