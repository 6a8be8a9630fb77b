"""Benchmark of large payloads (issue 23): how long a `POST /api/v1/jobs` with a payload of
1 KiB, 1 MiB and 10 MiB takes, and what the scheduler's memory does while `--concurrent` (20)
POSTs of 10 MiB are in flight at once.

The scheduler runs as a process on 127.0.0.1 with `SCHEDULER_MAX_PAYLOAD_BYTES` at 64 MiB,
against the fake API server in this process (`--backend kubernetes`: each payload above 1 MiB is
split across Secrets, and every pod's init container really runs `scheduler.assemble_payload`)
or on the local backend (`--backend local`: the payload is written to a file).

Each payload is a JSON document of the given size with multi-byte UTF-8 characters in it, sent
as the `payload` string of the request (so the body is about 5 % larger: JSON escapes). Figures:
  - the scheduler's RSS when idle;
  - POST latency p50 / max of `--sequential` (5) POSTs of each size, one after the other;
  - the burst: wall time, latency p50 / max, the scheduler's peak RSS while it lasts (VmRSS
    sampled every 5 ms, and VmHWM), its RSS once all jobs are Running and it is quiet again,
    and the peak over the payload bytes in flight.
Run by hand:
  .venv/bin/python bench/payload_bench.py [--backend kubernetes|local] [--concurrent 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

# Run as a script, this directory is on sys.path: `procs` is bench/procs.py.
from procs import (
    HOST,
    RADIXCONFIG,
    REPO,
    BenchError,
    free_port,
    peak_rss_mib,
    progress,
    rss_mib,
    run_bench,
    running,
    settled,
    until_ready,
)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `tests.fakekube`, in this process

from tests.fakekube import FakeKube

NAMESPACE = "bench-payloads"
KIB, MIB = 1024, 1024 * 1024
MAX_PAYLOAD_BYTES = 64 * MIB
SIZES = (KIB, MIB, 10 * MIB)
BURST_BYTES = 10 * MIB
SAMPLE_SECONDS = 0.005
RUNNING_TIMEOUT_SECONDS = 300.0
IMAGE = "ghcr.io/equinor/job-scheduler:bench"  # the fake runs its `python` init container here


def payload_of(size: int) -> str:
    """A JSON document of `size` bytes of UTF-8, with a 3-byte character every 64 bytes."""
    unit = "x" * 61 + "€"  # 64 bytes
    head, tail = '{"data":"', '"}'
    body = unit * ((size - len(head) - len(tail)) // 64)
    body += "x" * (size - len(head) - len(tail) - len(body.encode()))
    text = head + body + tail
    assert len(text.encode()) == size
    return text


@dataclass(frozen=True)
class Burst:
    wall_seconds: float
    latencies: list[float]
    peak_rss_mib: float  # sampled VmRSS
    high_water_mib: float  # VmHWM at its end
    settled_rss_mib: float
    largest_seconds: float  # one POST of the largest payload, alone
    largest_peak_mib: float


@dataclass(frozen=True)
class Figures:
    backend: str
    idle_rss_mib: float
    sequential: dict[int, list[float]]
    burst: Burst
    concurrent: int


async def post(http: aiohttp.ClientSession, body: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    async with http.post("/api/v1/jobs", data=body, headers=headers) as response:
        text = await response.text()
        if response.status != 200:
            raise BenchError(f"POST /api/v1/jobs: {response.status} {text[:300]}")
    return time.perf_counter() - started, str(json.loads(text)["name"])


async def all_running(http: aiohttp.ClientSession, names: list[str]) -> None:
    deadline = time.monotonic() + RUNNING_TIMEOUT_SECONDS
    while True:
        async with http.get("/api/v1/jobs") as response:
            statuses = {job["name"]: job["status"] for job in await response.json()}
        if all(statuses.get(name) == "Running" for name in names):
            return
        failed = [name for name in names if statuses.get(name) == "Failed"]
        if failed:
            raise BenchError(f"jobs failed: {failed[:3]}")
        if time.monotonic() > deadline:
            raise BenchError("the jobs did not all start")
        await asyncio.sleep(0.5)


async def sampled_peak(pid: int, done: asyncio.Event) -> float:
    peak = 0.0
    while not done.is_set():
        peak = max(peak, rss_mib(pid))
        await asyncio.sleep(SAMPLE_SECONDS)
    return peak


async def largest_post(http: aiohttp.ClientSession, pid: int) -> tuple[float, float]:
    """One POST of a 64 MiB payload, alone: its latency and the scheduler's peak RSS."""
    body = json.dumps({"payload": payload_of(MAX_PAYLOAD_BYTES)}, ensure_ascii=False).encode()
    progress(f"one POST of {MAX_PAYLOAD_BYTES} bytes")
    done = asyncio.Event()
    sampler = asyncio.create_task(sampled_peak(pid, done))
    seconds, name = await post(http, body)
    done.set()
    peak = await sampler
    await all_running(http, [name])
    return seconds, peak


