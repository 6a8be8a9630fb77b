"""Holding requests: a test decides when a request reaches the registry, so it can act (kill the
client, say) while the request is in flight, without guessing how long that lasts."""

from __future__ import annotations

import asyncio
import json
import logging
import pathlib
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakekube.testing import Kube, job_manifest, running_kube

NS = "default"
JOBS = r"/apis/batch/v1/namespaces/default/jobs$"
ROOT = pathlib.Path(__file__).resolve().parents[3]
# A client process: creates one Job through the official client, as a scheduler would.
CLIENT = """
import asyncio, json, sys
from kubernetes.aio import client, config

async def main():
    configuration = client.Configuration()
    await config.load_kube_config(config_file=sys.argv[1], client_configuration=configuration)
    async with client.ApiClient(configuration=configuration) as api:
        await client.BatchV1Api(api).create_namespaced_job("default", json.loads(sys.argv[2]))

asyncio.run(main())
"""


@pytest.fixture
async def kube(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        yield kube
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_held_request_reaches_the_registry_only_once_released(kube: Kube) -> None:
    held = kube.fake.faults.hold("POST", JOBS)
    creating = asyncio.create_task(kube.batch.create_namespaced_job(NS, job_manifest("j")))

    await held.wait_arrived()
    stored_while_held = kube.fake.get("Job", NS, "j")
    answered_while_held = creating.done()
    held.release()
    created = await creating

    assert stored_while_held is None
    assert not answered_while_held
    assert created.metadata.name == "j"
    assert kube.fake.get("Job", NS, "j") is not None
    assert held.arrived == 1


async def test_a_hold_catches_only_as_many_requests_as_asked(kube: Kube) -> None:
    held = kube.fake.faults.hold("POST", JOBS, times=1)
    first = asyncio.create_task(kube.batch.create_namespaced_job(NS, job_manifest("first")))
    await held.wait_arrived()

    second = await kube.batch.create_namespaced_job(NS, job_manifest("second"))

    assert second.metadata.name == "second"
    assert not first.done()
    assert kube.fake.get("Job", NS, "first") is None
    held.release()
    assert (await first).metadata.name == "first"


async def test_other_requests_pass_while_one_is_held(kube: Kube) -> None:
    held = kube.fake.faults.hold("POST", JOBS)
    creating = asyncio.create_task(kube.batch.create_namespaced_job(NS, job_manifest("j")))
    await held.wait_arrived()

    listed = await kube.batch.list_namespaced_job(NS)

    assert listed.items == []
    assert not creating.done()
    held.release()
    await creating


async def test_waiting_for_a_request_that_never_comes_times_out(kube: Kube) -> None:
    held = kube.fake.faults.hold("POST", JOBS)

    with pytest.raises(TimeoutError):
        await held.wait_arrived(timeout=0.05)


async def test_a_request_whose_client_was_killed_while_held_still_lands_once_released(
    kube: Kube, tmp_path: pathlib.Path
) -> None:
    kubeconfig = kube.fake.write_kubeconfig(tmp_path / "kubeconfig")
    held = kube.fake.faults.hold("POST", JOBS)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CLIENT,
        str(kubeconfig),
        json.dumps(job_manifest("orphaned")),
        cwd=ROOT,
    )
    try:
        # Starting an interpreter and importing the client takes a while on a busy machine.
        await held.wait_arrived(timeout=60)
        process.send_signal(signal.SIGKILL)
        code = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stored_before_release = kube.fake.get("Job", NS, "orphaned")

    held.release()

    assert code == -signal.SIGKILL
    assert stored_before_release is None
    # The API server had the request: it completes although nobody waits for the answer.
    await kube.fake.wait_for("Job", NS, "orphaned", lambda job: job is not None)


async def test_stopping_the_fake_drops_held_requests_unanswered(kube: Kube) -> None:
    held = kube.fake.faults.hold("POST", JOBS)
    creating = asyncio.create_task(kube.batch.create_namespaced_job(NS, job_manifest("j")))
    await held.wait_arrived()

    await kube.fake.stop()

    with pytest.raises(aiohttp.ClientConnectionError):
        await creating
    assert kube.fake.get("Job", NS, "j") is None


async def test_clearing_the_faults_lets_held_requests_go_on(kube: Kube) -> None:
    held = kube.fake.faults.hold("POST", JOBS)
    creating = asyncio.create_task(kube.batch.create_namespaced_job(NS, job_manifest("j")))
    await held.wait_arrived()

    kube.fake.faults.clear()

    assert (await creating).metadata.name == "j"
