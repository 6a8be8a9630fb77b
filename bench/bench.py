"""Benchmark: the scheduler against the API calls it makes, side by side in one run.

Against the fake API server (started here) or, with --kubeconfig, a real cluster, each against
the raw crash-safe calls (the same calls the scheduler makes, in its order, made directly with
aiohttp and JSON) and, for reference, the raw triples (Job, Secret, Service):
  POST /api/v1/jobs p50, one at a time
  a burst of POSTs, N in flight: jobs/s, and the scheduler's CPU per job
  POST /api/v1/batches of --batch-jobs jobs: wall time, and the scheduler's peak RSS
  GET /api/v1/jobs at each level (vs a raw LIST of the same Jobs) and at --memory-jobs jobs
  the scheduler's RSS idle, with the first level's jobs, and with --memory-jobs jobs
  against the fake: API calls per job run to its end, and RSS and GET with --history-jobs ended
  jobs, attempt records on and off (attempt_records.py)
Run by hand:
  .venv/bin/python bench/bench.py [--requests 300] [--burst 500] [--get-levels 1000,5000]
      [--memory-jobs 10000] [--batch-jobs 500] [--ended-jobs 200] [--history-jobs 10000]
      [--kubeconfig PATH --namespace NS --raw-namespace NS2] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import FrameType

import aiohttp

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script: make `scheduler` importable from the repo

from attempt_records import Setup, measure_records  # noqa: E402
from procs import (  # noqa: E402
    HOST,
    RADIXCONFIG,
    START_TIMEOUT_SECONDS,
    BenchError,
    chart_memory_limit,
    cpu_seconds,
    free_port,
    peak_rss_during,
    peak_rss_mib,
    progress,
    rss_mib,
    running,
    scheduler_argv,
    settled,
    wait_for_kubeconfig,
)
from raw import BENCH_SELECTOR, Burst, Calls, RawError, RawKube  # noqa: E402
from report import SIDES, Level, Report, Rounds, render  # noqa: E402
from rows import Timings  # noqa: E402
from schedclient import (  # noqa: E402
    MAX_IN_FLIGHT,
    PAYLOAD,
    SchedulerClient,
    wait_seconds,
    wait_until,
)

from scheduler.app import identity_of  # noqa: E402
from scheduler.backends.kubernetes.client import (  # noqa: E402
    CONNECTION_POOL_SIZE,
    load_configuration,
)
from scheduler.backends.kubernetes.manifests import label_selector  # noqa: E402
from scheduler.errors import ConfigError  # noqa: E402
from scheduler.models import MAX_BATCH_JOBS  # noqa: E402
from scheduler.settings import Settings, load_settings  # noqa: E402

# events_bench.py imports the process helpers from here.
__all__ = [
    "HOST",
    "RADIXCONFIG",
    "START_TIMEOUT_SECONDS",
    "BenchError",
    "free_port",
    "main",
    "rss_mib",
    "running",
    "wait_for_kubeconfig",
]

NAMESPACE = "bench"
# The raw creates go to another namespace so the scheduler does not see them as its jobs.
RAW_NAMESPACE = "bench-raw"
WARMUP_REQUESTS = 10
WARMUP_POSTS = 5
WARMUP_BATCH_JOBS = 5
IDLE_SETTLE_SECONDS = 1.0
# Before each side's burst, the processes we can see settle (procs.settled): the previous side's
# pods are started and their watch events read. Against a real cluster (whose processes are not
# ours to see), a fixed pause.
BURST_PAUSE_SECONDS = 2.0
# The fake keeps this many watch events per kind, so a resumed watch never needs a relist.
FAKE_HISTORY_SIZE = 200_000
MAX_JOBS = 50_000
HISTORY_LIMIT = 10 * MAX_JOBS  # the scheduler prunes nothing
FAKE_SERVER = Path(__file__).resolve().parent / "fakeserver.py"


async def quiet(processes: dict[str, int], *, fixed: bool) -> None:
    """Wait until every process is quiet (or, `fixed`, a fixed pause)."""
    if fixed:
        await asyncio.sleep(BURST_PAUSE_SECONDS)
        return
    await settled(processes)


async def measure_level(
    client: SchedulerClient, raw: RawKube, settings: Settings, jobs: int, requests: int, pid: int
) -> Level:
    """Sequential GETs and raw LISTs of the same jobs, taking turns, after a warm-up."""
    selector = label_selector(identity_of(settings))
    listed = await raw.list_jobs(settings.namespace, selector)
    if listed != jobs:
        raise BenchError(f"the API server lists {listed} jobs, GET /api/v1/jobs {jobs}")
    for _ in range(WARMUP_REQUESTS):
        await client.get_jobs()
        await raw.list_jobs(settings.namespace, selector)
    gets, lists = [], []
    body = b""
    for _ in range(requests):
        start = time.perf_counter()
        body = await client.get_jobs()
        middle = time.perf_counter()
        await raw.list_jobs(settings.namespace, selector)
        gets.append(middle - start)
        lists.append(time.perf_counter() - middle)
    return Level(
        jobs=jobs,
        get=Timings("GET /api/v1/jobs", gets),
        list_raw=Timings("raw LIST", lists),
        body_bytes=len(body),
        rss_mib=rss_mib(pid),
    )


class Bench:
    """One run's measures against a scheduler and the raw client, in the order `measure` takes
    them."""

    def __init__(
        self,
        args: argparse.Namespace,
        client: SchedulerClient,
        raw: RawKube,
        pid: int,
        fake_pid: int | None,
    ) -> None:
        self.args, self.client, self.raw, self.pid = args, client, raw, pid
        self.run = uuid.uuid4().hex[:6]  # the raw objects' names: unique to this run
        # The processes whose CPU time a round measures; against a real cluster, the scheduler.
        self.processes = {"scheduler": pid} | ({} if fake_pid is None else {"API server": fake_pid})
        self.fixed_pause = fake_pid is None

    async def create(self, side: str, name: str) -> None:
        """One job created one way: a POST, or its raw crash-safe calls, or a raw triple."""
        if side == "scheduler":
            await self.client.post_job()
        elif side == "crash-safe":
            await self.raw.create_crash_safe(name, PAYLOAD)
        else:
            await self.raw.create_triple(name, PAYLOAD)

    async def posts(self) -> dict[str, Timings]:
        """Jobs created one at a time, the sides taking turns (and turns at going first), so
        all meet the same server load; after a few unmeasured turns."""
        progress(f"measuring {self.args.requests} POSTs and as many raw creates of each kind ...")
        for i in range(WARMUP_POSTS):
            for side in SIDES:
                await self.create(side, f"raw{self.run}-w{side[0]}{i}")
        seconds: dict[str, list[float]] = {side: [] for side in SIDES}
        for i in range(self.args.requests):
            shift = i % len(SIDES)
            for side in SIDES[shift:] + SIDES[:shift]:
                start = time.perf_counter()
                await self.create(side, f"raw{self.run}-p{side[0]}{i:05d}")
                seconds[side].append(time.perf_counter() - start)
        return {side: Timings(side, seconds[side]) for side in SIDES}

    async def take_turns(
        self, what: str, rounds: int, one: Callable[[str, int], Awaitable[Burst]]
    ) -> Rounds:
        """`rounds` rounds of `one` on each side, the sides taking turns at going first, each
        starting from quiet; the CPU time each process spent during each."""
        by_side: dict[str, list[Burst]] = {side: [] for side in SIDES}
        for round_ in range(rounds):
            progress(f"{what}, round {round_ + 1} of {rounds}")
            shift = round_ % len(SIDES)
            for side in SIDES[shift:] + SIDES[:shift]:
                await quiet(self.processes, fixed=self.fixed_pause)
                before = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
                measured = await one(side, round_)
                measured.cpu_seconds = {
                    name: cpu_seconds(pid) - before[name] for name, pid in self.processes.items()
                }
                by_side[side].append(measured)
            progress(
                "  "
                + ", ".join(
                    f"{side} {by_side[side][-1].rate:.1f} jobs/s ({by_side[side][-1].errors} "
                    f"errors)"
                    for side in SIDES
                )
                + f"; scheduler CPU {by_side['scheduler'][-1].cpu_ms_per_job()['scheduler']:.2f}"
                " ms per job"
            )
        return Rounds(by_side)

    async def bursts(self) -> Rounds:
        args = self.args

        async def one(side: str, round_: int) -> Burst:
            if side == "scheduler":
                return await self.client.burst(args.burst, args.burst_concurrency)
            prefix = f"raw{self.run}-{side[0]}{round_}"
            calls: Calls = "crash-safe" if side == "crash-safe" else "triple"
            return await self.raw.burst(
                args.burst, args.burst_concurrency, prefix, PAYLOAD, calls=calls
            )

        what = f"burst: {args.burst} POSTs, {args.burst_concurrency} in flight"
        return await self.take_turns(what, args.burst_rounds, one)

    async def batches(self) -> tuple[Rounds, float]:
        """POST /api/v1/batches against the same calls made raw, as many at once; and the
        triples, CONNECTION_POOL_SIZE in flight. The scheduler's peak RSS during its batches."""
        jobs, peaks = self.args.batch_jobs, list[float]()
        await self.client.post_batch(WARMUP_BATCH_JOBS)
        await self.raw.create_batch(f"raw{self.run}-bw", WARMUP_BATCH_JOBS, PAYLOAD)

        async def one(side: str, round_: int) -> Burst:
            if side == "scheduler":
                async with peak_rss_during(self.pid) as peak:
                    batch = await self.client.post_batch(jobs)
                peaks.extend(peak)
                return batch
            prefix = f"raw{self.run}-{side[0]}b{round_}"
            if side == "crash-safe":
                return await self.raw.create_batch(prefix, jobs, PAYLOAD)
            return await self.raw.burst(jobs, CONNECTION_POOL_SIZE, prefix, PAYLOAD)

        rounds = await self.take_turns(f"batch of {jobs} jobs", self.args.batch_rounds, one)
        return rounds, max(peaks)

    async def gets(self, requests: int) -> Timings:
        """Sequential GETs of the whole list, after a warm-up."""
        for _ in range(WARMUP_REQUESTS):
            await self.client.get_jobs()
        seconds = []
        for _ in range(requests):
            start = time.perf_counter()
            await self.client.get_jobs()
            seconds.append(time.perf_counter() - start)
        return Timings("GET /api/v1/jobs", seconds)


