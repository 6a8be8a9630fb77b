"""Benchmark of `GET /api/v1/events`: what N subscribers cost the scheduler, and how soon a status
change reaches all of them.

Starts the fake API server and the scheduler as two processes on 127.0.0.1 (as `bench.py` does)
and watches the fake's Jobs and Pods itself. Then, with one subscriber and again with N (one
aiohttp session, N streams), it POSTs `--jobs` jobs one after the other and measures:
  status change -> Running Update at each subscriber: from the moment this script's own watch
      sees the job become ready in the API server (the change the scheduler turns into Running)
      to the Update's arrival at each subscriber;
  POST sent -> Create at each subscriber: an upper bound that includes the creates themselves;
  fan-out: from an event's first arrival to its arrival at each subscriber;
  the scheduler's RSS (VmRSS) before the streams open, with them open, and after the events.
Every subscriber must receive every event, in the same order. One process reads all N streams,
so the client's own reading is in the figures.
Run by hand:
  .venv/bin/python bench/events_bench.py [--subscribers 1000] [--jobs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from procs import until_ready

# Run as a script, `bench` is this directory's bench.py: its process and RSS helpers.
from bench import (
    HOST,
    RADIXCONFIG,
    BenchError,
    free_port,
    rss_mib,
    running,
    wait_for_kubeconfig,
)

NAMESPACE = "bench-events"
PAYLOAD = '{"x": 10, "y": 20}'
RSS_TARGET_MIB = 50.0  # extra RSS of 1,000 subscribers
P95_TARGET_MS = 100.0  # a change reaching all of them
OPEN_CONCURRENCY = 100  # streams opened at once: the server's listen backlog is 128
EVENT_TIMEOUT_SECONDS = 60.0
SETTLE_SECONDS = 1.0  # after the streams open, before RSS is read: let allocations settle
WATCH_RETRY_SECONDS = 0.1


@dataclass
class Deliveries:
    """When each event reached each subscriber, and what the first arrival said it was."""

    subscribers: int
    arrivals: dict[int, list[float]] = field(default_factory=dict)
    about: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # event, job, status
    order: list[list[int]] = field(default_factory=list)  # each subscriber's event ids
    # (event, job) and (event, job, status) of the events every subscriber has, with their ids
    complete: dict[tuple[str, ...], int] = field(default_factory=dict)
    waiting: dict[tuple[str, ...], asyncio.Future[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.order = [[] for _ in range(self.subscribers)]

    def record(self, subscriber: int, frame: bytes, now: float) -> None:
        event_id = int(frame[4 : frame.index(b"\n")])  # frames start with `id: N`
        self.order[subscriber].append(event_id)
        times = self.arrivals.setdefault(event_id, [])
        times.append(now)
        if len(times) == 1:
            lines = frame.split(b"\n")
            body = json.loads(lines[2].removeprefix(b"data: "))
            job = body["jobStatuses"][0]
            self.about[event_id] = (body["event"], job["name"], job["status"])
        if len(times) == self.subscribers:
            about = self.about[event_id]
            for key in (about[:2], about):
                self.complete.setdefault(key, event_id)
                waiter = self.waiting.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(event_id)

    def wait(self, *key: str) -> asyncio.Future[int]:
        """The id of the first event (event, job[, status]) once every subscriber has it."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if key in self.complete:
            future.set_result(self.complete[key])
        else:
            self.waiting[key] = future
        return future


async def reading(subscriber: int, response: aiohttp.ClientResponse, seen: Deliveries) -> None:
    # Whatever has arrived, split into frames: cheaper than a read per frame, so the client's
    # own work weighs less in the figures.
    rest = b""
    async for chunk in response.content.iter_any():
        now = time.perf_counter()
        *frames, rest = (rest + chunk).split(b"\n\n")
        for frame in frames:
            if frame.startswith(b"id: "):  # not a heartbeat comment
                seen.record(subscriber, frame, now)


@dataclass(frozen=True)
class ApiServer:
    url: str
    token: str

    @classmethod
    def of(cls, kubeconfig: Path) -> ApiServer:
        config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
        return cls(config["clusters"][0]["cluster"]["server"], config["users"][0]["user"]["token"])