async def measure(args: argparse.Namespace, port: int, pid: int) -> Figures:
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        f"http://{HOST}:{port}", timeout=timeout, connector=connector
    ) as http:
        await until_ready(http)
        await settled({"scheduler": pid})
        idle = rss_mib(pid)
        sequential: dict[int, list[float]] = {}
        names: list[str] = []
        for size in SIZES:
            body = json.dumps({"payload": payload_of(size)}, ensure_ascii=False).encode()
            progress(f"{args.sequential} POSTs of {size} bytes")
            for _ in range(args.sequential):
                seconds, name = await post(http, body)
                sequential.setdefault(size, []).append(seconds)
                names.append(name)
        await all_running(http, names)
        await settled({"scheduler": pid})

        body = json.dumps({"payload": payload_of(BURST_BYTES)}, ensure_ascii=False).encode()
        progress(f"{args.concurrent} POSTs of {BURST_BYTES} bytes at once")
        done = asyncio.Event()
        sampler = asyncio.create_task(sampled_peak(pid, done))
        started = time.perf_counter()
        answers = await asyncio.gather(*(post(http, body) for _ in range(args.concurrent)))
        wall = time.perf_counter() - started
        done.set()
        peak = await sampler
        high_water = peak_rss_mib(pid)
        await all_running(http, [name for _, name in answers])
        await settled({"scheduler": pid})
        settled_rss = rss_mib(pid)
        largest = await largest_post(http, pid)
        burst = Burst(
            wall_seconds=wall,
            latencies=[seconds for seconds, _ in answers],
            peak_rss_mib=peak,
            high_water_mib=high_water,
            settled_rss_mib=settled_rss,
            largest_seconds=largest[0],
            largest_peak_mib=largest[1],
        )
    return Figures(args.backend, idle, sequential, burst, args.concurrent)


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} / {max(values) * 1000:.0f} ms"


def render(f: Figures) -> str:
    in_flight = f.concurrent * BURST_BYTES / MIB
    rows = [
        f"Large payloads, {f.backend} backend (SCHEDULER_MAX_PAYLOAD_BYTES=64 MiB)",
        "",
        "| measure | figure |",
        "|---|---|",
        f"| scheduler RSS, idle | {f.idle_rss_mib:.1f} MiB |",
        *(
            f"| POST p50 / max, {size // KIB:,} KiB payload, one at a time | {_ms(seconds)} |"
            for size, seconds in f.sequential.items()
        ),
        f"| {f.concurrent} POSTs of 10 MiB at once: wall | {f.burst.wall_seconds:.2f} s |",
        f"| ... their latency p50 / max | {_ms(f.burst.latencies)} |",
        f"| ... scheduler peak RSS (sampled; VmHWM) | {f.burst.peak_rss_mib:.1f} MiB; "
        f"{f.burst.high_water_mib:.1f} MiB |",
        f"| ... peak above idle, per MiB of payload in flight ({in_flight:.0f} MiB) | "
        f"{(f.burst.peak_rss_mib - f.idle_rss_mib) / in_flight:.2f} |",
        f"| ... RSS once they run and the scheduler is quiet | {f.burst.settled_rss_mib:.1f} MiB |",
        f"| one POST of 64 MiB, alone: latency; scheduler peak RSS | "
        f"{f.burst.largest_seconds * 1000:.0f} ms; {f.burst.largest_peak_mib:.1f} MiB |",
    ]
    return "\n".join(rows)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("kubernetes", "local"), default="kubernetes")
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--sequential", type=int, default=5)
    args = parser.parse_args(argv)
    if not 1 <= args.concurrent <= 100 or not 1 <= args.sequential <= 100:
        parser.error("--concurrent 1..100, --sequential 1..100")
    return args


def scheduler_argv(config: Path, port: int, backend: str) -> list[str]:
    return [
        sys.executable, "-m", "scheduler", "--config", str(config), "--job", "compute",
        "--environment", "dev", "--port", str(port), "--host", HOST,
        "--max-payload-bytes", str(MAX_PAYLOAD_BYTES), "--log-level", "WARNING",
        "--backend", backend,
    ]  # fmt: skip


async def run(args: argparse.Namespace, workdir: Path) -> Figures:
    config = workdir / "radixconfig.yaml"
    config.write_text(RADIXCONFIG, encoding="utf-8")
    port = free_port()
    argv = scheduler_argv(config, port, args.backend)
    if args.backend == "local":
        # Every job sleeps: all of them run at once, as pods would.
        argv += ["--state-dir", str(workdir / "state"), "--max-parallel", "200"]
        with running("scheduler", argv, workdir / "scheduler.log") as scheduler:
            return await measure(args, port, scheduler.pid)
    async with FakeKube() as fake:
        kubeconfig = fake.write_kubeconfig(workdir / "kubeconfig")
        argv += ["--namespace", NAMESPACE, "--kubeconfig", str(kubeconfig), "--image", IMAGE]
        with running("scheduler", argv, workdir / "scheduler.log") as scheduler:
            return await measure(args, port, scheduler.pid)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def measured(workdir: Path) -> str:
        return render(await run(args, workdir))

    return run_bench("payload bench", measured)


if __name__ == "__main__":
    sys.exit(main())
