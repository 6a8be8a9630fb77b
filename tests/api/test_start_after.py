"""`startAfter`: a job or batch created at once as Waiting, saying when it starts, and started
then; stoppable and deletable before; on time after a scheduler restart. The starter's timing is
tested under a fake clock, the API on both backends in real (short) time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scheduler.backends.base import Identity
from scheduler.backends.kubernetes.manifests import build_job, give_up_patch
from scheduler.backends.kubernetes.restarting import replacement_job
from scheduler.backends.local.codec import request_from_json, request_to_json
from scheduler.domain.starting import Due, Starter, could_start, next_due
from scheduler.domain.status import derive_status
from scheduler.domain.view import JobView
from tests.api.calls import (
    LONG,
    SHORT,
    batch_of,
    expect_failure,
    expect_stopped_answer,
    post_batch,
    stop,
    wait_for_batch,
)
from tests.conftest import (
    NAMESPACE,
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import JSON, T0, Client, at, job_record, job_request
from tests.fakekube import FakeKube

# -- the starter, under a fake clock --------------------------------------------------------------


class FakeBackend:
    """Records what the starter asks of the backend; answers with the record it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.answer: Any = None

    async def start_held_job(self, name: str, uid: str) -> Any:
        self.calls.append(("start", name))
        return self.answer

    async def fail_waiting_job(self, name: str, uid: str, message: str, now: datetime) -> Any:
        self.calls.append((message, name))
        return self.answer


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


HELD = job_record(suspended=True, start_after=at(60))


def test_a_held_job_is_due_to_start_at_its_start_time() -> None:
    assert next_due(HELD, [], derive_status(HELD, [])) == Due(at(60), "start")


def test_a_stopped_held_job_is_never_due() -> None:
    stopped = job_record(suspended=True, start_after=at(60), stopped_at=at(5))
    assert next_due(stopped, [], derive_status(stopped, [])) is None


def test_a_held_jobs_waiting_time_counts_from_its_start_time() -> None:
    job = job_record(start_after=at(60), waiting_timeout_seconds=30)
    assert could_start(job) == at(60)
    assert next_due(job, [], derive_status(job, [])) == Due(at(90), "give up")


def test_a_held_job_started_late_waits_its_whole_timeout_from_then() -> None:
    late = job_record(start_after=at(60), started=at(3600), waiting_timeout_seconds=30)
    assert next_due(late, [], derive_status(late, [])) == Due(at(3630), "give up")


async def test_the_starter_starts_a_held_job_when_the_clock_reaches_its_start_time() -> None:
    clock, backend, view = Clock(T0), FakeBackend(), JobView()
    starter = Starter(backend, view, clock=clock)  # type: ignore[arg-type]
    view.upsert_job(HELD)

    assert await starter.run_due() == 0 and backend.calls == []
    clock.now = at(59)
    assert await starter.run_due() == 0 and backend.calls == []
    clock.now = at(60)
    backend.answer = job_record(resource_version="2", start_after=at(60))
    assert await starter.run_due() == 1
    assert backend.calls == [("start", HELD.name)]
    assert starter.next_moment() is None, "a started job is due for nothing"


async def test_a_start_another_replica_made_first_is_looked_at_again_later() -> None:
    clock, backend, view = Clock(at(60)), FakeBackend(), JobView()
    starter = Starter(backend, view, clock=clock)  # type: ignore[arg-type]
    view.upsert_job(HELD)

    assert await starter.run_due() == 0  # the backend found it started already: None
    assert backend.calls == [("start", HELD.name)]
    assert starter.next_moment() == at(62)


def test_the_local_store_keeps_the_start_time_and_the_timeout_with_the_job() -> None:
    request = job_request(payload=None, start_after=at(60), waiting_timeout_seconds=600)
    assert request_from_json(request_to_json(request)) == request
    # Rows stored before there were either: the job neither waits for a time nor times out.
    older = json.loads(request_to_json(request))
    del older["start_after"], older["waiting_timeout_seconds"]
    assert request_from_json(json.dumps(older)) == job_request(payload=None)