async def measure(
    args: argparse.Namespace,
    kubeconfig: Path,
    settings: Settings,
    pid: int,
    records_setup: Setup | None,
    where: str,
) -> Report:
    def alive() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            return
        raise BenchError("the scheduler process is gone")

    raw_identity = identity_of(settings.model_copy(update={"namespace": args.raw_namespace}))
    configuration = await load_configuration(kubeconfig)
    async with (
        SchedulerClient.session(f"http://{HOST}:{settings.port}") as http,
        RawKube(configuration, settings.definition, raw_identity) as raw,
    ):
        client = SchedulerClient(http, alive)
        await wait_until(client.ready, START_TIMEOUT_SECONDS, "scheduler ready", alive)
        for _ in range(WARMUP_REQUESTS):
            await client.get_jobs()
        await asyncio.sleep(IDLE_SETTLE_SECONDS)
        rss_idle = rss_mib(pid)
        fake_pid = None if records_setup is None else records_setup.fake_pid
        bench = Bench(args, client, raw, pid, fake_pid)
        posts = await bench.posts()

        levels, seedings = [], []
        for level in args.get_levels:
            progress(f"seeding up to {level} jobs ...")
            seedings.append(await client.seed(level, args.seed_concurrency, wait_seconds(level)))
            progress(f"measuring {args.requests} GETs and raw LISTs at {seedings[-1].listed} jobs")
            levels.append(
                await measure_level(client, raw, settings, seedings[-1].listed, args.requests, pid)
            )
        # After the GET levels, so their jobs are as many as they say.
        bursts = await bench.bursts()

        progress(f"seeding up to {args.memory_jobs} jobs ...")
        seedings.append(
            await client.seed(
                args.memory_jobs, args.seed_concurrency, wait_seconds(args.memory_jobs)
            )
        )
        memory_jobs = seedings[-1].listed
        progress(f"measuring {args.requests} GETs at {memory_jobs} jobs")
        memory_get = await bench.gets(args.requests)
        rss_memory = rss_mib(pid)

        # Read before the batches, which reset the peak to measure their own.
        peak_rss = peak_rss_mib(pid)
        batches, batch_peak = None, 0.0
        if args.batch_rounds:
            # Last, so the batches' jobs are in none of the figures above.
            batches, batch_peak = await bench.batches()
        records = None
        if records_setup is not None and args.ended_jobs:
            # Last, with schedulers of their own in namespaces of their own, so none of the
            # figures above carries their jobs.
            records = await measure_records(records_setup, args)
        limit, limit_mib = chart_memory_limit()
        return Report(
            where=where,
            requests=args.requests,
            posts=posts,
            bursts=bursts,
            levels=levels,
            rss_idle_mib=rss_idle,
            memory_jobs=memory_jobs,
            memory_get=memory_get,
            rss_memory_mib=rss_memory,
            peak_rss_mib=max(peak_rss, peak_rss_mib(pid)),
            chart_limit=limit,
            chart_limit_mib=limit_mib,
            seedings=seedings,
            batch_jobs=args.batch_jobs,
            batches=batches,
            batch_peak_rss_mib=batch_peak,
            records=records,
        )


