"""API calls that the shared suite and the Kubernetes-only tests beside it both make, and the
answers they expect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import ok_json, post_job, wait_for_status, wait_until
from tests.factories import JSON, Client

# Jobs of the test radixconfig's job on either backend's test clock (`sleep N` lasts N * 0.05 s).
LONG = {"command": ["sh", "-c", "sleep 1000; exit 0"]}
SHORT = {"command": ["sh", "-c", "sleep 1; exit 0"]}
FAILING = {"command": ["sh", "-c", "sleep 1; exit 3"]}


async def expect_failure(response: Any, code: int, reason: str, fragment: str = "") -> None:
    """A `Status` failure with that code and reason, its message holding `fragment`."""
    assert response.status == code, await response.text()
    body = await response.json()
    assert (body["status"], body["code"], body["reason"]) == ("Failure", code, reason)
    assert fragment in body["message"], body["message"]


async def listed(client: Client, path: str) -> list[str]:
    """The names `GET path` lists."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return [item["name"] for item in await response.json()]


# -- batches ----------------------------------------------------------------------------------


def batch_of(*jobs: JSON, **fields: Any) -> JSON:
    return {"jobScheduleDescriptions": list(jobs), **fields}


async def post_batch(client: Client, body: Any) -> JSON:
    return await ok_json(await client.post("/api/v1/batches", json=body))


async def get_batch(client: Client, name: str) -> JSON:
    return await ok_json(await client.get(f"/api/v1/batches/{name}"))


async def wait_for_batch(client: Client, name: str, reached: Callable[[JSON], bool]) -> JSON:
    found: JSON = {}

    async def check() -> bool:
        nonlocal found
        found = await get_batch(client, name)
        return reached(found)

    await wait_until(check, timeout=15)
    return found


def job_statuses(batch: JSON) -> list[str]:
    return [job["status"] for job in batch["jobStatuses"]]


def completed_or_pruned(client: Client, name: str) -> Callable[[], Awaitable[bool]]:
    """Whether batch `name` has completed (the history limit may have removed it since)."""

    async def check() -> bool:
        response = await client.get(f"/api/v1/batches/{name}")
        return response.status == 404 or (await response.json())["status"] == "Completed"

    return check


# -- stopping ---------------------------------------------------------------------------------


async def stop(client: Client, name: str) -> Any:
    return await client.post(f"/api/v1/jobs/{name}/stop")


async def expect_stopped_answer(response: Any, name: str) -> None:
    assert response.status == 200, await response.text()
    assert await response.json() == {
        "status": "Success",
        "message": f"job {name} was successfully stopped",
        "code": 200,
    }


async def expect_bad_request(response: Any, name: str, status: str) -> None:
    assert response.status == 400, await response.text()
    assert await response.json() == {
        "status": "Failure",
        "message": f"cannot stop the job {name} with the status {status}",
        "reason": "BadRequest",
        "code": 400,
    }


async def running_job(client: Client, body: JSON | None = None) -> str:
    name: str = (await post_job(client, body or LONG))["name"]
    await wait_for_status(client, name, "Running")
    return name


async def stop_while_waiting_for_a_retry(client: Client) -> str:
    """A job whose first attempt fails at once, stopped while it waits for its retry (which the
    scheduler under test puts far off); returns its name once it is Stopped."""
    body = {"command": ["sh", "-c", "exit 1"], "backoffLimit": 1}
    name: str = (await post_job(client, body))["name"]

    async def waiting_for_a_retry() -> bool:
        response = await client.get(f"/api/v1/jobs/{name}")
        found = await response.json() if response.status == 200 else {}
        return found.get("status") == "Waiting" and found.get("failed") == 1

    await wait_until(waiting_for_a_retry)
    await expect_stopped_answer(await stop(client, name), name)
    await wait_for_status(client, name, "Stopped")
    return name
