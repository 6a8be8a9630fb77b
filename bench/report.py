"""The benchmark's figures, their verdicts, the printed tables and the JSON document."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from raw import Burst
from rows import GET_P95_TARGET_MS, Timings, ratio, row, verdict
from schedclient import Seeding

if TYPE_CHECKING:
    from records_report import Records

# Issue 25's targets. The floor is the raw crash-safe calls: the same calls a POST (or a batch)
# makes, in its order, made directly; the raw triples (Job, Secret, Service) are for reference.
POST_TARGET = 1.15  # POST /api/v1/jobs p50 at most this multiple of the raw crash-safe calls'
BURST_TARGET = 0.85  # a burst's jobs/s at least this fraction of the raw crash-safe calls'
CPU_PER_JOB_TARGET_MS = 2.5  # the scheduler's CPU time over the burst, per job
BATCH_TARGET = 1.2  # a batch's wall time at most this multiple of its raw crash-safe calls'
RSS_IDLE_TARGET_MIB = 80.0
RSS_PER_1000_TARGET_MIB = 15.0  # what 1,000 running jobs add to the view
RSS_MEMORY_TARGET_MIB = 160.0  # with --memory-jobs (10,000) jobs in the view

SIDES = ("scheduler", "crash-safe", "triple")


@dataclass(frozen=True)
class Level:
    """`GET /api/v1/jobs` and the raw LIST with `jobs` jobs in the view."""

    jobs: int
    get: Timings
    list_raw: Timings
    body_bytes: int
    rss_mib: float

    def to_json(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "get": self.get.to_json(),
            "list_raw": self.list_raw.to_json(),
            "get_body_bytes": self.body_bytes,
            "rss_mib": self.rss_mib,
        }


@dataclass(frozen=True)
class Rounds:
    """Rounds of one measure (a burst, a batch) on each side: the scheduler, the raw crash-safe
    calls and the raw triples; the rows show each side's median round."""

    by_side: dict[str, list[Burst]]

    def median(self, side: str) -> Burst:
        rounds = sorted(self.by_side[side], key=lambda burst: burst.rate)
        return rounds[len(rounds) // 2]

    def cpu_ms_per_job(self, process: str) -> float:
        """The median over the scheduler's rounds of `process`'s CPU time per job."""
        return statistics.median(b.cpu_ms_per_job()[process] for b in self.by_side["scheduler"])

    def to_json(self) -> dict[str, Any]:
        return {
            side.replace("-", "_"): {
                "median": self.median(side).to_json(),
                "rounds_jobs_per_second": [burst.rate for burst in rounds],
            }
            for side, rounds in self.by_side.items()
        }


@dataclass
class Report:
    where: str
    requests: int
    posts: dict[str, Timings]  # by side, one at a time, taking turns
    bursts: Rounds
    levels: list[Level]
    rss_idle_mib: float
    memory_jobs: int
    memory_get: Timings  # GET /api/v1/jobs with --memory-jobs jobs
    rss_memory_mib: float
    peak_rss_mib: float
    chart_limit: str
    chart_limit_mib: float
    seedings: list[Seeding] = field(default_factory=list)
    batch_jobs: int = 0
    batches: Rounds | None = None  # None: --batch-rounds 0
    batch_peak_rss_mib: float = 0.0  # the scheduler's, during its batches
    records: Records | None = None  # against the fake only, unless --ended-jobs 0
    seconds: float = 0.0

    @property
    def rss_delta(self) -> tuple[int, float]:
        """Jobs at the first level and what they added to the idle RSS."""
        first = self.levels[0]
        return first.jobs, first.rss_mib - self.rss_idle_mib

    def post_ratio(self, side: str = "crash-safe") -> float:
        return ratio(self.posts["scheduler"].p50_ms, self.posts[side].p50_ms)

    def burst_ratio(self, side: str = "crash-safe") -> float:
        return ratio(self.bursts.median("scheduler").rate, self.bursts.median(side).rate)

    def batch_ratio(self, side: str = "crash-safe") -> float:
        assert self.batches is not None
        return ratio(self.batches.median("scheduler").seconds, self.batches.median(side).seconds)

    @property
    def cpu_ms_per_job(self) -> float:
        return self.bursts.cpu_ms_per_job("scheduler")

    def verdicts(self) -> dict[str, bool]:
        jobs, delta = self.rss_delta
        verdicts = {
            "post": self.post_ratio() <= POST_TARGET,
            "burst": self.burst_ratio() >= BURST_TARGET
            and self.bursts.median("scheduler").errors == 0,
            "cpu_per_job": self.cpu_ms_per_job <= CPU_PER_JOB_TARGET_MS,
        }
        if self.batches is not None:
            verdicts["batch"] = self.batch_ratio() <= BATCH_TARGET and not any(
                batch.errors for batch in self.batches.by_side["scheduler"]
            )
        for level in self.levels:
            verdicts[f"get_{level.jobs}"] = level.get.p95_ms <= GET_P95_TARGET_MS
        verdicts["get_memory"] = self.memory_get.p95_ms <= GET_P95_TARGET_MS
        verdicts["rss_idle"] = self.rss_idle_mib <= RSS_IDLE_TARGET_MIB
        verdicts["rss_delta"] = delta * 1000 / max(jobs, 1) <= RSS_PER_1000_TARGET_MIB
        verdicts["rss_memory"] = self.rss_memory_mib <= RSS_MEMORY_TARGET_MIB
        return verdicts

    def to_json(self) -> dict[str, Any]:
        jobs, delta = self.rss_delta
        return {
            "where": self.where,
            "cpus": os.cpu_count(),
            "seconds": self.seconds,
            "requests": self.requests,
            "post": {
                **{side.replace("-", "_"): self.posts[side].to_json() for side in SIDES},
                "ratio_p50": self.post_ratio(),
                "ratio_p50_to_triple": self.post_ratio("triple"),
                "target": POST_TARGET,
            },
            "burst": {
                **self.bursts.to_json(),
                "ratio": self.burst_ratio(),
                "ratio_to_triple": self.burst_ratio("triple"),
                "target": BURST_TARGET,
            },
            "cpu_per_job": {
                "scheduler_ms": self.cpu_ms_per_job,
                "target_ms": CPU_PER_JOB_TARGET_MS,
            },
            "batch": None
            if self.batches is None
            else {
                "jobs": self.batch_jobs,
                **self.batches.to_json(),
                "ratio": self.batch_ratio(),
                "ratio_to_triple": self.batch_ratio("triple"),
                "target": BATCH_TARGET,
                "scheduler_peak_rss_mib": self.batch_peak_rss_mib,
            },
            "get": {
                "levels": [level.to_json() for level in self.levels],
                "memory": {"jobs": self.memory_jobs, "get": self.memory_get.to_json()},
                "p95_target_ms": GET_P95_TARGET_MS,
            },
            "rss": {
                "idle_mib": self.rss_idle_mib,
                "idle_target_mib": RSS_IDLE_TARGET_MIB,
                "delta_jobs": jobs,
                "delta_mib": delta,
                "delta_per_1000_target_mib": RSS_PER_1000_TARGET_MIB,
                "memory_jobs": self.memory_jobs,
                "memory_mib": self.rss_memory_mib,
                "memory_target_mib": RSS_MEMORY_TARGET_MIB,
                "peak_mib": self.peak_rss_mib,
                "chart_limit": self.chart_limit,
                "chart_limit_mib": self.chart_limit_mib,
                "within_chart_limit": self.peak_rss_mib <= self.chart_limit_mib,
            },
            "seeding": [seeding.to_json() for seeding in self.seedings],
            "attempt_records": None
            if self.records is None
            else self.records.to_json(self.chart_limit_mib),
            "verdicts": self.verdicts(),
        }


def _jobs_per_second(burst: Burst) -> str:
    return f"{burst.rate:.1f} jobs/s, {burst.errors} errors"


def _wall(burst: Burst) -> str:
    return f"{burst.seconds * 1000:.0f} ms, {burst.errors} errors"


def render(report: Report) -> str:
    verdicts = report.verdicts()
    posts, bursts = report.posts, report.bursts
    burst = bursts.median("scheduler")
    jobs, delta = report.rss_delta
    lines = [
        f"job-scheduler benchmark: {report.where}, {os.cpu_count()} CPUs, "
        f"{report.requests} sequential requests per measure",
        "",
        row("measure", "scheduler", "raw crash-safe calls", "ratio", "target", "verdict"),
        row(
            "POST /api/v1/jobs p50",
            f"{posts['scheduler'].p50_ms:.2f} ms",
            f"{posts['crash-safe'].p50_ms:.2f} ms",
            f"{report.post_ratio():.2f}x",
            f"<= {POST_TARGET}x",
            verdict(verdicts["post"]),
        ),
        row(
            "  raw triples (reference)",
            "",
            f"{posts['triple'].p50_ms:.2f} ms",
            f"{report.post_ratio('triple'):.2f}x",
            "(reference)",
        ),
        row(
            f"{burst.requests} POSTs, {burst.concurrency} in flight",
            _jobs_per_second(burst),
            _jobs_per_second(bursts.median("crash-safe")),
            f"{report.burst_ratio():.2f}x",
            f">= {BURST_TARGET}x, 0 errors",
            verdict(verdicts["burst"]),
        ),
        row(
            "  raw triples (reference)",
            "",
            _jobs_per_second(bursts.median("triple")),
            f"{report.burst_ratio('triple'):.2f}x",
            "(reference)",
        ),
        row(
            "scheduler CPU per job in the burst",
            f"{report.cpu_ms_per_job:.2f} ms",
            "",
            "",
            f"<= {CPU_PER_JOB_TARGET_MS:g} ms",
            verdict(verdicts["cpu_per_job"]),
        ),
    ]
    if report.batches is not None:
        batches = report.batches
        lines += [
            row(
                f"batch of {report.batch_jobs} jobs, wall time",
                _wall(batches.median("scheduler")),
                _wall(batches.median("crash-safe")),
                f"{report.batch_ratio():.2f}x",
                f"<= {BATCH_TARGET}x, 0 errors",
                verdict(verdicts["batch"]),
            ),
            row(
                f"  raw triples, {batches.median('triple').concurrency} in flight (reference)",
                "",
                _wall(batches.median("triple")),
                f"{report.batch_ratio('triple'):.2f}x",
                "(reference)",
            ),
            row(
                "  scheduler peak RSS during the batches",
                f"{report.batch_peak_rss_mib:.1f} MiB",
                "",
                "",
                "(information)",
            ),
        ]
    for level in report.levels:
        lines.append(
            row(
                f"GET /api/v1/jobs p50 / p95, {level.jobs} jobs",
                f"{level.get.p50_ms:.2f} / {level.get.p95_ms:.2f} ms",
                f"{level.list_raw.p50_ms:.1f} / {level.list_raw.p95_ms:.1f} ms LIST",
                f"{level.get.p50_ms / level.list_raw.p50_ms:.3f}x",
                f"p95 <= {GET_P95_TARGET_MS:g} ms",
                verdict(verdicts[f"get_{level.jobs}"]),
            )
        )
    lines += [
        row(
            f"GET /api/v1/jobs p50 / p95, {report.memory_jobs} jobs",
            f"{report.memory_get.p50_ms:.2f} / {report.memory_get.p95_ms:.2f} ms",
            "",
            "",
            f"p95 <= {GET_P95_TARGET_MS:g} ms",
            verdict(verdicts["get_memory"]),
        ),
        row(
            "RSS idle",
            f"{report.rss_idle_mib:.1f} MiB",
            "",
            "",
            f"<= {RSS_IDLE_TARGET_MIB:g} MiB",
            verdict(verdicts["rss_idle"]),
        ),
        row(
            f"RSS +{jobs} running jobs",
            f"+{delta:.1f} MiB",
            "",
            "",
            f"<= +{RSS_PER_1000_TARGET_MIB * jobs / 1000:g} MiB",
            verdict(verdicts["rss_delta"]),
        ),
        row(
            f"RSS at {report.memory_jobs} jobs",
            f"{report.rss_memory_mib:.1f} MiB",
            "",
            "",
            f"<= {RSS_MEMORY_TARGET_MIB:g} MiB",
            verdict(verdicts["rss_memory"]),
        ),
        *(
            []
            if report.records is None
            else report.records.rows(report.chart_limit, report.chart_limit_mib)
        ),
        "",
        *details(report),
    ]
    return "\n".join(lines)


def _rounds(rounds: Rounds, figure: str) -> str:
    """Every round of each side: jobs/s, or wall time in ms."""

    def one(burst: Burst) -> str:
        return f"{burst.rate:.1f}" if figure == "jobs/s" else f"{burst.seconds * 1000:.0f}"

    return "; ".join(
        f"{side} {', '.join(one(burst) for burst in rounds.by_side[side])}" for side in SIDES
    )


def _cpu(rounds: Rounds) -> str:
    """CPU ms per job each process spent during each side's median round."""
    per_job = [rounds.median(side).cpu_ms_per_job() for side in SIDES]
    return "; ".join(
        f"{name} {' / '.join(f'{side[name]:.2f}' for side in per_job)}" for name in per_job[0]
    )


def details(report: Report) -> list[str]:
    posts, bursts = report.posts, report.bursts
    lines = [
        "details",
        f"  POST /api/v1/jobs one at a time ({report.requests} each, taking turns): p50 / p95 "
        + "; ".join(
            f"{label} {posts[side].p50_ms:.2f} / {posts[side].p95_ms:.2f} ms"
            for side, label in zip(
                SIDES, ("POSTs", "raw crash-safe calls", "raw triples"), strict=True
            )
        ),
        f"  bursts, jobs/s of every round: {_rounds(bursts, 'jobs/s')}",
        f"  CPU ms per job during each side's median burst (POSTs / crash-safe calls / "
        f"triples): {_cpu(bursts)}; the scheduler's median over its rounds "
        f"{report.cpu_ms_per_job:.2f}",
    ]
    for side in SIDES:
        lines += [f"    {side} error: {sample}" for sample in bursts.median(side).samples]
    if report.batches is not None:
        batches = report.batches
        lines += [
            f"  batches of {report.batch_jobs} jobs, wall ms of every round: "
            f"{_rounds(batches, 'ms')}; the slowest POST /api/v1/batches "
            f"{max(b.seconds for b in batches.by_side['scheduler']) * 1000:.0f} ms",
            f"  CPU ms per job during each side's median batch (POST / crash-safe calls / "
            f"triples): {_cpu(batches)}",
        ]
        for side in SIDES:
            lines += [f"    {side} error: {sample}" for sample in batches.median(side).samples]
    for level in report.levels:
        lines.append(
            f"  {level.jobs} jobs: GET answers {level.body_bytes / 1024:.0f} KiB; "
            f"GET max {level.get.max_ms:.2f} ms, raw LIST max {level.list_raw.max_ms:.1f} ms; "
            f"RSS {level.rss_mib:.1f} MiB"
        )
    lines.append(
        f"  {report.memory_jobs} jobs: GET max {report.memory_get.max_ms:.2f} ms (no raw LIST: "
        f"it would take most of the run)"
    )
    jobs, delta = report.rss_delta
    within = "within" if report.peak_rss_mib <= report.chart_limit_mib else "OVER"
    lines.append(
        f"  RSS: idle {report.rss_idle_mib:.1f} MiB; +{delta:.1f} MiB at {jobs} jobs "
        f"({delta * 1000 / max(jobs, 1):.1f} MiB per 1,000); {report.rss_memory_mib:.1f} MiB "
        f"at {report.memory_jobs} jobs; peak (VmHWM) {report.peak_rss_mib:.1f} MiB, {within} "
        f"the chart's limit {report.chart_limit} = {report.chart_limit_mib:.0f} MiB"
    )
    for seeding in report.seedings:
        rate = seeding.created / seeding.post_seconds if seeding.post_seconds else 0.0
        lines.append(
            f"  seeding to {seeding.target}: {seeding.posted} POSTs in "
            f"{seeding.post_seconds:.1f} s ({rate:.0f} jobs/s), {seeding.errors} errors, "
            f"{seeding.retries} retries; all "
            f"{seeding.listed} Running {seeding.running_seconds:.1f} s later"
        )
    if report.records is not None:
        lines += report.records.details()
    lines.append(f"  the run took {report.seconds / 60:.1f} min")
    return lines