async def watching_readiness(server: ApiServer, ready_at: dict[str, float]) -> None:
    """Record when the API server first reports each job ready (its Job or one of its Pods)."""
    headers = {"Authorization": f"Bearer {server.token}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(server.url, headers=headers, timeout=timeout) as http:
        await asyncio.gather(
            _watching(http, f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", _ready_job, ready_at),
            _watching(http, f"/api/v1/namespaces/{NAMESPACE}/pods", _ready_pod, ready_at),
        )


def _ready_job(job: dict[str, Any]) -> str | None:
    ready = (job.get("status") or {}).get("ready") or 0
    return str(job["metadata"]["name"]) if ready > 0 else None


def _ready_pod(pod: dict[str, Any]) -> str | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
        return (pod["metadata"].get("labels") or {}).get("job-name")
    return None


async def _watching(
    http: aiohttp.ClientSession,
    path: str,
    ready: Callable[[dict[str, Any]], str | None],
    ready_at: dict[str, float],
) -> None:
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(path, params={"watch": "true"}) as response:
                async for line in response.content:
                    now = time.perf_counter()
                    name = ready(json.loads(line)["object"])
                    if name is not None:
                        ready_at.setdefault(name, now)
        await asyncio.sleep(WATCH_RETRY_SECONDS)


@dataclass(frozen=True)
class Phase:
    subscribers: int
    rss_before_mib: float
    rss_open_mib: float
    rss_after_mib: float
    change_to_running: list[float]  # seconds, one per delivery of a Running Update
    post_to_create: list[float]  # seconds, one per delivery of a Create
    fan_out: list[float]  # seconds, one per delivery of any event
    events: int
    scheduler_cpu_seconds: float  # user + system, over the POSTs and their events
    client_cpu_seconds: float

    @property
    def extra_rss_mib(self) -> float:
        return max(self.rss_open_mib, self.rss_after_mib) - self.rss_before_mib


def cpu_seconds(pid: int) -> float:
    """A process's user + system time, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile_ms(seconds: list[float], fraction: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1000


async def post_job(http: aiohttp.ClientSession) -> str:
    async with http.post("/api/v1/jobs", data=json.dumps({"payload": PAYLOAD})) as response:
        if response.status != 200:
            raise BenchError(f"POST /api/v1/jobs: {response.status} {await response.text()}")
        name: str = (await response.json())["name"]
        return name


async def delivered(future: asyncio.Future[int], what: str) -> int:
    try:
        async with asyncio.timeout(EVENT_TIMEOUT_SECONDS):
            return await future
    except TimeoutError:
        raise BenchError(f"{what}: not delivered to every subscriber in time") from None


@dataclass(frozen=True)
class Scheduler:
    http: aiohttp.ClientSession
    base_url: str
    pid: int
    ready_at: dict[str, float]  # job name -> when the API server first reported it ready


async def phase(scheduler: Scheduler, subscribers: int, jobs: int) -> Phase:
    rss_before = rss_mib(scheduler.pid)
    seen = Deliveries(subscribers)
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    # Streams stay open for the whole phase: no timeout, no connection limit.
    streams = aiohttp.ClientSession(
        scheduler.base_url,
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    )

    async def opening() -> aiohttp.ClientResponse:
        async with gate:
            response = await streams.get("/api/v1/events")
            if response.status != 200:
                raise BenchError(f"GET /api/v1/events: {response.status}")
            return response

    async with streams:
        # The scheduler has subscribed a stream once its headers are back.
        responses = await asyncio.gather(*(opening() for _ in range(subscribers)))
        readers = [
            asyncio.create_task(reading(i, response, seen)) for i, response in enumerate(responses)
        ]
        await asyncio.sleep(SETTLE_SECONDS)
        rss_open = rss_mib(scheduler.pid)
        change_to_running: list[float] = []
        post_to_create: list[float] = []
        cpu_before, own_before = cpu_seconds(scheduler.pid), own_cpu_seconds()
        for _ in range(jobs):
            sent = time.perf_counter()
            name = await post_job(scheduler.http)
            created = seen.wait("Create", name)
            running = seen.wait("Update", name, "Running")
            create_id = await delivered(created, f"the Create of {name}")
            post_to_create += [arrival - sent for arrival in seen.arrivals[create_id]]
            running_id = await delivered(running, f"the Running Update of {name}")
            ready = scheduler.ready_at.get(name)
            if ready is None:
                raise BenchError(f"the API server's watch never showed {name} ready")
            change_to_running += [arrival - ready for arrival in seen.arrivals[running_id]]
        cpu = cpu_seconds(scheduler.pid) - cpu_before
        own_cpu = own_cpu_seconds() - own_before
        rss_after = rss_mib(scheduler.pid)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        for response in responses:
            response.close()
    if any(order != seen.order[0] for order in seen.order):
        raise BenchError("the subscribers did not all receive the same events in the same order")
    fan_out = [t - times[0] for times in seen.arrivals.values() for t in times]
    return Phase(
        subscribers,
        rss_before,
        rss_open,
        rss_after,
        change_to_running,
        post_to_create,
        fan_out,
        len(seen.arrivals),
        cpu,
        own_cpu,
    )


async def measure(args: argparse.Namespace, port: int, pid: int, server: ApiServer) -> list[Phase]:
    base_url = f"http://{HOST}:{port}"
    ready_at: dict[str, float] = {}
    watching = asyncio.create_task(watching_readiness(server, ready_at))
    try:
        async with aiohttp.ClientSession(base_url) as http:
            await until_ready(http)
            scheduler = Scheduler(http, base_url, pid, ready_at)
            # Warm-up: the first job's events take the code paths once, with one subscriber.
            await phase(scheduler, 1, 1)
            phases = [await phase(scheduler, 1, args.jobs)]
            print(f"opening {args.subscribers} streams ...", file=sys.stderr)
            phases.append(await phase(scheduler, args.subscribers, args.jobs))
            return phases
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


def _verdict(label: str, value: float, target: float) -> str:
    verdict = "MET" if value <= target else "MISSED"
    return f"{label:<57}{value:>9.1f}  target <= {target:.0f}: {verdict}"


def render(phases: list[Phase], jobs: int) -> str:
    lines = [
        f"job-scheduler event stream benchmark: {jobs} sequential POSTs per phase (each: a Create "
        f"and a Running Update), {os.cpu_count()} CPUs, fake API server, scheduler and client "
        f"on {HOST}",
        "",
        f"{'subscribers':>11}  {'measure':<44}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'n':>8}",
    ]
    for p in phases:
        for label, seconds in (
            ("status change -> Running at each subscriber", p.change_to_running),
            ("POST sent -> Create at each subscriber", p.post_to_create),
            ("first arrival -> arrival at each (fan-out)", p.fan_out),
        ):
            lines.append(
                f"{p.subscribers:>11}  {label:<44}{percentile_ms(seconds, 0.5):>9.2f}"
                f"{percentile_ms(seconds, 0.95):>9.2f}{max(seconds) * 1000:>9.2f}{len(seconds):>8}"
            )
    lines += [
        "",
        f"{'subscribers':>11}  {'scheduler RSS MiB':<44}{'before':>9}{'open':>9}{'after':>9}",
    ]
    for p in phases:
        lines.append(
            f"{p.subscribers:>11}  {'':<44}{p.rss_before_mib:>9.1f}{p.rss_open_mib:>9.1f}"
            f"{p.rss_after_mib:>9.1f}"
        )
    lines += [
        "",
        f"{'subscribers':>11}  {'CPU ms per event (user + system)':<44}{'events':>9}"
        f"{'sched.':>9}{'client':>9}",
    ]
    for p in phases:
        lines.append(
            f"{p.subscribers:>11}  {'':<44}{p.events:>9}"
            f"{p.scheduler_cpu_seconds / p.events * 1000:>9.2f}"
            f"{p.client_cpu_seconds / p.events * 1000:>9.2f}"
        )
    many = phases[-1]
    lines += [
        "",
        _verdict(
            f"{many.subscribers} subscribers: extra RSS MiB", many.extra_rss_mib, RSS_TARGET_MIB
        ),
        _verdict(
            f"{many.subscribers} subscribers: status change -> Running p95 ms",
            percentile_ms(many.change_to_running, 0.95),
            P95_TARGET_MS,
        ),
        _verdict(
            f"{many.subscribers} subscribers: fan-out p95 ms",
            percentile_ms(many.fan_out, 0.95),
            P95_TARGET_MS,
        ),
    ]
    return "\n".join(lines)


def raise_open_files_limit(needed: int) -> None:
    """The client holds one socket per stream, and so does the scheduler (which inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raise BenchError(f"open files limit {soft} is below the {needed} needed; raise ulimit -n")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=1000, help="streams (default 1000)")
    parser.add_argument("--jobs", type=int, default=50, help="POSTs per phase (default 50)")
    args = parser.parse_args(argv)
    if not 1 <= args.subscribers <= 10000 or not 1 <= args.jobs <= 1000:
        parser.error("--subscribers must be between 1 and 10000, --jobs between 1 and 1000")
    return args


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # tear down as on Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        raise_open_files_limit(args.subscribers + 256)
        with tempfile.TemporaryDirectory(prefix="events-bench-") as tmp:
            workdir = Path(tmp)
            kubeconfig, config = workdir / "kubeconfig", workdir / "radixconfig.yaml"
            config.write_text(RADIXCONFIG, encoding="utf-8")
            port = free_port()
            python = sys.executable
            with contextlib.ExitStack() as processes:
                fake = processes.enter_context(
                    running(
                        "fake API server",
                        [python, "-m", "tests.fakekube", "--port", "0", "--host", HOST,
                         "--kubeconfig", str(kubeconfig)],
                        workdir / "fake.log",
                    )
                )  # fmt: skip
                wait_for_kubeconfig(kubeconfig, fake)
                scheduler = processes.enter_context(
                    running(
                        "scheduler",
                        [python, "-m", "scheduler", "--config", str(config), "--job", "compute",
                         "--environment", "dev", "--namespace", NAMESPACE, "--port", str(port),
                         "--host", HOST, "--kubeconfig", str(kubeconfig),
                         "--history-limit", "100000", "--log-level", "WARNING"],
                        workdir / "scheduler.log",
                    )
                )  # fmt: skip
                server = ApiServer.of(kubeconfig)
                phases = asyncio.run(measure(args, port, scheduler.pid, server))
    except BenchError as exc:
        print(f"events bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("events bench: interrupted", file=sys.stderr)
        return 130
    print(render(phases, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