# -- before and after -------------------------------------------------------------------------


async def precheck(args: argparse.Namespace, kubeconfig: Path, settings: Settings) -> str:
    """The API server answers, and no job of the scheduler's labels is in its namespace yet
    (they would be in the view, and the clean-up would delete them); what the run is against."""
    raw_identity = identity_of(settings.model_copy(update={"namespace": args.raw_namespace}))
    selector = label_selector(identity_of(settings))
    try:
        configuration = await load_configuration(kubeconfig)
        async with RawKube(configuration, settings.definition, raw_identity) as raw:
            present = await raw.count(settings.namespace, selector)
            leftovers = await raw.count(args.raw_namespace, BENCH_SELECTOR)
    except (ConfigError, RawError) as exc:
        raise BenchError(f"the API server: {exc}") from exc
    if any(present.values()):
        raise BenchError(
            f"namespace {settings.namespace} already holds objects labelled {selector} "
            f"({present}); delete them or pick another --namespace"
        )
    if any(leftovers.values()):
        progress(f"{args.raw_namespace} holds an earlier run's raw objects, deleted at the end")
    if args.kubeconfig is None:
        return f"fake API server on {HOST}"
    return (
        f"cluster {configuration.host}, namespaces {settings.namespace} (scheduler) and "
        f"{args.raw_namespace} (raw)"
    )


