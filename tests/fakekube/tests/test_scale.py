"""The fake holds thousands of Jobs with their pods and lists a labelled half of them whole, so
a benchmark can run against it. How fast it answers is a benchmark's question (bench/), not a
test's: a test on a busy machine can only assert what the answer is."""

from __future__ import annotations

import json

from tests.fakekube.kinds import JOB
from tests.fakekube.testing import job_manifest, running_kube

NS = "default"
JOBS = 2000


async def test_a_list_selects_a_thousand_of_two_thousand_running_jobs() -> None:
    async with running_kube(time_scale=0.05, events=False) as kube:
        for index in range(JOBS):
            manifest = job_manifest(
                f"job-{index:04d}", "sleep 6000", labels={"half": str(index % 2)}
            )
            kube.fake.registry.create(JOB, NS, manifest)
        # The controller creates a pod per Job; how long that takes depends on the machine.
        await kube.fake.settle(timeout=50)

        response = await kube.batch.list_namespaced_job_without_preload_content(
            NS, label_selector="half=0"
        )
        body = json.loads(await response.read())

        names = [item["metadata"]["name"] for item in body["items"]]
        assert names == [f"job-{index:04d}" for index in range(0, JOBS, 2)]
        assert {item["metadata"]["labels"]["half"] for item in body["items"]} == {"0"}
        assert "continue" not in body["metadata"]
        assert len(kube.fake.list("Pod", NS)) == JOBS