IDENTITY = Identity(app="myapp", environment="dev", component="compute", namespace="myapp-dev")
START_AFTER = "radix.equinor.com/start-after"


def test_a_job_to_start_later_is_born_suspended_holding_its_start_time_rounded_up() -> None:
    job = build_job(IDENTITY, job_request(start_after=T0 + timedelta(seconds=0.5)), now=T0)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["annotations"][START_AFTER] == "2024-05-01T12:00:01Z"

    due = build_job(IDENTITY, job_request(start_after=T0), now=T0)
    assert "suspend" not in due["spec"] and START_AFTER not in due["metadata"]["annotations"]


def test_a_restarted_job_runs_at_once_and_keeps_its_waiting_timeout() -> None:
    request = job_request(start_after=at(60), waiting_timeout_seconds=600)
    old = build_job(IDENTITY, request, now=T0)
    old["metadata"]["annotations"].update(
        give_up_patch("1", at(700), "did not start")["metadata"]["annotations"]
    )
    old["metadata"]["creationTimestamp"] = "2024-05-01T12:00:00Z"

    annotations = replacement_job(old, [], at(800))["metadata"]["annotations"]
    assert START_AFTER not in annotations
    assert not {key for key in annotations if "waiting-timed-out" in key}
    assert annotations["radix.equinor.com/waiting-timeout-seconds"] == "600"


# -- the API, on both backends --------------------------------------------------------------------


