"""`waitingTimeoutSeconds`: a job that has not started within it of when it could fails, its
message naming the last reason it was waiting (an image that cannot be pulled or no node that
fits on Kubernetes, its place in line on the local backend); its pods are removed, and the
webhook and the event stream announce it as any other end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from scheduler.backends.base import WAITING_TIMEOUT, Condition, ContainerState
from scheduler.domain.jobs import build_request
from scheduler.domain.starting import Due, Starter, next_due, waiting_timeout_message
from scheduler.domain.status import derive_status
from scheduler.domain.view import JobView
from scheduler.errors import ConfigError
from scheduler.models import JobScheduleDescription, JobStatusEnum
from scheduler.radixconfig import parse_radixconfig, resolve_job
from tests.api.calls import LONG, SHORT, batch_of, expect_failure, post_batch
from tests.api.test_events_stream import open_stream
from tests.api.test_start_after import Clock, FakeBackend, later, parse, wait_until_past
from tests.conftest import (
    NAMESPACE,
    TEST_CONFIG,
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import JSON, T0, Client, at, job_record, pod_record
from tests.fakekube import FakeKube
from tests.service.test_notifications import radixconfig_with_webhook

# -- when a job is given up on ---------------------------------------------------------------------


def test_a_job_that_has_not_run_is_given_up_on_its_timeout_after_its_creation() -> None:
    job = job_record(waiting_timeout_seconds=600)
    assert next_due(job, [], derive_status(job, [])) == Due(at(600), "give up")


def test_a_restarted_job_counts_its_wait_from_the_restart() -> None:
    job = job_record(waiting_timeout_seconds=600, restarted=at(1000))
    assert next_due(job, [], derive_status(job, [])) == Due(at(1600), "give up")


def test_a_job_whose_container_ran_once_is_never_given_up_on() -> None:
    failed = ContainerState("terminated", reason="Error", exit_code=1, finished_at=at(5))
    pods = [pod_record(container=failed, phase="Failed")]
    job = job_record(waiting_timeout_seconds=600, failed=1)
    assert derive_status(job, pods).status is JobStatusEnum.WAITING  # waiting for its retry
    assert next_due(job, pods, derive_status(job, pods)) is None


def test_a_job_without_a_timeout_or_stopped_is_never_given_up_on() -> None:
    for job in (job_record(), job_record(waiting_timeout_seconds=5, stopped_at=at(1))):
        assert next_due(job, [], derive_status(job, [])) is None


def test_the_message_names_how_long_and_the_last_reason_it_waited() -> None:
    status = derive_status(job_record(waiting_reason="2nd in line; 4 running at most"), [])
    assert waiting_timeout_message(600, status) == (
        "did not start within 600 s: 2nd in line; 4 running at most"
    )
    assert waiting_timeout_message(5, derive_status(job_record(), [])) == (
        "did not start within 5 s"
    )


async def test_the_starter_gives_up_on_a_job_when_the_clock_reaches_its_timeout() -> None:
    clock, backend, view = Clock(T0), FakeBackend(), JobView()
    starter = Starter(backend, view, clock=clock)  # type: ignore[arg-type]
    queued = job_record(
        waiting_timeout_seconds=600, waiting_reason="2nd in line; 4 running at most"
    )
    view.upsert_job(queued)

    clock.now = at(599)
    assert await starter.run_due() == 0 and backend.calls == []
    clock.now = at(600)
    message = "did not start within 600 s: 2nd in line; 4 running at most"
    gave_up = Condition("Failed", True, WAITING_TIMEOUT, message, at(600))
    backend.answer = job_record(resource_version="2", conditions=(gave_up,))
    assert await starter.run_due() == 1
    assert backend.calls == [(message, queued.name)]
    status = view.status(queued.name)
    assert status is not None and (status.status, status.message) == (JobStatusEnum.FAILED, message)


# -- where the timeout comes from ----------------------------------------------------------------

CONFIG = """
apiVersion: radix.equinor.com/v1
kind: RadixApplication
metadata: {name: myapp}
spec:
  environments: [{name: dev}, {name: prod}]
  jobs:
    - name: compute
      image: busybox
      schedulerPort: 8000
      waitingTimeoutSeconds: 600
      environmentConfig:
        - environment: prod
          waitingTimeoutSeconds: 60
