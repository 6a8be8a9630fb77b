"""What attempt records cost (issue 21), against the fake API server: the API calls of a job that
runs to its end, and the scheduler's RSS and GET with many ended jobs in its history, with the
records on and off.

Each side is a scheduler of its own (`--keep-attempts true` or `false`) serving the job `ended`
(its pods print a few lines and exit 0) in a namespace of its own, so the fake's audit log, read
on its control port (`fakeserver.py`), counts that scheduler's calls and nobody else's. On each
side `--ended-jobs` jobs are POSTed and run to their end; once every attempt is kept (records
on) and the processes are quiet, the audit log gives the calls per job. Then one of those jobs,
with everything it owns (its Pod, anchor, Secret, Service and, records on, its record), is copied
straight into the fake's store until the namespace holds `--history-jobs` ended jobs, which the
scheduler sees arrive through its watch; then GETs and RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from procs import (
    HOST,
    START_TIMEOUT_SECONDS,
    BenchError,
    free_port,
    peak_rss_mib,
    progress,
    rss_mib,
    running,
    scheduler_argv,
    settled,
)
from records_report import ApiCalls, Records, RecordsSide
from rows import Timings
from schedclient import SchedulerClient, Seeding, wait_seconds, wait_until

from scheduler.backends.kubernetes import attempts
from scheduler.backends.kubernetes.manifests import POD_JOB_NAME_LABEL

ENDED_JOB = "ended"
# Each side's namespace: the records on, then off.
SIDES = ((True, "bench-kept"), (False, "bench-unkept"))
WARMUP_REQUESTS = 10
# Copies put into the fake per request to its control port.
COPIES_PER_REQUEST = 500
KEPT_POLL_SECONDS = 0.5
CONTROL_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Setup:
    """What each side's scheduler needs: the run's files, the fake's process and control port."""

    workdir: Path
    config: Path
    kubeconfig: Path
    fake_pid: int
    control_url: str
    history_limit: int


class Control:
    """The fake's control port: its audit log, its objects, and copies of a job put into it."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        async with self.http.request(method, path, **kwargs) as response:
            if response.status != 200:
                raise BenchError(f"the fake's {path}: {response.status} {await response.text()}")
            answer: dict[str, Any] = await response.json()
            return answer

    async def mark(self, namespace: str) -> int:
        """Where the audit log is now: the calls from here on are counted."""
        return int((await self._json("GET", "/audit", params={"namespace": namespace}))["next"])

    async def calls(self, namespace: str, since: int) -> ApiCalls:
        params = {"namespace": namespace, "since": str(since)}
        return ApiCalls.from_audit((await self._json("GET", "/audit", params=params))["calls"])

    async def objects(self, kind: str, namespace: str, **query: str) -> list[dict[str, Any]]:
        """The objects of a kind (`name=` one of them, `labelSelector=` those it selects)."""
        params = {"kind": kind, "namespace": namespace, **query}
        items: list[dict[str, Any]] = (await self._json("GET", "/objects", params=params))["items"]
        return items

    async def jobs(self, namespace: str) -> list[dict[str, Any]]:
        return await self.objects("Job", namespace)

    async def copy(self, namespace: str, job: str, names: list[str], part: str) -> int:
        """Put a copy of `job` (part `job`) or of what it owns (part `owned`) under each name;
        the objects in one whole copy."""
        body = {"namespace": namespace, "job": job, "names": names, "part": part}
        return int((await self._json("POST", "/clone", json=body))["objects_per_job"])


def copy_names(template: str, count: int, taken: set[str]) -> list[str]:
    """`count` names like `template` (`ended-<yyyymmddHHMMSS>-<8 letters>`), none of `taken`."""
    prefix, index = template[:-8], 0
    names: list[str] = []
    while len(names) < count:
        letters, number = [], index
        for _ in range(8):
            number, digit = divmod(number, 26)
            letters.append(string.ascii_lowercase[digit])
        name = prefix + "".join(reversed(letters))
        if name not in taken:
            names.append(name)
        index += 1
    return names


def fully_kept(job: dict[str, Any]) -> bool:
    """The Job's record keeps an attempt whole: its log read once it had ended."""
    return any(attempt.kept == "final" for attempt in attempts.kept_on(job).values())


async def check_copy(control: Control, namespace: str, name: str, keep: bool) -> None:
    """A copy is a job that ended as its original did: its Pod, and (records on) its Job's
    annotation and its record keeping that Pod's attempt whole, its log readable."""
    [job] = await control.objects("Job", namespace, name=name)
    pods = await control.objects("Pod", namespace, labelSelector=f"{POD_JOB_NAME_LABEL}={name}")
    records = await control.objects("ConfigMap", namespace, name=attempts.record_name(name))
    kept = attempts.kept_on(job)
    if keep:
        pod = pods[0]["metadata"]["name"] if len(pods) == 1 else None
        log = attempts.read_kept(records[0], pod) if records and pod else None
        whole = pod in kept and kept[pod].kept == "final" and log is not None and bool(log.log)
    else:
        whole = len(pods) == 1 and not kept and not records
    if not whole:
        raise BenchError(
            f"the copy {namespace}/{name} is not a job that ended as its original did: pods "
            f"{[p['metadata']['name'] for p in pods]}, kept attempts {sorted(kept)}, "
            f"{len(records)} record"
        )


