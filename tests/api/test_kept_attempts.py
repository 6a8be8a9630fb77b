"""What a job leaves behind outlives its attempts' processes and pods, on both backends alike: a
stopped job keeps its stopped attempt and its log, a job restarted twice keeps all three runs'
attempts, logs and results, and a scheduler started afterwards shows the same. (On Kubernetes
the pods of stopped and restarted jobs are deleted: the job's attempt record answers.)"""

from __future__ import annotations

from typing import Any

from tests.api.test_results_and_restart import JobFiles, files, restart, shell
from tests.conftest import ClientFactory, job_status, post_job, wait_for_status, wait_until
from tests.factories import JSON, Client

__all__ = ["files"]  # the fixture, re-exported for pytest

LINES = "echo first; echo second"


async def log_of(client: Client, name: str, attempt: int) -> tuple[int, str]:
    response = await client.get(f"/api/v1/jobs/{name}/logs", params={"attempt": str(attempt)})
    return response.status, await response.text()


async def result_of(client: Client, name: str) -> tuple[int, str]:
    response = await client.get(f"/api/v1/jobs/{name}/result")
    return response.status, await response.text()


def attempts_of(status: JSON) -> list[tuple[Any, ...]]:
    """What each attempt shows, as both backends show it (names and times are their own)."""
    return [
        (
            pod["podIndex"],
            pod["replicaStatus"]["status"],
            pod["reason"],
            pod["exitCode"],
            pod.get("statusMessage"),
        )
        for pod in status["podStatuses"]
    ]


async def records_answer(client: Client, name: str, attempts: int) -> None:
    """Until every attempt's log is served by the job's record where its pod is gone (at once
    on the local backend, which keeps every attempt's log with the job)."""

    async def served() -> bool:
        for attempt in range(attempts):
            response = await client.get(
                f"/api/v1/jobs/{name}/logs", params={"attempt": str(attempt)}
            )
            if response.status != 200:
                return False
        return True

    await wait_until(served, timeout=20)


async def test_a_stopped_job_shows_its_stopped_attempt_log_and_no_result_also_after_a_restart(
    backend: str, start: ClientFactory
) -> None:
    client = await start()
    name = str((await post_job(client, shell(f"{LINES}; sleep 300")))["name"])

    async def printed() -> bool:
        return (await log_of(client, name, 0)) == (200, "first\nsecond\n")

    await wait_until(printed, timeout=20)
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    await wait_for_status(client, name, "Stopped")
    await records_answer(client, name, 1)

    async def shows_what_it_kept(scheduler: Client) -> None:
        status = await job_status(scheduler, name)
        assert status["status"] == "Stopped"
        assert attempts_of(status) == [(0, "Stopped", "Stopped", 143, "the job was stopped")]
        assert await log_of(scheduler, name, 0) == (200, "first\nsecond\n")
        code, message = await result_of(scheduler, name)
        assert code == 404 and "wrote no result" in message

    await shows_what_it_kept(client)
    await shows_what_it_kept(await restarted(client, start))


async def test_a_job_restarted_twice_shows_every_run_s_attempt_log_and_the_last_result(
    backend: str, start: ClientFactory, files: JobFiles
) -> None:
    client = await start()
    script = f"echo run; {files.writing('done')}"
    name = str((await post_job(client, shell(script)))["name"])
    await wait_for_status(client, name, "Succeeded")
    for runs in (2, 3):
        assert (await restart(client, f"jobs/{name}")).status == 200

        async def succeeded_again(runs: int = runs) -> bool:
            status = await job_status(client, name)
            return status["status"] == "Succeeded" and len(status["podStatuses"]) == runs

        await wait_until(succeeded_again, timeout=30)
    await records_answer(client, name, 3)

    async def shows_what_it_kept(scheduler: Client) -> None:
        status = await job_status(scheduler, name)
        assert attempts_of(status) == [
            (index, "Succeeded", "Completed", 0, "done") for index in range(3)
        ]
        for attempt in range(3):
            assert await log_of(scheduler, name, attempt) == (200, "run\n")
        assert await result_of(scheduler, name) == (200, "done\n")

    await shows_what_it_kept(client)
    await shows_what_it_kept(await restarted(client, start))


async def restarted(client: Client, start: ClientFactory) -> Client:
    """The scheduler stopped and started again (the same cluster, or the same state dir)."""
    await client.close()
    return await start()
