"""Benchmark: the scheduler's GET and POSTs against what they replace, and its memory.

Starts the fake API server and the scheduler as two separate processes on 127.0.0.1, seeds N jobs
through the scheduler, then compares in one run:
  GET /api/v1/jobs                  vs  the raw LIST of the same jobs (typed, and raw JSON)
  POST /api/v1/jobs                 vs  the creates it needs (Job, then Secret, then Service)
  POST /api/v1/batches (M jobs)     vs  the same M jobs' creates, as many in flight as the
                                        scheduler's connection pool holds
  the scheduler's RSS with 0 and N jobs in its view.
Run by hand:
  .venv/bin/python bench/bench.py [--jobs 1000] [--requests 500] [--batch-jobs 100]
      [--batch-rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script: make `scheduler` importable from the repo

from kubernetes.aio import client as k8s  # noqa: E402

from scheduler.app import identity_of  # noqa: E402
from scheduler.backends.kubernetes.client import (  # noqa: E402
    CONNECTION_POOL_SIZE,
    load_configuration,
)
from scheduler.backends.kubernetes.manifests import (  # noqa: E402
    build_job,
    build_payload_secret,
    build_service,
    label_selector,
)
from scheduler.domain.jobs import build_request  # noqa: E402
from scheduler.models import MAX_BATCH_JOBS, JobScheduleDescription  # noqa: E402
from scheduler.settings import Settings, load_settings  # noqa: E402

HOST = "127.0.0.1"
NAMESPACE = "bench"
# The raw creates go to another namespace so the scheduler does not see them as its jobs.
RAW_NAMESPACE = "bench-raw"
PAYLOAD = '{"x": 10, "y": 20}'
SEED_CONCURRENCY = 16
WARMUP_REQUESTS = 10
START_TIMEOUT_SECONDS = 60.0
SEED_TIMEOUT_SECONDS = 300.0
STOP_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 30.0
GET_TARGET = 0.25  # GET /api/v1/jobs p50 at most this fraction of a typed LIST
POST_TARGET = 1.3  # POST /api/v1/jobs p50 at most this multiple of the raw creates
BATCH_TARGET = 1.5  # POST /api/v1/batches median at most this multiple of the raw creates
# The raw creates of a batch's jobs run with as many in flight as the scheduler's pool holds.
RAW_BATCH_CONCURRENCY = CONNECTION_POOL_SIZE
WARMUP_BATCH_JOBS = 5

# Jobs that outlive the benchmark: they stay Running, so nothing is pruned or changes under us.
RADIXCONFIG = """\
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
      command: ["sh", "-c", "sleep 100000; exit 0"]