async def wait_kept(control: Control, namespace: str, jobs: int, alive: Callable[[], None]) -> None:
    deadline = time.monotonic() + wait_seconds(jobs)
    while True:
        kept = sum(fully_kept(job) for job in await control.jobs(namespace))
        if kept >= jobs:
            return
        alive()
        if time.monotonic() > deadline:
            raise BenchError(f"{namespace}: {kept} of {jobs} ended jobs have their attempt kept")
        await asyncio.sleep(KEPT_POLL_SECONDS)


@dataclass(frozen=True)
class Side:
    """One side's scheduler: its client, namespace and processes, and the fake's control port."""

    keep: bool
    namespace: str
    client: SchedulerClient
    control: Control
    processes: dict[str, int]

    @property
    def label(self) -> str:
        return "records on" if self.keep else "records off"


async def run_to_end(side: Side, jobs: int, concurrency: int) -> tuple[Seeding, ApiCalls]:
    """POST `jobs` jobs and wait until they have ended and (records on) are kept: the calls
    the scheduler made meanwhile."""
    progress(f"{side.label}: {jobs} jobs run to their end ...")
    since = await side.control.mark(side.namespace)
    ended = await side.client.seed(jobs, concurrency, wait_seconds(jobs), "Succeeded")
    if side.keep:
        await wait_kept(side.control, side.namespace, ended.listed, side.client.alive)
    await settled(side.processes)
    return ended, await side.control.calls(side.namespace, since)


async def fill_history(side: Side, history_jobs: int) -> tuple[int, int, int, ApiCalls]:
    """Copy one of the ended jobs until the namespace holds `history_jobs`: the jobs the
    scheduler then shows, the copies, the objects of each, and the calls it made meanwhile."""
    jobs = sorted(job["metadata"]["name"] for job in await side.control.jobs(side.namespace))
    names = copy_names(jobs[0], max(0, history_jobs - len(jobs)), set(jobs))
    progress(f"{side.label}: {len(names)} copies of one of them put into the fake ...")
    since = await side.control.mark(side.namespace)
    objects_per_job, shown = 0, 0
    # The Jobs first, then what they own once the scheduler has seen them, as in a cluster,
    # where a Job is there long before its pod ends. One request at least: it also says how many
    # objects a copy has.
    for part, status in (("job", None), ("owned", "Succeeded")):
        for start in range(0, max(len(names), 1), COPIES_PER_REQUEST):
            chunk = names[start : start + COPIES_PER_REQUEST]
            objects_per_job = await side.control.copy(side.namespace, jobs[0], chunk, part)
        shown = await side.client.wait_all(len(jobs) + len(names), wait_seconds(len(names)), status)
    if names:
        await check_copy(side.control, side.namespace, names[-1], side.keep)
    await settled(side.processes)
    calls = await side.control.calls(side.namespace, since)
    return shown, len(names), objects_per_job, calls


async def measure_gets(side: Side, requests: int) -> tuple[Timings, int]:
    """Sequential GETs after a warm-up, and the size of the answer."""
    for _ in range(WARMUP_REQUESTS):
        await side.client.get_jobs()
    gets, body = [], b""
    for _ in range(requests):
        start = time.perf_counter()
        body = await side.client.get_jobs()
        gets.append(time.perf_counter() - start)
    return Timings(f"GET /api/v1/jobs, {side.label}", gets), len(body)


async def measure_side(
    keep: bool, namespace: str, setup: Setup, control: Control, args: argparse.Namespace
) -> RecordsSide:
    label = "records on" if keep else "records off"
    port = free_port()
    argv = [
        *scheduler_argv(
            setup.config, ENDED_JOB, namespace, port, setup.kubeconfig, setup.history_limit
        ),
        "--keep-attempts", "true" if keep else "false",
    ]  # fmt: skip
    with running(
        f"scheduler ({label})",
        [sys.executable, "-m", "scheduler", *argv],
        setup.workdir / f"scheduler-{namespace}.log",
    ) as process:

        def alive() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, 0)
                return
            raise BenchError(f"the scheduler ({label}) is gone")

        async with SchedulerClient.session(f"http://{HOST}:{port}") as http:
            client = SchedulerClient(http, alive)
            processes = {"scheduler": process.pid, "API server": setup.fake_pid}
            side = Side(keep, namespace, client, control, processes)
            await wait_until(client.ready, START_TIMEOUT_SECONDS, f"scheduler ({label})", alive)
            for _ in range(WARMUP_REQUESTS):
                await client.get_jobs()
            await settled(processes)
            rss_idle = rss_mib(process.pid)
            ended, calls = await run_to_end(side, args.ended_jobs, args.seed_concurrency)
            history, copied, objects_per_job, history_calls = await fill_history(
                side, args.history_jobs
            )
            progress(f"{label}: measuring {args.requests} GETs at {history} ended jobs")
            get, body_bytes = await measure_gets(side, args.requests)
            return RecordsSide(
                keep=keep,
                namespace=namespace,
                ended=ended,
                calls=calls,
                history_jobs=history,
                copied=copied,
                objects_per_job=objects_per_job,
                history_calls=history_calls,
                get=get,
                body_bytes=body_bytes,
                rss_idle_mib=rss_idle,
                rss_mib=rss_mib(process.pid),
                peak_rss_mib=peak_rss_mib(process.pid),
            )


async def measure_records(setup: Setup, args: argparse.Namespace) -> Records:
    """Both sides, one after the other (each scheduler is stopped before the next starts)."""
    timeout = aiohttp.ClientTimeout(total=CONTROL_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(setup.control_url, timeout=timeout) as http:
        control = Control(http)
        on, off = [
            await measure_side(keep, namespace, setup, control, args) for keep, namespace in SIDES
        ]
    return Records(on=on, off=off)
