"""Start no earlier than, and give up on a job that cannot start, against a real cluster: what a
user sees through the API, and what the cluster holds meanwhile (no pod before the start time; no
pod left once given up on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import E2E_MARKS, Client, Cluster, wait_until
from tests.e2e.test_e2e_jobs import FINISHED, GC_SECONDS, JOB_SECONDS, follow, post_job, sh, wire

pytestmark = E2E_MARKS

# Far enough ahead that the job is seen held (a real cluster answers in well under this).
HOLD_SECONDS = 10
# Long enough for a real node to try the pull and fail (it does in seconds).
WAITING_TIMEOUT_SECONDS = 15
MISSING_IMAGE = "busybox:does-not-exist"


def later(seconds: int) -> str:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def pods_of(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = await cluster.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}")
    items: list[dict[str, Any]] = wire(pods)["items"]
    return items


async def test_a_job_held_until_its_start_time_has_no_pod_until_then_and_runs_after(
    scheduler: Client, cluster: Cluster, namespace: str
) -> None:
    begin = later(HOLD_SECONDS)
    created = await post_job(scheduler, {"command": sh(1, 0), "startAfter": begin})
    name = created["name"]
    assert (created["status"], created["message"]) == ("Waiting", f"starts at {begin}")

    job = wire(await cluster.batch.read_namespaced_job(name, namespace))
    assert job["spec"]["suspend"] is True
    assert await pods_of(cluster, namespace, name) == []

    done, seen = await follow(scheduler, name, FINISHED, JOB_SECONDS + HOLD_SECONDS)
    assert done["status"] == "Succeeded", done
    assert seen[0] == "Waiting", seen
    assert parse(done["podStatuses"][0]["startTime"]) >= parse(begin)


async def test_a_held_job_stopped_before_its_start_time_never_runs(
    scheduler: Client, cluster: Cluster, namespace: str
) -> None:
    begin = later(HOLD_SECONDS)
    name = (await post_job(scheduler, {"command": sh(1, 0), "startAfter": begin}))["name"]
    response = await scheduler.post(f"/api/v1/jobs/{name}/stop")
    assert response.status == 200, await response.text()
    stopped, _ = await follow(scheduler, name, FINISHED)
    assert stopped["status"] == "Stopped", stopped

    async def past_its_start_time() -> bool:
        return datetime.now(UTC) > parse(begin) + timedelta(seconds=3)

    await wait_until(past_its_start_time, HOLD_SECONDS + 5, "the start time passed", 0.5)
    job = wire(await cluster.batch.read_namespaced_job(name, namespace))
    assert job["spec"]["suspend"] is True
    assert await pods_of(cluster, namespace, name) == []


async def test_a_job_whose_image_cannot_be_pulled_fails_after_its_waiting_timeout(
    scheduler: Client, cluster: Cluster, namespace: str
) -> None:
    body = {
        "image": MISSING_IMAGE,
        "command": sh(1, 0),
        "waitingTimeoutSeconds": WAITING_TIMEOUT_SECONDS,
    }
    name = (await post_job(scheduler, body))["name"]

    failed, seen = await follow(scheduler, name, FINISHED, JOB_SECONDS)
    assert failed["status"] == "Failed", failed
    assert "Running" not in seen, seen
    # The reason is the pull's, in the words the cluster's kubelet version gives.
    assert failed["message"].startswith(f"did not start within {WAITING_TIMEOUT_SECONDS} s: ")
    assert MISSING_IMAGE in failed["message"], failed["message"]
    waited = parse(failed["ended"]) - parse(failed["created"])
    assert waited >= timedelta(seconds=WAITING_TIMEOUT_SECONDS)

    async def pods_gone() -> bool:
        return await pods_of(cluster, namespace, name) == []

    await wait_until(pods_gone, GC_SECONDS, f"the pods of job {name} deleted", 0.5)