"""

TABLE_HEADER = f"{'measure':<44}{'p50 ms':>10}{'p95 ms':>10}"
RATIO_HEADER = f"{'ratio (p50)':<44}{'value':>10}{'target':>10}  verdict"
RSS_HEADER = f"{'scheduler RSS':<44}{'MiB':>10}"
BATCH_HEADER_COLUMNS = f"{'median ms':>10}{'max ms':>10}"


class BenchError(Exception):
    """The benchmark could not run; the message says which step failed."""


@dataclass(frozen=True)
class Timings:
    label: str
    seconds: list[float]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000

    @property
    def max_ms(self) -> float:
        return max(self.seconds) * 1000


@dataclass(frozen=True)
class Report:
    jobs: int
    requests: int
    get: Timings
    list_typed: Timings
    list_raw: Timings
    post: Timings
    creates: Timings
    batch_jobs: int
    batch: Timings
    batch_creates: Timings
    rss_empty_mib: float
    rss_full_mib: float
    get_body_bytes: int


# -- processes --------------------------------------------------------------------------------


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


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for process {pid}")


# -- measuring --------------------------------------------------------------------------------


async def timed(
    label: str, count: int, call: Callable[[int], Awaitable[object]], warmup: int = WARMUP_REQUESTS
) -> Timings:
    """`count` sequential calls after `warmup` unmeasured ones."""
    for i in range(warmup):
        await call(i)
    seconds = []
    for i in range(count):
        start = time.perf_counter()
        await call(i)
        seconds.append(time.perf_counter() - start)
    return Timings(label, seconds)


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


class Bench:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        api: k8s.ApiClient,
        settings: Settings,
        alive: Callable[[], None],
    ) -> None:
        self.http, self.alive = http, alive
        self.batch, self.core = k8s.BatchV1Api(api), k8s.CoreV1Api(api)
        self.definition = settings.definition
        raw_settings = settings.model_copy(update={"namespace": RAW_NAMESPACE})
        self.raw_identity = identity_of(raw_settings)
        self.selector = label_selector(identity_of(settings))

    async def ready(self) -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with self.http.get("/readyz") as response:
                return response.status == 200
        return False

    async def statuses(self) -> list[str]:
        async with self.http.get("/api/v1/jobs") as response:
            response.raise_for_status()
            return [job["status"] for job in await response.json()]

    async def get_jobs(self, _: int = 0) -> bytes:
        async with self.http.get("/api/v1/jobs") as response:
            response.raise_for_status()
            return await response.read()

    async def post_job(self, _: int = 0) -> None:
        body = json.dumps({"payload": PAYLOAD})
        async with self.http.post("/api/v1/jobs", data=body) as response:
            if response.status != 200:
                raise BenchError(f"POST /api/v1/jobs: {response.status} {await response.text()}")
            await response.read()

    async def list_typed(self, _: int = 0) -> int:
        jobs = await self.batch.list_namespaced_job(NAMESPACE, label_selector=self.selector)
        return len(jobs.items)

    async def list_raw(self, _: int = 0) -> int:
        response = await self.batch.list_namespaced_job_without_preload_content(
            NAMESPACE, label_selector=self.selector
        )
        async with response:
            return len(json.loads(await response.read())["items"])

    async def post_batch(self, jobs: int) -> None:
        body = json.dumps({"jobScheduleDescriptions": [{"payload": PAYLOAD}] * jobs})
        async with self.http.post("/api/v1/batches", data=body) as response:
            if response.status != 200:
                raise BenchError(f"POST /api/v1/batches: {response.status} {await response.text()}")
            created = len((await response.json()).get("jobStatuses") or [])
        if created != jobs:
            raise BenchError(f"POST /api/v1/batches answered {created} jobs, not {jobs}")

    async def raw_batch_creates(self, jobs: int, prefix: str) -> None:
        """The creates of `jobs` POSTs, each sequential, at most RAW_BATCH_CONCURRENCY at once."""
        gate = asyncio.Semaphore(RAW_BATCH_CONCURRENCY)

        async def one(i: int) -> None:
            async with gate:
                await self.raw_creates(i, prefix)

        await asyncio.gather(*(one(i) for i in range(jobs)))

    async def raw_creates(self, index: int, prefix: str = "raw") -> None:
        """What one POST needs from the API server, sequentially, with the same client calls."""
        name = f"{prefix}-{index:06d}-{time.monotonic_ns() % 10**9:09d}"
        description = JobScheduleDescription(payload=PAYLOAD)
        request = build_request(self.definition, description, name)
        identity = self.raw_identity
        job = await self._created(
            self.batch.create_namespaced_job_without_preload_content(
                RAW_NAMESPACE, k8s.V1Job.model_validate(build_job(identity, request))
            )
        )
        uid = job["metadata"]["uid"]
        secret = build_payload_secret(identity, request, uid)
        service = build_service(identity, request, uid)
        assert secret is not None and service is not None, "the bench job has payload and ports"
        await self._created(
            self.core.create_namespaced_secret_without_preload_content(
                RAW_NAMESPACE, k8s.V1Secret.model_validate(secret)
            )
        )
        await self._created(
            self.core.create_namespaced_service_without_preload_content(
                RAW_NAMESPACE, k8s.V1Service.model_validate(service)
            )
        )

    @staticmethod
    async def _created(call: Awaitable[aiohttp.ClientResponse]) -> dict[str, Any]:
        response = await call
        async with response:
            body = await response.read()
            if response.status >= 300:
                raise BenchError(f"raw create: {response.status} {body[:200]!r}")
        result: dict[str, Any] = json.loads(body)
        return result

    async def seed(self, count: int) -> None:
        gate = asyncio.Semaphore(SEED_CONCURRENCY)

        async def one(i: int) -> None:
            async with gate:
                await self.post_job(i)

        await asyncio.gather(*(one(i) for i in range(count)))

    async def all_running(self, count: int) -> bool:
        statuses = await self.statuses()
        return len(statuses) == count and all(s == "Running" for s in statuses)


async def measure(
    args: argparse.Namespace, kubeconfig: Path, settings: Settings, pid: int
) -> Report:
    def alive() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            return
        raise BenchError("the scheduler process is gone")

    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with (
        aiohttp.ClientSession(f"http://{HOST}:{settings.port}", timeout=timeout) as http,
        k8s.ApiClient(await load_configuration(kubeconfig)) as api,
    ):
        bench = Bench(http, api, settings, alive)
        await wait_until(bench.ready, START_TIMEOUT_SECONDS, "scheduler ready", alive)
        await timed("warm-up", 0, bench.get_jobs)
        rss_empty = rss_mib(pid)

        # POSTs and raw creates take turns, so both meet the same server load; the POSTs are
        # the first of the N jobs, the rest is seeded concurrently.
        measured = min(args.requests, args.jobs)
        post_seconds: list[float] = []
        create_seconds: list[float] = []
        for i in range(measured):
            start = time.perf_counter()
            await bench.post_job()
            middle = time.perf_counter()
            await bench.raw_creates(i)
            post_seconds.append(middle - start)
            create_seconds.append(time.perf_counter() - middle)
        print(f"seeding {args.jobs - measured} more jobs ...", file=sys.stderr)
        await bench.seed(args.jobs - measured)
        await wait_until(
            lambda: bench.all_running(args.jobs),
            SEED_TIMEOUT_SECONDS,
            f"{args.jobs} jobs Running in GET /api/v1/jobs",
            alive,
        )
        if await bench.list_raw() != args.jobs or await bench.list_typed() != args.jobs:
            raise BenchError(f"the API server does not list exactly {args.jobs} jobs")
        body = await bench.get_jobs()
        if len(json.loads(body)) != args.jobs:
            raise BenchError(f"GET /api/v1/jobs does not answer exactly {args.jobs} jobs")

        print(f"measuring {args.requests} requests each ...", file=sys.stderr)
        get = await timed("GET /api/v1/jobs (scheduler)", args.requests, bench.get_jobs)
        typed = await timed("LIST typed (list_namespaced_job)", args.requests, bench.list_typed)
        raw = await timed("LIST raw JSON (without_preload + loads)", args.requests, bench.list_raw)
        rss_full = rss_mib(pid)

        # Last, so the batches' jobs are not in the LISTs above. Batches and raw creates take
        # turns, after one small unmeasured round of each.
        print(
            f"measuring {args.batch_rounds} batches of {args.batch_jobs} jobs ...", file=sys.stderr
        )
        await bench.post_batch(WARMUP_BATCH_JOBS)
        await bench.raw_batch_creates(WARMUP_BATCH_JOBS, "warm")
        batch_seconds: list[float] = []
        batch_create_seconds: list[float] = []
        for round_ in range(args.batch_rounds):
            start = time.perf_counter()
            await bench.post_batch(args.batch_jobs)
            middle = time.perf_counter()
            await bench.raw_batch_creates(args.batch_jobs, f"batch{round_}")
            batch_seconds.append(middle - start)
            batch_create_seconds.append(time.perf_counter() - middle)
        return Report(
            jobs=args.jobs,
            requests=args.requests,
            get=get,
            list_typed=typed,
            list_raw=raw,
            post=Timings("POST /api/v1/jobs (scheduler)", post_seconds),
            creates=Timings("raw creates: Job, then Secret, Service", create_seconds),
            batch_jobs=args.batch_jobs,
            batch=Timings("POST /api/v1/batches (scheduler)", batch_seconds),
            batch_creates=Timings(
                f"raw creates, {RAW_BATCH_CONCURRENCY} jobs in flight", batch_create_seconds
            ),
            rss_empty_mib=rss_empty,
            rss_full_mib=rss_full,
            get_body_bytes=len(body),
        )


# -- reporting --------------------------------------------------------------------------------


def _ratio_line(label: str, value: float, target: float | None) -> str:
    if target is None:
        return f"{label:<44}{value:>10.3f}{'-':>10}  (lower bound, for information)"
    verdict = "MET" if value <= target else "MISSED"
    return f"{label:<44}{value:>10.3f}{f'<= {target}':>10}  {verdict}"


def render(report: Report) -> str:
    lines = [
        f"job-scheduler benchmark: {report.jobs} jobs, {report.requests} sequential requests "
        f"per measure, {os.cpu_count()} CPUs, fake API server and scheduler on {HOST}",
        f"GET /api/v1/jobs answers {report.get_body_bytes / 1024:.0f} KiB of JSON",
        "",
        TABLE_HEADER,
    ]
    for timings in (
        report.get, report.list_typed, report.list_raw, report.post, report.creates
    ):  # fmt: skip
        lines.append(f"{timings.label:<44}{timings.p50_ms:>10.2f}{timings.p95_ms:>10.2f}")
    rounds = len(report.batch.seconds)
    batch_header = f"batch of {report.batch_jobs} jobs, {rounds} round{'s' * (rounds != 1)}"
    lines += ["", f"{batch_header:<44}{BATCH_HEADER_COLUMNS}"]
    for timings in (report.batch, report.batch_creates):
        lines.append(f"{timings.label:<44}{timings.p50_ms:>10.1f}{timings.max_ms:>10.1f}")
    batch_ratio = report.batch.p50_ms / report.batch_creates.p50_ms
    lines += [
        "",
        RATIO_HEADER,
        _ratio_line("GET / LIST typed", report.get.p50_ms / report.list_typed.p50_ms, GET_TARGET),
        _ratio_line("GET / LIST raw JSON", report.get.p50_ms / report.list_raw.p50_ms, None),
        _ratio_line("POST / raw creates", report.post.p50_ms / report.creates.p50_ms, POST_TARGET),
        _ratio_line("POST batch / raw creates", batch_ratio, BATCH_TARGET),
        "",
        RSS_HEADER,
        f"{'with 0 jobs in its view':<44}{report.rss_empty_mib:>10.1f}",
        f"{f'with {report.jobs} jobs in its view':<44}{report.rss_full_mib:>10.1f}",
    ]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the view (default 1000)")
    parser.add_argument(
        "--requests", type=int, default=500, help="sequential requests per measure (default 500)"
    )
    parser.add_argument(
        "--batch-jobs", type=int, default=100, help="jobs in each measured batch (default 100)"
    )
    parser.add_argument(
        "--batch-rounds",
        type=int,
        default=3,
        help="batches measured, each followed by its raw creates (default 3)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 20000 or not 1 <= args.requests <= 20000:
        parser.error("--jobs and --requests must be between 1 and 20000")
    if not 1 <= args.batch_jobs <= MAX_BATCH_JOBS or not 1 <= args.batch_rounds <= 100:
        parser.error(
            f"--batch-jobs must be between 1 and {MAX_BATCH_JOBS}, --batch-rounds between 1 and 100"
        )
    return args


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # tear down as on Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminated)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        kubeconfig, config = workdir / "kubeconfig", workdir / "radixconfig.yaml"
        config.write_text(RADIXCONFIG, encoding="utf-8")
        port = free_port()
        scheduler_argv = [
            "--config", str(config), "--job", "compute", "--environment", "dev",
            "--namespace", NAMESPACE, "--port", str(port), "--host", HOST,
            "--kubeconfig", str(kubeconfig), "--history-limit", "100000", "--log-level", "WARNING",
        ]  # fmt: skip
        settings = load_settings(scheduler_argv, {})
        python = sys.executable
        try:
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
                        [python, "-m", "scheduler", *scheduler_argv],
                        workdir / "scheduler.log",
                    )
                )
                report = asyncio.run(measure(args, kubeconfig, settings, scheduler.pid))
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