def clean_up(kubeconfig: Path, settings: Settings, raw_namespace: str, failures: list[str]) -> None:
    """Delete every object the run created: the scheduler's by its label selector, the raw
    creates' by the bench label."""
    selector = label_selector(identity_of(settings))
    manual = (
        f"kubectl -n {settings.namespace} delete jobs,secrets,services,configmaps,pods -l "
        f"{selector}; kubectl -n {raw_namespace} delete jobs,secrets,services,pods -l "
        f"{BENCH_SELECTOR}"
    )

    async def delete() -> tuple[dict[str, int], dict[str, int]]:
        configuration = await load_configuration(kubeconfig)
        async with RawKube(configuration, settings.definition, identity_of(settings)) as raw:
            return (
                await raw.delete_all(settings.namespace, selector),
                await raw.delete_all(raw_namespace, BENCH_SELECTOR),
            )

    progress("cleaning up ...")
    try:
        ours, raws = asyncio.run(delete())
    except KeyboardInterrupt:
        print(f"bench: clean-up interrupted; to finish it: {manual}", file=sys.stderr)
        raise
    except (ConfigError, RawError, TimeoutError, OSError) as exc:
        failures.append(f"clean-up failed: {exc}; to finish it: {manual}")
        return
    progress(f"deleted in {settings.namespace}: {ours}; in {raw_namespace}: {raws}")