"""


def test_the_environments_timeout_wins_over_the_jobs_and_the_requests_over_both() -> None:
    app = parse_radixconfig(CONFIG, "radixconfig.yaml")
    dev = resolve_job(app, "compute", environment="dev", source="x")
    prod = resolve_job(app, "compute", environment="prod", source="x")
    assert (dev.waiting_timeout_seconds, prod.waiting_timeout_seconds) == (600, 60)

    def timeout(definition: Any, **fields: Any) -> int | None:
        description = JobScheduleDescription.model_validate(fields)
        return build_request(definition, description, "n", **batch).waiting_timeout_seconds

    batch: dict[str, Any] = {}
    assert timeout(prod) == 60
    assert timeout(prod, waitingTimeoutSeconds=5) == 5
    batch = {"waiting_timeout_seconds": 30}  # a batch's, for its jobs without their own
    assert (timeout(prod), timeout(prod, waitingTimeoutSeconds=5)) == (30, 5)


@pytest.mark.parametrize("value", [0, -1, "soon", 2**31])
def test_a_radixconfig_timeout_that_is_no_positive_int32_names_the_field(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"spec\.jobs\[0\]\.waitingTimeoutSeconds"):
        parse_radixconfig(
            CONFIG.replace("waitingTimeoutSeconds: 600", f"waitingTimeoutSeconds: {value}"), "rc"
        )


@pytest.mark.parametrize("value", [0, -5, "soon", 2**31, 1.5])
async def test_a_request_timeout_that_is_no_positive_int32_is_422_naming_it(
    client: Client, value: Any
) -> None:
    body = {"waitingTimeoutSeconds": value}
    await expect_failure(
        await client.post("/api/v1/jobs", json=body), 422, "Invalid", "waitingTimeoutSeconds"
    )
    batch = await client.post("/api/v1/batches", json=batch_of({}, **body))
    await expect_failure(batch, 422, "Invalid", "waitingTimeoutSeconds")
    in_batch = await client.post("/api/v1/batches", json=batch_of(body))
    await expect_failure(
        in_batch, 422, "Invalid", "jobScheduleDescriptions.0.waitingTimeoutSeconds"
    )


# -- on both backends ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Blocked:
    """A scheduler on which `body` cannot start, and the reason its status gives."""

    client: Client
    body: JSON
    reason: str


async def blocked(backend: str, start: ClientFactory, **env: str) -> Blocked:
    """On Kubernetes, a job whose image is not there; on the local backend, one behind a job
    that holds the only slot."""
    if backend == "kubernetes":
        client = await start(**env)
        image = "busybox:does-not-exist"
        return Blocked(
            client,
            {**SHORT, "image": image},
            f'ImagePullBackOff: image "{image}" not found',
        )
    client = await start(SCHEDULER_MAX_PARALLEL="1", **env)
    holder = (await post_job(client, LONG))["name"]
    await wait_for_status(client, holder, "Running")
    return Blocked(client, SHORT, "1st in line; 1 running at most")


async def test_a_job_that_cannot_start_fails_after_its_timeout_naming_why(
    backend: str, start: ClientFactory
) -> None:
    setup = await blocked(backend, start)
    name = (await post_job(setup.client, {**setup.body, "waitingTimeoutSeconds": 3}))["name"]

    failed = await wait_for_status(setup.client, name, "Failed", timeout=30)
    assert failed["message"] == f"did not start within 3 s: {setup.reason}"
    assert failed["ended"] is not None
    assert all(pod["replicaStatus"]["status"] != "Running" for pod in failed["podStatuses"])


async def test_the_wait_counts_from_the_start_time(backend: str, start: ClientFactory) -> None:
    setup = await blocked(backend, start)
    begin = later(3)
    body = {**setup.body, "startAfter": begin, "waitingTimeoutSeconds": 3}
    name = (await post_job(setup.client, body))["name"]

    failed = await wait_for_status(setup.client, name, "Failed", timeout=30)
    assert parse(failed["ended"]) >= parse(begin) + timedelta(seconds=3)
    assert failed["message"] == f"did not start within 3 s: {setup.reason}"


async def test_a_job_that_starts_in_time_runs_to_its_end(client: Client) -> None:
    name = (await post_job(client, {**SHORT, "waitingTimeoutSeconds": 30}))["name"]
    await wait_for_status(client, name, "Succeeded")


async def test_a_job_stopped_while_it_waits_ends_stopped_not_failed(
    backend: str, start: ClientFactory
) -> None:
    setup = await blocked(backend, start)
    timed_out = later(3)
    name = (await post_job(setup.client, {**setup.body, "waitingTimeoutSeconds": 2}))["name"]
    assert (await setup.client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    await wait_for_status(setup.client, name, "Stopped")

    await wait_until_past(timed_out)
    assert (await job_status(setup.client, name))["status"] == "Stopped"


async def test_a_restarted_job_waits_its_timeout_anew(backend: str, start: ClientFactory) -> None:
    setup = await blocked(backend, start)
    name = (await post_job(setup.client, {**setup.body, "waitingTimeoutSeconds": 3}))["name"]
    first = await wait_for_status(setup.client, name, "Failed", timeout=30)

    response = await setup.client.post(f"/api/v1/jobs/{name}/restart")
    assert response.status == 200, await response.text()

    async def failed_again() -> bool:
        status = await job_status(setup.client, name)
        return status["status"] == "Failed" and status["ended"] != first["ended"]

    await wait_until(failed_again, timeout=30)
    again = await job_status(setup.client, name)
    assert again["restart"] is not None
    assert again["message"] == f"did not start within 3 s: {setup.reason}"


async def test_a_batchs_timeout_is_each_jobs_without_one_of_its_own(
    backend: str, start: ClientFactory
) -> None:
    setup = await blocked(backend, start)
    body = batch_of(
        setup.body, {**setup.body, "waitingTimeoutSeconds": 3600}, waitingTimeoutSeconds=1
    )
    created = await post_batch(setup.client, body)
    short, own = (job["name"] for job in created["jobStatuses"])

    await wait_for_status(setup.client, short, "Failed", timeout=30)
    assert (await job_status(setup.client, own))["status"] in ("Waiting", "Active")


async def test_the_radixconfigs_timeout_applies_to_a_job_without_its_own(
    backend: str, start: ClientFactory, tmp_path: Path
) -> None:
    config = yaml.safe_load(TEST_CONFIG.read_text())
    compute = next(job for job in config["spec"]["jobs"] if job["name"] == "compute")
    compute["environmentConfig"] = [{"environment": "dev", "waitingTimeoutSeconds": 3}]
    path = tmp_path / "radixconfig-timeout.yaml"
    path.write_text(yaml.safe_dump(config))
    setup = await blocked(backend, start, RADIX_CONFIG_FILE=str(path))
    name = (await post_job(setup.client, setup.body))["name"]

    failed = await wait_for_status(setup.client, name, "Failed", timeout=30)
    assert failed["message"] == f"did not start within 3 s: {setup.reason}"


async def test_the_webhook_and_the_event_stream_announce_the_failure(
    backend: str, start: ClientFactory, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    delivered: list[JSON] = []

    async def hook(request: web.Request) -> web.Response:
        delivered.append(await request.json())
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    url = str((await aiohttp_server(receiver)).make_url("/hook"))
    config = radixconfig_with_webhook(tmp_path, url, in_environment=False)
    setup = await blocked(backend, start, RADIX_CONFIG_FILE=str(config))
    stream = await open_stream(setup.client)
    name = (await post_job(setup.client, {**setup.body, "waitingTimeoutSeconds": 3}))["name"]

    while True:
        frame = (await stream.until(name, "Update"))[-1]
        if frame.body["jobStatuses"][0]["status"] == "Failed":
            break
    message = f"did not start within 3 s: {setup.reason}"
    assert frame.body["jobStatuses"][0]["message"] == message

    def announced(event: JSON) -> bool:
        return event["name"] == name and event["jobStatuses"][0].get("message") == message

    async def delivered_too() -> bool:
        return any(announced(event) for event in delivered)

    await wait_until(delivered_too)


# -- on Kubernetes ---------------------------------------------------------------------------------


async def test_a_job_given_up_on_is_suspended_saying_why_and_its_pods_are_removed(
    scheduler: Client, kube: FakeKube
) -> None:
    body = {**SHORT, "image": "busybox:does-not-exist", "waitingTimeoutSeconds": 3}
    name = (await post_job(scheduler, body))["name"]
    failed = await wait_for_status(scheduler, name, "Failed", timeout=30)

    job = kube.get("Job", NAMESPACE, name)
    assert job is not None and job["spec"]["suspend"] is True
    annotations = job["metadata"]["annotations"]
    assert annotations["radix.equinor.com/waiting-timed-out"] == failed["message"]
    assert annotations["radix.equinor.com/waiting-timed-out-at"] == failed["ended"]

    async def pods_gone() -> bool:
        return kube.list("Pod", NAMESPACE, f"job-name={name}") == []

    await wait_until(pods_gone)


async def test_a_job_no_node_fits_fails_after_its_timeout_naming_why(scheduler: Client) -> None:
    body = {**SHORT, "resources": {"requests": {"memory": "1Ti"}}, "waitingTimeoutSeconds": 3}
    name = (await post_job(scheduler, body))["name"]

    failed = await wait_for_status(scheduler, name, "Failed", timeout=30)
    assert failed["message"] == (
        "did not start within 3 s: Unschedulable: 0/1 nodes are available: 1 Insufficient memory"
    )


async def test_two_replicas_agree_on_when_and_why_a_job_was_given_up_on(
    scheduler_factory: ClientFactory,
) -> None:
    first, second = await scheduler_factory(), await scheduler_factory()
    body = {**SHORT, "image": "busybox:does-not-exist", "waitingTimeoutSeconds": 3}
    name = (await post_job(first, body))["name"]

    failed = await wait_for_status(second, name, "Failed", timeout=30)
    seen_first = await wait_for_status(first, name, "Failed")
    assert (seen_first["ended"], seen_first["message"]) == (failed["ended"], failed["message"])
