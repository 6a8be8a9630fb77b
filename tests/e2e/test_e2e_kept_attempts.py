"""Attempts outlive their pods, against a real cluster (or the fake): a stopped job, a job restarted
twice and a job whose pod is deleted by hand keep each attempt's status, log and result in the
job's attempt record, and a scheduler started afterwards on the same cluster shows the same.

Each test starts its own scheduler, and the second one after the first has closed (a restart).
The scripts trap SIGTERM so that a deleted pod's `sh` (PID 1, which ignores it otherwise) ends
at once on a real cluster rather than after the grace period; `sleep N & wait $!` lets the trap
run during the sleep (a foreground `sleep` would hold it off)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.conftest import E2E_MARKS, Client, Cluster, serving, wait_until
from tests.e2e.test_e2e_jobs import (
    FINISHED,
    GC_SECONDS,
    JOB_SECONDS,
    exists,
    follow,
    post_job,
    wire,
)

pytestmark = E2E_MARKS

# A record is written within moments of what the watch sees; this is for a busy cluster.
KEEP_SECONDS = 60.0
TRAP = "trap 'exit 143' TERM"
SIGTERM_EXIT_CODE = 143


@dataclass(frozen=True)
class Log:
    """A log as a user reads it: the answer's code and text, and where it came from."""

    status: int
    text: str
    source: str | None  # "record" when the attempt's record served it
    truncated: str | None


async def log_of(client: Client, name: str, attempt: int) -> Log:
    response = await client.get(f"/api/v1/jobs/{name}/logs", params={"attempt": str(attempt)})
    return Log(
        response.status,
        await response.text(),
        response.headers.get("X-Log-Source"),
        response.headers.get("X-Log-Truncated"),
    )


async def result_of(client: Client, name: str) -> tuple[int, str]:
    response = await client.get(f"/api/v1/jobs/{name}/result")
    return response.status, await response.text()


