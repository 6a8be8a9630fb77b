"""Local backend figures: POST latency, 1,000 jobs submitted at once, and memory with them all in
the history.

    .venv/bin/python bench/local_bench.py [--jobs 1000] [--max-parallel 4] [--in-flight 50]

It starts `python -m scheduler --backend local` on a free port with a state dir of its own. It
POSTs `--jobs` jobs (each `sh -c "exit 0"`): `--sequential` of them one at a time (while jobs that
fill every slot keep them waiting, so no process start competes), the rest with
`--in-flight` requests at a time, waits until every one has finished, and prints the POST
latency (p50, p95), the errors, the jobs that finished or were lost, and the scheduler's RSS
before and after. Targets (issue 8): POST p50 <= 5 ms; all jobs finish with 0 errors and no job
lost; RSS <= 100 MiB with 1,000 jobs in history.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).parent.parent
CONFIG = """\
apiVersion: radix.equinor.com/v1
kind: RadixApplication
metadata: {name: bench}
spec:
  environments: [{name: dev}]
  jobs:
    - name: compute
      image: busybox:1.36
      schedulerPort: 8000
      payload: {path: /compute/args}
      command: ["sh", "-c", "exit 0"]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _measure(
    url: str, jobs: int, in_flight: int, sequential: int, max_parallel: int, pid: int
) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        rss_idle = _rss_mib(pid)
        # One request at a time: the latency of a POST itself, not of a queue of them, nor of
        # the job's process starting (which jobs filling every slot keep from happening).
        blockers = []
        for _ in range(max_parallel):
            body = {"command": ["sh", "-c", "sleep 3600"]}
            async with session.post(f"{url}/api/v1/jobs", json=body) as response:
                blockers.append((await response.json())["name"])
        single: list[float] = []
        for index in range(sequential):
            started = time.perf_counter()
            async with session.post(f"{url}/api/v1/jobs", json={"jobId": f"s{index}"}) as response:
                await response.read()
            single.append(time.perf_counter() - started)
        single.sort()
        print(
            f"POST /api/v1/jobs, one at a time: p50 {statistics.median(single) * 1000:.2f} ms, "
            f"p95 {single[int(len(single) * 0.95)] * 1000:.2f} ms ({sequential} requests)"
        )
        for name in blockers:
            async with session.post(f"{url}/api/v1/jobs/{name}/stop") as response:
                await response.read()
        burst = jobs
        jobs = burst + sequential + len(blockers)
        latencies: list[float] = []
        errors = 0
        slots = asyncio.Semaphore(in_flight)

        async def post(index: int) -> None:
            nonlocal errors
            async with slots:
                started = time.perf_counter()
                async with session.post(
                    f"{url}/api/v1/jobs", json={"payload": "x" * 100, "jobId": str(index)}
                ) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - started)
                    errors += response.status != 200

        began = time.perf_counter()
        await asyncio.gather(*(post(i) for i in range(burst)))
        submitted = time.perf_counter() - began
        while True:
            async with session.get(f"{url}/api/v1/jobs") as response:
                listed = await response.json()
            done = [j for j in listed if j["status"] in ("Succeeded", "Failed", "Stopped")]
            if len(done) >= jobs or len(listed) < jobs - errors:
                break
            await asyncio.sleep(0.5)
        finished = time.perf_counter() - began
        succeeded = sum(j["status"] == "Succeeded" for j in listed)
        latencies.sort()
        print(
            f"POST /api/v1/jobs p50 {statistics.median(latencies) * 1000:.2f} ms, "
            f"p95 {latencies[int(len(latencies) * 0.95)] * 1000:.2f} ms, "
            f"{errors} errors, {burst} submitted in {submitted:.1f} s"
        )
        print(
            f"jobs listed {len(listed)}, succeeded {succeeded}, lost {jobs - len(listed)}, "
            f"all finished after {finished:.1f} s"
        )
        print(
            f"scheduler RSS idle {rss_idle:.1f} MiB, with {len(listed)} jobs in history "
            f"{_rss_mib(pid):.1f} MiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--max-parallel", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=100, help="POSTs one at a time first")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "radixconfig.yaml"
        config.write_text(CONFIG)
        port = _free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scheduler",
                "--config",
                str(config),
                "--job",
                "compute",
                "--environment",
                "dev",
                "--backend",
                "local",
                "--state-dir",
                f"{tmp}/state",
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--max-parallel",
                str(args.max_parallel),
                "--history-limit",
                str(args.jobs * 2),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
            env={**os.environ},
        )
        try:
            asyncio.run(
                _measure(
                    f"http://127.0.0.1:{port}",
                    args.jobs - args.sequential,
                    args.in_flight,
                    args.sequential,
                    args.max_parallel,
                    process.pid,
                )
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