def later(seconds: int) -> str:
    """A start time `seconds` from now, in whole seconds (RFC 3339, UTC)."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_job_starting_later_is_waiting_saying_when_then_runs_no_earlier(
    client: Client,
) -> None:
    start = later(2)
    created = await post_job(client, {**SHORT, "startAfter": start})

    assert created["status"] == "Waiting"
    assert created["message"] == f"starts at {start}"
    assert (await job_status(client, created["name"]))["message"] == f"starts at {start}"
    done = await wait_for_status(client, created["name"], "Succeeded", timeout=30)
    assert parse(done["podStatuses"][0]["startTime"]) >= parse(start)


async def test_a_start_time_that_has_passed_starts_the_job_at_once(client: Client) -> None:
    created = await post_job(client, {**SHORT, "startAfter": "2020-01-01T00:00:00+01:00"})
    await wait_for_status(client, created["name"], "Succeeded")


async def test_a_job_stopped_before_its_start_time_never_starts(client: Client) -> None:
    start = later(2)
    name = (await post_job(client, {**SHORT, "startAfter": start}))["name"]

    await expect_stopped_answer(await stop(client, name), name)
    stopped = await wait_for_status(client, name, "Stopped")
    assert "message" not in stopped, "a stopped job no longer starts at any time"

    await wait_until_past(start)
    again = await job_status(client, name)
    assert again["status"] == "Stopped" and again["podStatuses"] == []


async def test_a_job_deleted_before_its_start_time_is_gone(client: Client) -> None:
    name = (await post_job(client, {**SHORT, "startAfter": later(60)}))["name"]
    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200
    assert (await client.get(f"/api/v1/jobs/{name}")).status == 404


async def test_a_restarted_job_that_was_stopped_while_held_runs_at_once(client: Client) -> None:
    name = (await post_job(client, {**SHORT, "startAfter": later(3600)}))["name"]
    await expect_stopped_answer(await stop(client, name), name)
    await wait_for_status(client, name, "Stopped")

    response = await client.post(f"/api/v1/jobs/{name}/restart")
    assert response.status == 200, await response.text()
    await wait_for_status(client, name, "Succeeded", timeout=30)


async def test_a_batchs_start_time_holds_each_job_without_one_of_its_own(client: Client) -> None:
    start = later(2)
    body = batch_of(SHORT, {**SHORT, "startAfter": "2020-01-01T00:00:00Z"}, startAfter=start)
    created = await post_batch(client, body)
    held, own = created["jobStatuses"]

    assert held["message"] == f"starts at {start}"
    assert "starts at" not in own.get("message", "")
    await wait_for_status(client, own["name"], "Succeeded")
    assert (await job_status(client, held["name"]))["status"] == "Waiting"
    done = await wait_for_batch(client, created["name"], lambda b: b["status"] == "Completed")
    assert [job["status"] for job in done["jobStatuses"]] == ["Succeeded", "Succeeded"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"startAfter": "2026-12-07T03:00:00"}, "startAfter"),
        ({"startAfter": "tomorrow"}, "startAfter"),
        ({"startAfter": 1765076400}, "startAfter"),
        ({"startAfter": "2026-02-30T03:00:00Z"}, "startAfter"),
    ],
)
async def test_a_start_time_that_is_no_rfc_3339_time_with_an_offset_is_422_naming_it(
    client: Client, body: JSON, field: str
) -> None:
    response = await client.post("/api/v1/jobs", json=body)
    await expect_failure(response, 422, "Invalid", f"{field}: Value error, must be an RFC 3339")
    batch = await client.post("/api/v1/batches", json=batch_of({}, **body))
    await expect_failure(batch, 422, "Invalid", f"{field}: Value error")
    in_batch = await client.post("/api/v1/batches", json=batch_of({}, body))
    await expect_failure(in_batch, 422, "Invalid", f"jobScheduleDescriptions.1.{field}")


async def wait_until_past(moment: str) -> None:
    async def past() -> bool:
        return datetime.now(UTC) > parse(moment) + timedelta(seconds=1.5)

    await wait_until(past, timeout=30)


# -- surviving restarts ---------------------------------------------------------------------------


async def test_jobs_held_by_a_scheduler_that_went_away_start_on_time_under_the_next(
    start: ClientFactory,
) -> None:
    grace = {"SCHEDULER_CREATE_GRACE_SECONDS": "0.3"}  # the sweeps run every 0.1 s
    first = await start(**grace)
    begin = later(3)
    # With a payload (a Secret, so an anchor and a commit) and in a batch: held once committed.
    name = (await post_job(first, {**SHORT, "payload": "{}", "startAfter": begin}))["name"]
    batch = await post_batch(first, batch_of(SHORT, startAfter=begin))
    await first.close()

    # Long past their grace time, held jobs are no half-made creations to the sweeps.
    second = await start(**grace)
    assert (await job_status(second, name))["message"] == f"starts at {begin}"
    for job in (name, batch["jobStatuses"][0]["name"]):
        done = await wait_for_status(second, job, "Succeeded", timeout=30)
        assert parse(done["podStatuses"][0]["startTime"]) >= parse(begin)


async def test_two_replicas_start_a_held_job_once(
    scheduler_factory: ClientFactory, kube: FakeKube
) -> None:
    first, second = await scheduler_factory(), await scheduler_factory()
    name = (await post_job(first, {**LONG, "startAfter": later(2)}))["name"]

    async def seen_by_both() -> bool:
        answers = [await c.get(f"/api/v1/jobs/{name}") for c in (first, second)]
        return all(answer.status == 200 for answer in answers)

    await wait_until(seen_by_both)
    running = await wait_for_status(second, name, "Running", timeout=30)
    assert len(running["podStatuses"]) == 1
    # Born suspended, resumed once: neither replica's start undid or repeated the other's.
    events = [e for e in kube.list("Event", NAMESPACE) if e["involvedObject"]["name"] == name]
    assert [e["reason"] for e in events if e["reason"] in ("Suspended", "Resumed")] == [
        "Suspended",
        "Resumed",
    ]


async def test_a_held_job_is_a_suspended_job_without_pods_until_its_time(
    scheduler: Client, kube: FakeKube
) -> None:
    begin = later(3)
    name = (await post_job(scheduler, {**SHORT, "startAfter": begin}))["name"]

    job = kube.get("Job", NAMESPACE, name)
    assert job is not None and job["spec"]["suspend"] is True
    assert job["metadata"]["annotations"]["radix.equinor.com/start-after"] == begin
    assert kube.list("Pod", NAMESPACE, f"job-name={name}") == []
    await wait_for_status(scheduler, name, "Succeeded", timeout=30)
