"""The benchmark's client of the scheduler's HTTP API: POSTs one at a time, in bursts and in
robust bulk (seeding, with retries), GETs of the job list, and waiting for the view."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from procs import BenchError
from raw import Burst

PAYLOAD = '{"x": 10, "y": 20}'
REQUEST_TIMEOUT_SECONDS = 30.0
# Seeding: a POST that met a 429/5xx or no answer is tried again, this many times at most.
SEED_RETRIES = 2
SEED_RETRY_PAUSE_SECONDS = 1.0
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_IN_FLIGHT = 1000  # the most POSTs a burst or the seeding may have in flight
POLL_SECONDS = 0.5  # while waiting for the view: one GET of the whole list per turn
# Waiting for seeded jobs to show their status: this long, plus this much per job in the view.
WAIT_BASE_SECONDS, WAIT_PER_JOB_SECONDS = 120.0, 0.1


@dataclass
class Seeding:
    """One round of seeding: jobs asked for, created, given up on, and how long it took."""

    target: int  # jobs in the view wanted
    posted: int
    created: int = 0
    errors: int = 0
    retries: int = 0
    post_seconds: float = 0.0
    running_seconds: float = 0.0  # from the last answer until the GET showed all in `status`
    listed: int = 0  # jobs the GET showed at the end

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def wait_seconds(jobs: int) -> float:
    return WAIT_BASE_SECONDS + WAIT_PER_JOB_SECONDS * jobs


class SchedulerClient:
    def __init__(self, http: aiohttp.ClientSession, alive: Callable[[], None]) -> None:
        self.http, self.alive = http, alive
        self.accepted = 0  # POSTs answered 200: the jobs the view should hold at least

    @classmethod
    def session(cls, base_url: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            base_url,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
        )

    async def ready(self) -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.http.get("/readyz") as response:
                return response.status == 200
        return False

    async def get_jobs(self) -> bytes:
        async with self.http.get("/api/v1/jobs") as response:
            if response.status != 200:
                raise BenchError(f"GET /api/v1/jobs: {response.status} {await response.text()}")
            return await response.read()

    async def statuses(self) -> list[str]:
        return [job.get("status") or "" for job in json.loads(await self.get_jobs())]

    async def _post(self) -> tuple[int, str]:
        """One `POST /api/v1/jobs`: its status and, unless 200, its answer."""
        async with self.http.post("/api/v1/jobs", data=json.dumps({"payload": PAYLOAD})) as answer:
            text = await answer.text()
            if answer.status == 200:
                self.accepted += 1
                return 200, ""
            return answer.status, text[:300]

    async def post_job(self) -> None:
        status, text = await self._post()
        if status != 200:
            raise BenchError(f"POST /api/v1/jobs: {status} {text}")

    async def post_batch(self, jobs: int) -> Burst:
        """One `POST /api/v1/batches` of `jobs` jobs: its wall time; every job is an error
        unless the answer is 200 with them all."""
        body = json.dumps({"jobScheduleDescriptions": [{"payload": PAYLOAD}] * jobs})
        batch = Burst(jobs, 1)
        start = time.perf_counter()
        try:
            async with self.http.post("/api/v1/batches", data=body) as response:
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            response, text = None, f"no answer: {exc!r}"
        batch.seconds = time.perf_counter() - start
        created = 0
        if response is not None and response.status == 200:
            created = len(json.loads(text).get("jobStatuses") or [])
            self.accepted += created
            text = f"answered {created} jobs, not {jobs}"
        elif response is not None:
            text = f"{response.status} {text[:300]}"
        for _ in range(jobs - created):
            batch.failed(f"POST /api/v1/batches: {text}")
        return batch

    async def burst(self, count: int, concurrency: int) -> Burst:
        """`count` POSTs, `concurrency` in flight, each tried once; non-200 answers counted."""
        gate = asyncio.Semaphore(concurrency)
        burst = Burst(count, concurrency)

        async def one() -> None:
            async with gate:
                try:
                    status, text = await self._post()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    burst.failed(f"no answer: {exc!r}")
                    return
                if status != 200:
                    burst.failed(f"{status} {text}")

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(count)))
        burst.seconds = time.perf_counter() - start
        return burst

    async def seed(
        self, target: int, concurrency: int, within_seconds: float, status: str = "Running"
    ) -> Seeding:
        """POST until the view should hold `target` jobs, then wait until it shows them all in
        `status` (Running, or Succeeded for jobs that end). A POST that met a 429/5xx or no
        answer is retried; one that still fails counts as an error (a POST with no answer may
        still have created its job: the view then holds more)."""
        seeding = Seeding(target, max(0, target - self.accepted))
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                for attempt in range(SEED_RETRIES + 1):
                    try:
                        status, _ = await self._post()
                    except (aiohttp.ClientError, TimeoutError):
                        status = 0
                    if status == 200:
                        seeding.created += 1
                        return
                    if status and status not in RETRIED_STATUSES:
                        break
                    if attempt < SEED_RETRIES:
                        seeding.retries += 1
                        await asyncio.sleep(SEED_RETRY_PAUSE_SECONDS * (attempt + 1))
                seeding.errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(seeding.posted)))
        seeding.post_seconds = time.perf_counter() - start
        if seeding.posted and not seeding.created:
            raise BenchError(f"seeding: none of {seeding.posted} POSTs created a job")
        seeding.listed = await self.wait_all(self.accepted, within_seconds, status)
        seeding.running_seconds = time.perf_counter() - start - seeding.post_seconds
        return seeding

    async def wait_all(
        self, at_least: int, within_seconds: float, status: str | None = "Running"
    ) -> int:
        """Wait until `GET /api/v1/jobs` shows at least `at_least` jobs, all in `status` (None:
        in any); how many."""
        deadline = time.monotonic() + within_seconds
        while True:
            statuses = await self.statuses()
            if len(statuses) >= at_least and all(status in (None, s) for s in statuses):
                return len(statuses)
            self.alive()
            if time.monotonic() > deadline:
                wanted = "" if status is None else f", all {status}"
                waiting = sum(status not in (None, s) for s in statuses)
                raise BenchError(
                    f"GET /api/v1/jobs shows {len(statuses)} jobs, {waiting} not {status}, "
                    f"after {within_seconds:.0f}s (wanted at least {at_least}{wanted})"
                )
            await asyncio.sleep(POLL_SECONDS)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    within_seconds: float,
    what: str,
    alive: Callable[[], None],
) -> None:
    deadline = time.monotonic() + within_seconds
    while not await predicate():
        alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not reached within {within_seconds:.0f}s")
        await asyncio.sleep(0.1)