# -- main -------------------------------------------------------------------------------------


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not levels or levels != sorted(set(levels)) or not 1 <= levels[0] <= levels[-1] <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"ascending job counts between 1 and {MAX_JOBS}")
    return levels


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add = parser.add_argument
    add("--requests", type=int, default=300, help="sequential requests per measure (300)")
    add("--burst", type=int, default=500, help="POSTs in the burst (500)")
    add("--burst-rounds", type=int, default=6, help="bursts of each side, the median (6)")
    add("--burst-concurrency", type=int, default=64, help="the burst's POSTs in flight (64)")
    add("--get-levels", type=_levels, default=[1000, 5000], help="jobs at each GET (1000,5000)")
    add("--memory-jobs", type=int, default=10000, help="jobs at the last RSS (10000)")
    add("--seed-concurrency", type=int, default=64, help="seeding POSTs in flight (64)")
    add("--batch-jobs", type=int, default=500, help="jobs in each measured batch (500)")
    add("--batch-rounds", type=int, default=3, help="batches measured, 0 for none (3)")
    add(
        "--ended-jobs", type=int, default=200,
        help="jobs run to their end on each side of the attempt records, 0 for none (200)",
    )  # fmt: skip
    add("--history-jobs", type=int, help="ended jobs at the records' RSS (--memory-jobs)")
    add("--kubeconfig", type=Path, help="a real cluster's kubeconfig; no fake is started")
    add("--namespace", default=NAMESPACE, help=f"the scheduler's namespace ({NAMESPACE})")
    add("--raw-namespace", default=RAW_NAMESPACE, help=f"the raw creates' ({RAW_NAMESPACE})")
    add("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.burst_rounds <= 9:
        parser.error("--burst-rounds must be between 1 and 9")
    if not 1 <= args.requests <= 20000 or not 1 <= args.burst <= MAX_JOBS:
        parser.error(f"--requests must be between 1 and 20000, --burst between 1 and {MAX_JOBS}")
    in_flight = (args.burst_concurrency, args.seed_concurrency)
    if not all(1 <= count <= MAX_IN_FLIGHT for count in in_flight):
        parser.error(
            f"--burst-concurrency and --seed-concurrency must be between 1 and {MAX_IN_FLIGHT}"
        )
    after_bursts = args.get_levels[-1] + args.burst * args.burst_rounds
    if not after_bursts <= args.memory_jobs <= MAX_JOBS:
        parser.error(
            f"--memory-jobs must be between the last GET level plus the bursts' jobs "
            f"({after_bursts}) and {MAX_JOBS}"
        )
    if not 1 <= args.batch_jobs <= MAX_BATCH_JOBS or not 0 <= args.batch_rounds <= 100:
        parser.error(
            f"--batch-jobs must be between 1 and {MAX_BATCH_JOBS}, --batch-rounds between 0 and 100"
        )
    if args.history_jobs is None:
        args.history_jobs = args.memory_jobs
    if not 0 <= args.ended_jobs <= args.history_jobs <= MAX_JOBS:
        parser.error(
            f"--ended-jobs must be between 0 and --history-jobs ({args.history_jobs}), "
            f"--history-jobs at most {MAX_JOBS}"
        )
    if args.namespace == args.raw_namespace:
        parser.error("--raw-namespace must differ from --namespace: the scheduler would see it")
    if args.kubeconfig is not None and not args.kubeconfig.is_file():
        parser.error(f"--kubeconfig {args.kubeconfig}: no such file")
    return args


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # tear down as on Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminated)
    started = time.monotonic()
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        kubeconfig = args.kubeconfig.resolve() if args.kubeconfig else workdir / "kubeconfig"
        config = workdir / "radixconfig.yaml"
        config.write_text(RADIXCONFIG, encoding="utf-8")
        port = free_port()
        argv = scheduler_argv(config, "compute", args.namespace, port, kubeconfig, HISTORY_LIMIT)
        settings = load_settings(argv, {})
        python = sys.executable
        # Against a real cluster, no fake: its CPU is not ours to read, nor its audit log.
        records_setup: Setup | None = None
        try:
            with contextlib.ExitStack() as processes:
                if args.kubeconfig is None:
                    control_port = free_port()
                    fake = processes.enter_context(
                        running(
                            "fake API server",
                            [python, str(FAKE_SERVER), "--port", "0", "--host", HOST,
                             "--kubeconfig", str(kubeconfig),
                             "--history-size", str(FAKE_HISTORY_SIZE),
                             "--control-port", str(control_port)],
                            workdir / "fake.log",
                        )
                    )  # fmt: skip
                    wait_for_kubeconfig(kubeconfig, fake)
                    records_setup = Setup(
                        workdir=workdir,
                        config=config,
                        kubeconfig=kubeconfig,
                        fake_pid=fake.pid,
                        control_url=f"http://{HOST}:{control_port}",
                        history_limit=HISTORY_LIMIT,
                    )
                elif args.ended_jobs:
                    progress(
                        "attempt records: not measured against a real cluster (their API calls "
                        "are counted from the fake API server's audit log)"
                    )
                where = asyncio.run(precheck(args, kubeconfig, settings))
                # Runs after the scheduler has stopped, before the fake does.
                processes.callback(clean_up, kubeconfig, settings, args.raw_namespace, failures)
                scheduler = processes.enter_context(
                    running(
                        "scheduler",
                        [python, "-m", "scheduler", *argv],
                        workdir / "scheduler.log",
                    )
                )
                progress(f"against the {where}")
                report = asyncio.run(
                    measure(args, kubeconfig, settings, scheduler.pid, records_setup, where)
                )
        except (BenchError, RawError, aiohttp.ClientError, TimeoutError) as exc:
            print(
                f"bench: {exc if isinstance(exc, BenchError | RawError) else repr(exc)}",
                file=sys.stderr,
            )
            for failure in failures:
                print(f"bench: {failure}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130
    report.seconds = time.monotonic() - started
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    for failure in failures:
        print(f"bench: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
