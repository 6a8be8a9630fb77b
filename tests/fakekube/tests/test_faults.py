"""Fault injection and the audit log: what a client sees when the API server misbehaves."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from kubernetes.aio.client.exceptions import ApiException

from tests.fakekube import AuditEntry
from tests.fakekube.testing import Kube, job_manifest, running_kube, secret_manifest

NS = "default"
JOBS = r"/apis/batch/v1/namespaces/default/jobs"


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        yield kube


@pytest.mark.parametrize(
    ("code", "reason"),
    [(500, "InternalError"), (503, "ServiceUnavailable"), (429, "TooManyRequests")],
)
async def test_an_injected_failure_answers_a_status_once(
    kube: Kube, code: int, reason: str
) -> None:
    kube.fake.faults.fail("GET", JOBS, status=code)

    with pytest.raises(ApiException) as exc:
        await kube.batch.list_namespaced_job(NS)
    listed = await kube.batch.list_namespaced_job(NS)

    assert exc.value.status == code
    body = json.loads(exc.value.body)
    assert (body["kind"], body["reason"], body["code"]) == ("Status", reason, code)
    assert listed.items == []


async def test_too_many_requests_says_when_to_retry(kube: Kube) -> None:
    kube.fake.faults.fail(None, JOBS, status=429)

    with pytest.raises(ApiException) as exc:
        await kube.batch.list_namespaced_job(NS)

    assert exc.value.headers["Retry-After"] == "1"


async def test_a_failure_can_target_one_method_and_repeat(kube: Kube) -> None:
    kube.fake.faults.fail("POST", JOBS, status=500, times=2)

    for _ in range(2):
        with pytest.raises(ApiException):
            await kube.batch.create_namespaced_job(NS, job_manifest("j"))
    await kube.batch.list_namespaced_job(NS)
    created = await kube.batch.create_namespaced_job(NS, job_manifest("j"))

    assert created.metadata.name == "j"


async def test_a_failure_for_ever_lasts_until_cleared(kube: Kube) -> None:
    kube.fake.faults.fail(None, "/secrets", status=500, times=None)
    for _ in range(3):
        with pytest.raises(ApiException):
            await kube.core.list_namespaced_secret(NS)

    kube.fake.faults.clear()

    await kube.core.list_namespaced_secret(NS)


async def test_a_failure_can_target_watches_only(kube: Kube) -> None:
    kube.fake.faults.fail("GET", r"watch=(true|1)", status=500)

    listed = await kube.core.list_namespaced_secret(NS)
    with pytest.raises(ApiException) as exc:
        await kube.core.list_namespaced_secret(NS, watch=True)

    assert listed.items == []
    assert exc.value.status == 500


async def test_a_delay_holds_the_answer_for_at_least_its_seconds(kube: Kube) -> None:
    kube.fake.faults.delay("GET", JOBS, seconds=0.3)

    started = time.monotonic()
    listed = await kube.batch.list_namespaced_job(NS)

    # Only a lower bound: a busy machine may add any amount of time.
    assert time.monotonic() - started >= 0.3
    assert listed.items == []


async def test_a_delay_applies_as_many_times_as_asked(kube: Kube) -> None:
    delay = kube.fake.faults.delay("GET", JOBS, seconds=60, times=1)
    slow = asyncio.create_task(kube.batch.list_namespaced_job(NS))
    await delay.wait_arrived()

    listed = await kube.batch.list_namespaced_job(NS)

    assert listed.items == []
    assert not slow.done(), "the first request is still delayed"
    assert delay.arrived == 1
    delay.release()  # a delay can be cut short, like a hold
    assert (await slow).items == []


async def test_a_delay_longer_than_the_client_timeout_times_out(kube: Kube) -> None:
    kube.fake.faults.delay(None, JOBS, seconds=0.5)

    with pytest.raises(asyncio.TimeoutError):
        await kube.batch.list_namespaced_job(NS, _request_timeout=0.2)


async def test_a_server_that_is_down_answers_503_and_drops_watches(kube: Kube) -> None:
    await kube.core.create_namespaced_secret(NS, secret_manifest("a"))
    watch = await kube.core.list_namespaced_secret_without_preload_content(NS, watch=True)
    await watch.content.readline()

    kube.fake.faults.down = True

    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(watch.content.readline(), 5)
    with pytest.raises(ApiException) as exc:
        await kube.core.read_namespaced_secret("a", NS)
    assert exc.value.status == 503
    watch.close()


async def test_a_server_that_comes_back_serves_again(kube: Kube) -> None:
    kube.fake.faults.down = True
    with pytest.raises(ApiException):
        await kube.core.list_namespaced_secret(NS)

    kube.fake.faults.down = False

    assert (await kube.core.list_namespaced_secret(NS)).items == []


async def test_the_audit_log_names_verbs_resources_and_answers(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("j", suspend=True))
    await kube.fake.settle()
    kube.fake.clear_audit()

    await kube.batch.read_namespaced_job("j", NS)
    await kube.batch.list_namespaced_job(NS, label_selector="a=b")
    await kube.batch.patch_namespaced_job("j", NS, {"metadata": {"labels": {"a": "b"}}})
    await kube.batch.read_namespaced_job_status("j", NS)
    with pytest.raises(ApiException):
        await kube.core.read_namespaced_secret("missing", NS)
    await kube.batch.delete_namespaced_job("j", NS)
    await kube.core.delete_collection_namespaced_secret(NS)

    assert kube.fake.audit == [
        AuditEntry("get", "batch", "jobs", None, NS, "j", 200, "GET", f"{JOBS}/j"),
        AuditEntry("list", "batch", "jobs", None, NS, None, 200, "GET", JOBS),
        AuditEntry("patch", "batch", "jobs", None, NS, "j", 200, "PATCH", f"{JOBS}/j"),
        AuditEntry("get", "batch", "jobs", "status", NS, "j", 200, "GET", f"{JOBS}/j/status"),
        AuditEntry(
            "get",
            "",
            "secrets",
            None,
            NS,
            "missing",
            404,
            "GET",
            "/api/v1/namespaces/default/secrets/missing",
        ),
        AuditEntry("delete", "batch", "jobs", None, NS, "j", 200, "DELETE", f"{JOBS}/j"),
        AuditEntry(
            "deletecollection",
            "",
            "secrets",
            None,
            NS,
            None,
            200,
            "DELETE",
            "/api/v1/namespaces/default/secrets",
        ),
    ]


async def test_the_audit_log_records_watches_and_injected_failures(kube: Kube) -> None:
    kube.fake.faults.fail("GET", JOBS, status=503)
    with pytest.raises(ApiException):
        await kube.batch.list_namespaced_job(NS)
    watch = await kube.batch.list_namespaced_job_without_preload_content(
        NS, watch=True, timeout_seconds=1
    )
    assert await watch.read() == b""

    assert [(a.verb, a.status_code) for a in kube.fake.audit] == [("list", 503), ("watch", 200)]