async def status_of(client: Client, name: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{name}")
    assert response.status == 200, await response.text()
    status: dict[str, Any] = await response.json()
    return status


def attempts_of(status: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (pod["podIndex"], pod["replicaStatus"]["status"], pod["reason"], pod["exitCode"])
        for pod in status["podStatuses"]
    ]


def pod_names(status: dict[str, Any]) -> list[str]:
    return [pod["name"] for pod in status["podStatuses"]]


async def settles(client: Client, name: str, expected: list[tuple[Any, ...]]) -> None:
    """Until the job's attempts show `expected` (each is kept a moment after its pod's news)."""
    seen: list[tuple[Any, ...]] = []

    async def shown() -> bool:
        nonlocal seen
        seen = attempts_of(await status_of(client, name))
        return seen == expected

    try:
        await wait_until(shown, KEEP_SECONDS, f"the attempts of job {name} kept", 0.25)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; they show {seen}, not {expected}") from None


async def pods_gone(cluster: Cluster, namespace: str, pods: list[str]) -> None:
    async def gone() -> bool:
        for pod in pods:
            if await exists(cluster.core.read_namespaced_pod(pod, namespace)):
                return False
        return True

    await wait_until(gone, GC_SECONDS, f"pods {pods} deleted", 0.25)


async def test_a_stopped_job_keeps_its_stopped_attempt_and_its_log_also_after_a_restart(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    script = f"{TRAP}; echo first; echo second; sleep 300 & wait $!"

    async def shows_the_stopped_attempt(scheduler: Client, name: str) -> None:
        status = await status_of(scheduler, name)
        assert status["status"] == "Stopped", status
        assert attempts_of(status) == [(0, "Stopped", "Stopped", SIGTERM_EXIT_CODE)]
        assert await log_of(scheduler, name, 0) == Log(200, "first\nsecond\n", "record", None)
        code, message = await result_of(scheduler, name)
        assert code == 404 and "wrote no result" in message, (code, message)

    async with serving(cluster.kubeconfig, namespace, tmp_path / "first") as scheduler:
        name = (await post_job(scheduler, {"command": ["sh", "-c", script]}))["name"]

        async def printed() -> bool:
            log = await log_of(scheduler, name, 0)
            return (log.status, log.text) == (200, "first\nsecond\n")

        await wait_until(printed, JOB_SECONDS, f"job {name} printing its lines", 0.25)
        pods = pod_names(await status_of(scheduler, name))
        response = await scheduler.post(f"/api/v1/jobs/{name}/stop")
        assert response.status == 200, await response.text()
        await follow(scheduler, name, FINISHED)
        await pods_gone(cluster, namespace, pods)
        await settles(scheduler, name, [(0, "Stopped", "Stopped", SIGTERM_EXIT_CODE)])
        await shows_the_stopped_attempt(scheduler, name)

    async with serving(cluster.kubeconfig, namespace, tmp_path / "second") as restarted:
        await shows_the_stopped_attempt(restarted, name)


async def test_a_job_restarted_twice_keeps_every_run_s_attempt_log_and_the_last_result(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    # Each attempt names its own pod, in its log and in its result, to tell the runs apart.
    script = "echo run on $HOSTNAME; echo $HOSTNAME > /dev/termination-log"
    succeeded_thrice = [(index, "Succeeded", "Completed", 0) for index in range(3)]

    async def shows_every_run(scheduler: Client, name: str, pods: list[str]) -> None:
        status = await status_of(scheduler, name)
        assert status["status"] == "Succeeded", status
        assert attempts_of(status) == succeeded_thrice
        assert pod_names(status) == pods
        # The first two runs' pods went with their restarts; the last run's pod is still there.
        for attempt, source in ((0, "record"), (1, "record"), (2, None)):
            expected = Log(200, f"run on {pods[attempt]}\n", source, None)
            assert await log_of(scheduler, name, attempt) == expected, attempt
        assert await result_of(scheduler, name) == (200, f"{pods[2]}\n")

    async with serving(cluster.kubeconfig, namespace, tmp_path / "first") as scheduler:
        name = (await post_job(scheduler, {"command": ["sh", "-c", script]}))["name"]
        done, _ = await follow(scheduler, name, FINISHED)
        assert done["status"] == "Succeeded", done
        for runs in (2, 3):
            response = await scheduler.post(f"/api/v1/jobs/{name}/restart")
            assert response.status == 200, await response.text()

            async def succeeded_again(runs: int = runs) -> bool:
                status = await status_of(scheduler, name)
                return status["status"] == "Succeeded" and len(status["podStatuses"]) == runs

            await wait_until(succeeded_again, JOB_SECONDS, f"run {runs} of job {name}", 0.25)
        pods = pod_names(await status_of(scheduler, name))
        await pods_gone(cluster, namespace, pods[:2])
        await settles(scheduler, name, succeeded_thrice)
        await shows_every_run(scheduler, name, pods)
        # The record goes with the Job of the last run, not with the Jobs the restarts replaced.
        job = wire(await cluster.batch.read_namespaced_job(name, namespace))
        record = wire(await cluster.core.read_namespaced_config_map(f"{name}-attempts", namespace))
        owners = [owner["uid"] for owner in record["metadata"]["ownerReferences"]]
        assert owners == [job["metadata"]["uid"]]

    async with serving(cluster.kubeconfig, namespace, tmp_path / "second") as restarted:
        await shows_every_run(restarted, name, pods)


async def test_a_pod_deleted_by_hand_keeps_its_attempt_and_the_retry_succeeds(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    # Both attempts run this; the first is deleted during its sleep, the second sleeps it out.
    script = (
        f"{TRAP}; echo attempt on $HOSTNAME; sleep 40 & wait $!; "
        "echo $HOSTNAME > /dev/termination-log"
    )
    body = {"command": ["sh", "-c", script], "backoffLimit": 1}

    async with serving(cluster.kubeconfig, namespace, tmp_path / "first") as scheduler:
        name = (await post_job(scheduler, body))["name"]
        first = ""

        async def printed() -> bool:
            nonlocal first
            pods = pod_names(await status_of(scheduler, name))
            if not pods:
                return False
            first = pods[0]
            return await log_of(scheduler, name, 0) == Log(200, f"attempt on {first}\n", None, None)

        await wait_until(printed, JOB_SECONDS, f"the first attempt of job {name} printing", 0.25)
        # As `kubectl delete pod` does: the pod's own grace period, in the background.
        await cluster.core.delete_namespaced_pod(first, namespace, propagation_policy="Background")
        done, _ = await follow(scheduler, name, FINISHED, JOB_SECONDS + GC_SECONDS)
        assert done["status"] == "Succeeded", done
        await pods_gone(cluster, namespace, [first])
        pods = pod_names(done)
        assert len(pods) == 2 and pods[0] == first, pods
        kept = await shows_both_attempts(scheduler, name, pods)

    async with serving(cluster.kubeconfig, namespace, tmp_path / "second") as restarted:
        assert await shows_both_attempts(restarted, name, pods) == kept


async def shows_both_attempts(scheduler: Client, name: str, pods: list[str]) -> Log:
    """Check what the deleted attempt and its retry show; return the deleted one's log, which
    is kept only if the scheduler read it before its pod went."""
    status = await status_of(scheduler, name)
    assert status["status"] == "Succeeded", status
    assert pod_names(status) == pods
    deleted, retry = attempts_of(status)
    # What its pod said last (sh ended by SIGTERM), or Deleted when its end was not seen.
    assert deleted in [
        (0, "Failed", "Error", SIGTERM_EXIT_CODE),
        (0, "Failed", "Deleted", 0),
    ], deleted
    assert retry == (1, "Succeeded", "Completed", 0)
    log = await log_of(scheduler, name, 0)
    if log.status == 200:
        assert log == Log(200, f"attempt on {pods[0]}\n", "record", None)
    else:
        assert log.status == 404 and "was not kept" in log.text, log
    assert await log_of(scheduler, name, 1) == Log(200, f"attempt on {pods[1]}\n", None, None)
    # The result is the last attempt's: the deleted one wrote none.
    assert await result_of(scheduler, name) == (200, f"{pods[1]}\n")
    return log
