"""Benchmark of `GET /api/v1/jobs/{name}?wait=`: what N clients waiting on the server cost the
scheduler (memory, CPU, requests to the API server), how soon leaving clients free their
waiters, and how soon the waiters answer once their jobs end.

Runs the fake API server (`tests.fakekube`) in this process, so that its audit log counts the
scheduler's calls, and the scheduler as a process on 127.0.0.1 (as `bench.py` does). After
`--jobs` jobs are Running (`sleep 100000`), two windows of `--hold` seconds each:
  idle:    no client waits;
  waiting: `--clients` clients each hold `GET /api/v1/jobs/{name}?wait=300` (client i on job
           i mod jobs), all counted by the scheduler's `job_scheduler_waiting_requests`.
Each window gives the scheduler's RSS (VmRSS) at its end, its CPU share, and the calls the API
server got from it, by verb and resource. Then half the clients leave (their connections close):
the time until the gauge shows only the other half; then one `POST /api/v1/jobs/stop` ends every
job: the time from it until each remaining client has its answer.
Run by hand:
  .venv/bin/python bench/wait_bench.py [--clients 1000] [--jobs 100] [--hold 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

# Run as a script, this directory is on sys.path: `procs` is bench/procs.py.
from procs import (
    HOST,
    RADIXCONFIG,
    REPO,
    START_TIMEOUT_SECONDS,
    BenchError,
    cpu_seconds,
    free_port,
    rss_mib,
    run_bench,
    running,
    until_ready,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `tests.fakekube`, in this process

from tests.fakekube import FakeKube

NAMESPACE = "bench-wait"
WAIT_SECONDS = 300  # the scheduler's default limit: what a client that waits long asks
OPEN_SLICE = 100  # waits opened at once: the server's listen backlog is 128
SETTLE_SECONDS = 1.0  # after the waits open, before a window starts: let allocations settle
ANSWER_TIMEOUT_SECONDS = 120.0
# Targets: what N waiting clients may cost (the event stream's 1,000 subscribers may cost 50 MiB).
RSS_TARGET_MIB_PER_1000 = 50.0
GAUGE = re.compile(r"^job_scheduler_waiting_requests (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Window:
    """One hold: the scheduler's RSS at its end, CPU over it, the API server's calls from it."""

    seconds: float
    rss_mib: float
    cpu_seconds: float
    calls: Counter[tuple[str, str]]

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / self.seconds


@dataclass(frozen=True)
class Figures:
    clients: int
    jobs: int
    idle: Window
    waiting: Window
    opened_seconds: float  # until every client's wait was counted
    freed_seconds: float  # half the clients left -> the gauge shows only the rest
    answered: list[float]  # stop sent -> each remaining client's answer, seconds
    statuses: Counter[str]  # what the remaining clients were answered
    rss_after_mib: float


async def gauge(http: aiohttp.ClientSession) -> int:
    async with http.get("/metrics") as response:
        found = GAUGE.search(await response.text())
    if found is None:
        raise BenchError("/metrics has no job_scheduler_waiting_requests")
    return int(float(found.group(1)))


async def until_gauge(http: aiohttp.ClientSession, wanted: int, within_seconds: float) -> float:
    """Seconds until the gauge shows `wanted`."""
    started = time.perf_counter()
    while await gauge(http) != wanted:
        if time.perf_counter() - started > within_seconds:
            raise BenchError(f"the gauge did not show {wanted} waiting in {within_seconds} s")
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def hold(fake: FakeKube, pid: int, seconds: float) -> Window:
    since, cpu = len(fake.audit), cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - started
    calls = Counter(
        (entry.verb, "/".join(filter(None, (entry.api_group, entry.resource))))
        for entry in fake.audit[since:]
        if entry.namespace == NAMESPACE
    )
    return Window(elapsed, rss_mib(pid), cpu_seconds(pid) - cpu, calls)


async def seed(http: aiohttp.ClientSession, jobs: int) -> list[str]:
    """`jobs` jobs, once all are Running."""

    async def post() -> str:
        async with http.post("/api/v1/jobs", json={"payload": "{}"}) as response:
            if response.status != 200:
                raise BenchError(f"POST /api/v1/jobs: {response.status} {await response.text()}")
            name: str = (await response.json())["name"]
            return name

    names = await asyncio.gather(*(post() for _ in range(jobs)))
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        async with http.get("/api/v1/jobs") as response:
            statuses = {job["name"]: job["status"] for job in await response.json()}
        if all(statuses.get(name) == "Running" for name in names):
            return names
        if time.monotonic() > deadline:
            raise BenchError("the jobs did not all start")
        await asyncio.sleep(0.5)


async def waiting(session: aiohttp.ClientSession, name: str) -> tuple[float, str]:
    """When the answer came (perf_counter) and the job's status in it."""
    async with session.get(f"/api/v1/jobs/{name}", params={"wait": str(WAIT_SECONDS)}) as answer:
        if answer.status != 200:
            raise BenchError(f"GET ?wait=: {answer.status} {await answer.text()}")
        status: str = (await answer.json())["status"]
        return time.perf_counter(), status


