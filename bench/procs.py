"""The benchmarks' processes and what they read from the system: free ports, a child process
torn down on the way out, the fake API server's kubeconfig, a process's RSS and CPU time (and
waiting until processes are quiet), the chart's limit.

`bench.py` re-exports these names (`events_bench.py` imports them from there).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
CHART_VALUES = REPO / "helm" / "job-scheduler" / "values.yaml"

# Processes are quiet when each uses under this share of a CPU over one sample; waited for at
# most the timeout.
QUIET_CPU_SHARE, QUIET_SAMPLE_SECONDS, QUIET_TIMEOUT_SECONDS = 0.05, 0.5, 60.0
PEAK_SAMPLE_SECONDS = 0.05  # how often the RSS is read where the peak cannot be reset
# The job `ended` prints this many lines and exits 0: a small log for its attempt's record.
ENDED_LOG_LINES = 10
_ENDED_SCRIPT = "; ".join(
    f"echo step {step} of {ENDED_LOG_LINES}: {step * 1000} items processed"
    for step in range(1, ENDED_LOG_LINES + 1)
)

# `compute`: jobs that outlive the benchmark, they stay Running, so nothing is pruned or changes
# under us. `ended`: jobs that run to their end (the attempt records' figures, attempt_records.py).
RADIXCONFIG = f"""\
apiVersion: radix.equinor.com/v1
kind: RadixApplication
metadata:
  name: myapp
spec:
  environments:
    - name: dev
  jobs:
    - name: compute
      image: busybox:1.36
      schedulerPort: 8000
      runAsUser: 1000
      payload:
        path: /compute/args
      ports:
        - name: http
          port: 3000
      command: ["sh", "-c", "sleep 100000"]
    - name: ended
      image: busybox:1.36
      schedulerPort: 8000
      runAsUser: 1000
      payload:
        path: /ended/args
      ports:
        - name: http
          port: 3000
      command: ["sh", "-c", "{_ENDED_SCRIPT}; exit 0"]
"""

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MIB_PER_UNIT = {
    None: 1 / 2**20, "Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0, "Ti": 1024.0**2,
    "k": 1e3 / 2**20, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "T": 1e12 / 2**20,
}  # fmt: skip


class BenchError(Exception):
    """The benchmark could not run; the message says which step failed."""


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def scheduler_argv(
    config: Path, job: str, namespace: str, port: int, kubeconfig: Path, history_limit: int
) -> list[str]:
    """`python -m scheduler`'s arguments for a benchmark's scheduler on this machine."""
    return [
        "--config", str(config), "--job", job, "--environment", "dev",
        "--namespace", namespace, "--port", str(port), "--host", HOST,
        "--kubeconfig", str(kubeconfig), "--history-limit", str(history_limit),
        "--log-level", "WARNING",
    ]  # fmt: skip


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running(name: str, argv: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in its own session (Ctrl-C reaches only us); stop it on the way out."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(argv), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.returncode not in (0, -signal.SIGTERM):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"{name} exited with {process.returncode}; log tail:", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)


def wait_for_kubeconfig(path: Path, fake: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if fake.poll() is not None:
            raise BenchError(f"the fake API server exited with {fake.returncode}")
        with contextlib.suppress(OSError, yaml.YAMLError):
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(document, dict) and document.get("clusters"):
                return
        time.sleep(0.05)
    raise BenchError(f"the fake API server wrote no kubeconfig to {path}")


def _status_mib(pid: int, field: str) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        raise BenchError(f"cannot read the status of process {pid}: {exc}") from exc
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no {field} for process {pid}")


def rss_mib(pid: int) -> float:
    """The process's resident memory now (`VmRSS`)."""
    return _status_mib(pid, "VmRSS")


def peak_rss_mib(pid: int) -> float:
    """The most resident memory the process has had (`VmHWM`)."""
    return _status_mib(pid, "VmHWM")


def reset_peak_rss(pid: int) -> bool:
    """Set the process's `VmHWM` to its `VmRSS` now; False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextlib.asynccontextmanager
async def peak_rss_during(pid: int) -> AsyncIterator[list[float]]:
    """The process's peak resident memory while the block runs, in the list yielded once it
    ends: `VmHWM`, reset before (writing 5 to /proc/PID/clear_refs); where that is refused,
    the most `VmRSS` sampled every PEAK_SAMPLE_SECONDS."""
    peak: list[float] = []
    reset = reset_peak_rss(pid)
    sampled = [rss_mib(pid)]

    async def sample() -> None:
        while True:
            await asyncio.sleep(PEAK_SAMPLE_SECONDS)
            sampled.append(rss_mib(pid))

    sampler = None if reset else asyncio.create_task(sample())
    try:
        yield peak
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    peak.append(peak_rss_mib(pid) if reset else max(sampled))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used (`/proc/PID/stat`)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError as exc:
        raise BenchError(f"cannot read the CPU time of process {pid}: {exc}") from exc
    # utime and stime are the 14th and 15th fields; the split starts at the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def settled(processes: dict[str, int]) -> None:
    """Wait until every process is quiet (see QUIET_CPU_SHARE), at most QUIET_TIMEOUT_SECONDS."""
    deadline = time.monotonic() + QUIET_TIMEOUT_SECONDS
    spent = {name: cpu_seconds(pid) for name, pid in processes.items()}
    while time.monotonic() < deadline:
        await asyncio.sleep(QUIET_SAMPLE_SECONDS)
        now = {name: cpu_seconds(pid) for name, pid in processes.items()}
        if all(now[name] - spent[name] < QUIET_CPU_SHARE * QUIET_SAMPLE_SECONDS for name in now):
            return
        spent = now


def quantity_mib(quantity: str) -> float:
    """A Kubernetes memory quantity ("256Mi", "1G", "268435456") in MiB."""
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        raise BenchError(f"not a memory quantity: {quantity!r}")
    return float(match.group(1)) * _MIB_PER_UNIT[match.group(2)]


def chart_memory_limit() -> tuple[str, float]:
    """The Helm chart's `resources.limits.memory`, as written and in MiB."""
    try:
        values = yaml.safe_load(CHART_VALUES.read_text(encoding="utf-8"))
        quantity = str(values["resources"]["limits"]["memory"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise BenchError(f"{CHART_VALUES}: no resources.limits.memory: {exc}") from exc
    return quantity, quantity_mib(quantity)


async def until_ready(http: aiohttp.ClientSession) -> None:
    """Until the scheduler behind `http` answers `/readyz` with 200."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get("/readyz") as response:
                if response.status == 200:
                    return
        if time.monotonic() > deadline:
            raise BenchError("the scheduler did not become ready")
        await asyncio.sleep(0.1)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # tear down as on Ctrl-C


def run_bench(name: str, measure: Callable[[Path], Coroutine[Any, Any, str]]) -> int:
    """A small benchmark's `main`: `measure` runs in a temporary working directory and gives
    its report; a BenchError or an interruption is one line on stderr and an exit code."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{name.replace(' ', '-')}-") as tmp:
            report = asyncio.run(measure(Path(tmp)))
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    print(report)
    return 0