async def measure(args: argparse.Namespace, fake: FakeKube, port: int, pid: int) -> Figures:
    base_url = f"http://{HOST}:{port}"
    # The waits stay open for as long as they take: no timeout, no connection limit.
    clients = aiohttp.ClientSession(
        base_url,
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )
    async with aiohttp.ClientSession(base_url) as http, clients:
        await until_ready(http)
        names = await seed(http, args.jobs)
        await asyncio.sleep(SETTLE_SECONDS)
        idle = await hold(fake, pid, args.hold)

        started = time.perf_counter()
        waits: list[asyncio.Task[tuple[float, str]]] = []
        for first in range(0, args.clients, OPEN_SLICE):
            count = min(OPEN_SLICE, args.clients - first)
            waits += [
                asyncio.create_task(waiting(clients, names[i % len(names)]))
                for i in range(first, first + count)
            ]
            await until_gauge(http, len(waits), ANSWER_TIMEOUT_SECONDS)
        opened = time.perf_counter() - started
        await asyncio.sleep(SETTLE_SECONDS)
        held = await hold(fake, pid, args.hold)

        leaving, staying = waits[: len(waits) // 2], waits[len(waits) // 2 :]
        for task in leaving:
            task.cancel()  # the client gives up: its connection closes
        await asyncio.gather(*leaving, return_exceptions=True)
        freed = await until_gauge(http, len(staying), ANSWER_TIMEOUT_SECONDS)

        stop_sent = time.perf_counter()
        async with http.post("/api/v1/jobs/stop") as stopped:
            if stopped.status != 200:
                raise BenchError(f"POST /api/v1/jobs/stop: {stopped.status}")
        async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
            answers = await asyncio.gather(*staying)
        await until_gauge(http, 0, ANSWER_TIMEOUT_SECONDS)
        return Figures(
            clients=args.clients,
            jobs=len(names),
            idle=idle,
            waiting=held,
            opened_seconds=opened,
            freed_seconds=freed,
            answered=[at - stop_sent for at, _ in answers],
            statuses=Counter(status for _, status in answers),
            rss_after_mib=rss_mib(pid),
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _answer_ms(seconds: list[float]) -> list[tuple[str, float]]:
    return [
        ("first", min(seconds) * 1000),
        ("p50", percentile(seconds, 0.5) * 1000),
        ("p95", percentile(seconds, 0.95) * 1000),
        ("max", max(seconds) * 1000),
    ]


def _calls(window: Window) -> str:
    listed = ", ".join(
        f"{verb} {resource} {n}" for (verb, resource), n in sorted(window.calls.items())
    )
    return f"{sum(window.calls.values())} ({listed or 'none'})"


def caused_calls(figures: Figures) -> int:
    """Calls in the waiting window beyond what the scheduler makes on its own: any call but a
    LIST, and LISTs beyond the idle window's plus one round of the periodic ones (the recovery
    sweep's two, the key expiry's, the usage sampler's: a window may hold one round more)."""
    idle, held = figures.idle.calls, figures.waiting.calls
    others = sum(n for (verb, _), n in held.items() if verb != "list")
    lists = sum(n for (verb, _), n in held.items() if verb == "list")
    idle_lists = sum(n for (verb, _), n in idle.items() if verb == "list")
    return others + max(0, lists - idle_lists - 4)


def render(f: Figures) -> str:
    extra = f.waiting.rss_mib - f.idle.rss_mib
    target = RSS_TARGET_MIB_PER_1000 * f.clients / 1000
    caused = caused_calls(f)
    lines = [
        f"job-scheduler wait benchmark: {f.clients} clients waiting (?wait={WAIT_SECONDS}) on "
        f"{f.jobs} Running jobs, {os.cpu_count()} CPUs, fake API server (in the bench's process) "
        f"and scheduler on {HOST}",
        "",
        f"{'window':<8}{'seconds':>9}{'RSS MiB':>9}{'CPU %':>7}  calls to the API server",
        *(
            f"{name:<8}{w.seconds:>9.1f}{w.rss_mib:>9.1f}{w.cpu_share * 100:>7.1f}  {_calls(w)}"
            for name, w in (("idle", f.idle), ("waiting", f.waiting))
        ),
        "",
        f"opened {f.clients} waits in {f.opened_seconds:.2f} s",
        f"half the clients left: the gauge showed the other {f.clients - f.clients // 2} after "
        f"{f.freed_seconds:.2f} s",
        "one POST /api/v1/jobs/stop -> each remaining client's answer: "
        + ", ".join(f"{label} {ms:.0f} ms" for label, ms in _answer_ms(f.answered))
        + "; answered "
        + ", ".join(f"{status} {n}" for status, n in sorted(f.statuses.items())),
        f"RSS after every wait ended: {f.rss_after_mib:.1f} MiB",
        "",
        f"{'extra RSS while they wait, MiB':<52}{extra:>8.1f}  target <= {target:.0f}: "
        f"{'MET' if extra <= target else 'NOT MET'}",
        f"{'the same per waiting client, KiB':<52}{extra * 1024 / f.clients:>8.1f}",
        f"{'calls to the API server the waits caused':<52}{caused:>8}  target 0: "
        f"{'MET' if caused == 0 else 'NOT MET'}",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1000, help="waiting clients (1000)")
    parser.add_argument("--jobs", type=int, default=100, help="jobs they wait on (100)")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds per window (10)")
    args = parser.parse_args(argv)
    if not 2 <= args.clients <= 10000 or not 1 <= args.jobs <= 1000 or not 1 <= args.hold <= 120:
        parser.error("--clients 2..10000, --jobs 1..1000, --hold 1..120")
    return args


async def run(args: argparse.Namespace, workdir: Path) -> Figures:
    config = workdir / "radixconfig.yaml"
    config.write_text(RADIXCONFIG, encoding="utf-8")
    port = free_port()
    async with FakeKube() as fake:
        kubeconfig = fake.write_kubeconfig(workdir / "kubeconfig")
        argv = [
            sys.executable, "-m", "scheduler", "--config", str(config), "--job", "compute",
            "--environment", "dev", "--namespace", NAMESPACE, "--port", str(port),
            "--host", HOST, "--kubeconfig", str(kubeconfig), "--history-limit", "100000",
            "--log-level", "WARNING",
        ]  # fmt: skip
        with running("scheduler", argv, workdir / "scheduler.log") as scheduler:
            return await measure(args, fake, port, scheduler.pid)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def measured(workdir: Path) -> str:
        return render(await run(args, workdir))

    return run_bench("wait bench", measured)


if __name__ == "__main__":
    sys.exit(main())
