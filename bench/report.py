"""The benchmark's figures, their verdicts, the printed tables and the JSON document."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from raw import Burst
from schedclient import Seeding

if TYPE_CHECKING:
    from records_report import Records

POST_TARGET = 1.2  # POST /api/v1/jobs p50 at most this multiple of the raw creates
BURST_TARGET = 0.8  # jobs/s of a burst of POSTs at least this fraction of the raw creates'
GET_P95_TARGET_MS = 10.0  # GET /api/v1/jobs p95, at every level
RSS_IDLE_TARGET_MIB = 80.0
RSS_PER_1000_TARGET_MIB = 15.0  # what 1,000 running jobs add to the view

COLUMNS = (44, 24, 24, 8, 18)  # measure, scheduler, raw, ratio, target; then the verdict


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

    def to_json(self) -> dict[str, Any]:
        return {
            "count": len(self.seconds),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "max_ms": self.max_ms,
        }


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


@dataclass
class Report:
    where: str
    requests: int
    post: Timings
    creates: Timings
    burst: Burst
    raw_burst: Burst
    safe_burst: Burst  # the raw calls a POST makes, crash-safe: for information
    levels: list[Level]
    rss_idle_mib: float
    memory_jobs: int
    rss_memory_mib: float
    peak_rss_mib: float
    chart_limit: str
    chart_limit_mib: float
    seedings: list[Seeding] = field(default_factory=list)
    batch_jobs: int = 0
    batch: Timings | None = None
    batch_creates: Timings | None = None
    records: Records | None = None  # against the fake only, unless --ended-jobs 0
    seconds: float = 0.0

    @property
    def rss_delta(self) -> tuple[int, float]:
        """Jobs at the first level and what they added to the idle RSS."""
        first = self.levels[0]
        return first.jobs, first.rss_mib - self.rss_idle_mib

    def verdicts(self) -> dict[str, bool]:
        jobs, delta = self.rss_delta
        verdicts = {
            "post": self.post.p50_ms / self.creates.p50_ms <= POST_TARGET,
            "burst": ratio(self.burst.rate, self.raw_burst.rate) >= BURST_TARGET,
        }
        for level in self.levels:
            verdicts[f"get_{level.jobs}"] = level.get.p95_ms <= GET_P95_TARGET_MS
        verdicts["rss_idle"] = self.rss_idle_mib <= RSS_IDLE_TARGET_MIB
        verdicts["rss_delta"] = delta * 1000 / max(jobs, 1) <= RSS_PER_1000_TARGET_MIB
        verdicts["rss_memory"] = self.rss_memory_mib <= self.chart_limit_mib
        return verdicts

    def to_json(self) -> dict[str, Any]:
        jobs, delta = self.rss_delta
        return {
            "where": self.where,
            "cpus": os.cpu_count(),
            "seconds": self.seconds,
            "requests": self.requests,
            "post": {
                "scheduler": self.post.to_json(),
                "raw": self.creates.to_json(),
                "ratio_p50": self.post.p50_ms / self.creates.p50_ms,
                "target": POST_TARGET,
            },
            "burst": {
                "scheduler": self.burst.to_json(),
                "raw": self.raw_burst.to_json(),
                "ratio": ratio(self.burst.rate, self.raw_burst.rate),
                "target": BURST_TARGET,
                "crash_safe_calls": self.safe_burst.to_json(),
                "ratio_to_crash_safe_calls": ratio(self.burst.rate, self.safe_burst.rate),
            },
            "get": {
                "levels": [level.to_json() for level in self.levels],
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
                "peak_mib": self.peak_rss_mib,
                "chart_limit": self.chart_limit,
                "chart_limit_mib": self.chart_limit_mib,
            },
            "batch": None
            if self.batch is None or self.batch_creates is None
            else {
                "jobs": self.batch_jobs,
                "scheduler": self.batch.to_json(),
                "raw": self.batch_creates.to_json(),
            },
            "seeding": [seeding.to_json() for seeding in self.seedings],
            "attempt_records": None
            if self.records is None
            else self.records.to_json(self.chart_limit_mib),
            "verdicts": self.verdicts(),
        }


def ratio(value: float, base: float) -> float:
    return value / base if base else float("inf")


def row(*cells: str) -> str:
    widths = COLUMNS
    line = "".join(f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=False))
    return (line + "".join(cells[len(widths) :])).rstrip()


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def render(report: Report) -> str:
    verdicts = report.verdicts()
    post, creates = report.post, report.creates
    burst, raw_burst = report.burst, report.raw_burst
    jobs, delta = report.rss_delta
    lines = [
        f"job-scheduler benchmark: {report.where}, {os.cpu_count()} CPUs, "
        f"{report.requests} sequential requests per measure",
        "",
        row("measure", "scheduler", "raw", "ratio", "target", "verdict"),
        row(
            "POST /api/v1/jobs p50 (Job+Secret+Service)",
            f"{post.p50_ms:.2f} ms",
            f"{creates.p50_ms:.2f} ms",
            f"{post.p50_ms / creates.p50_ms:.2f}x",
            f"<= {POST_TARGET}x",
            verdict(verdicts["post"]),
        ),
        row(
            f"{burst.requests} POSTs, {burst.concurrency} in flight",
            f"{burst.rate:.1f} jobs/s, {burst.errors} errors",
            f"{raw_burst.rate:.1f} jobs/s, {raw_burst.errors} errors",
            f"{ratio(burst.rate, raw_burst.rate):.2f}x",
            f">= {BURST_TARGET}x",
            verdict(verdicts["burst"]),
        ),
        row(
            "  the same, raw as a POST's 5 calls",
            "",
            f"{report.safe_burst.rate:.1f} jobs/s, {report.safe_burst.errors} errors",
            f"{ratio(burst.rate, report.safe_burst.rate):.2f}x",
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
            f"<= {report.chart_limit} (chart)",
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


def details(report: Report) -> list[str]:
    burst, raw_burst, safe_burst = report.burst, report.raw_burst, report.safe_burst
    lines = [
        "details",
        f"  POST /api/v1/jobs: p50 {report.post.p50_ms:.2f} ms, p95 {report.post.p95_ms:.2f} ms; "
        f"raw Job, then Secret, then Service: p50 {report.creates.p50_ms:.2f} ms, "
        f"p95 {report.creates.p95_ms:.2f} ms ({report.requests} each, taking turns)",
        f"  burst: {burst.requests} POSTs in {burst.seconds:.2f} s, {burst.errors} not 200; "
        f"{raw_burst.requests} raw triples in {raw_burst.seconds:.2f} s, "
        f"{raw_burst.errors} failed; {safe_burst.requests} raw crash-safe creates (the Job held, "
        f"its anchor, its Secret and Service together, the commit patch) in "
        f"{safe_burst.seconds:.2f} s, {safe_burst.errors} failed",
    ]
    per_job = [side.cpu_ms_per_job() for side in (burst, raw_burst, safe_burst)]
    if per_job[0]:
        spent = (
            f"{name} {' / '.join(f'{side[name]:.2f}' for side in per_job)}" for name in per_job[0]
        )
        lines.append(
            "  CPU ms per job during those bursts (POSTs / triples / crash-safe creates): "
            + "; ".join(spent)
        )
    for sample in burst.samples + raw_burst.samples + safe_burst.samples:
        lines.append(f"    error: {sample}")
    for level in report.levels:
        lines.append(
            f"  {level.jobs} jobs: GET answers {level.body_bytes / 1024:.0f} KiB; "
            f"GET max {level.get.max_ms:.2f} ms, raw LIST max {level.list_raw.max_ms:.1f} ms; "
            f"RSS {level.rss_mib:.1f} MiB"
        )
    jobs, delta = report.rss_delta
    lines.append(
        f"  RSS: idle {report.rss_idle_mib:.1f} MiB; +{delta:.1f} MiB at {jobs} jobs "
        f"({delta * 1000 / max(jobs, 1):.1f} MiB per 1,000); {report.rss_memory_mib:.1f} MiB "
        f"at {report.memory_jobs} jobs; peak (VmHWM) {report.peak_rss_mib:.1f} MiB; chart limit "
        f"{report.chart_limit} = {report.chart_limit_mib:.0f} MiB"
    )
    for seeding in report.seedings:
        rate = seeding.created / seeding.post_seconds if seeding.post_seconds else 0.0
        lines.append(
            f"  seeding to {seeding.target}: {seeding.posted} POSTs in "
            f"{seeding.post_seconds:.1f} s ({rate:.0f} jobs/s), {seeding.errors} errors, "
            f"{seeding.retries} retries; all "
            f"{seeding.listed} Running {seeding.running_seconds:.1f} s later"
        )
    if report.batch is not None and report.batch_creates is not None:
        rounds = len(report.batch.seconds)
        lines.append(
            f"  POST /api/v1/batches of {report.batch_jobs} jobs ({rounds} "
            f"round{'s' * (rounds != 1)}, for information): median {report.batch.p50_ms:.0f} ms, "
            f"max {report.batch.max_ms:.0f} ms; the same jobs' raw creates, "
            f"{raw_burst.concurrency} in flight: median {report.batch_creates.p50_ms:.0f} ms, "
            f"max {report.batch_creates.max_ms:.0f} ms; ratio "
            f"{report.batch.p50_ms / report.batch_creates.p50_ms:.2f}x"
        )
    if report.records is not None:
        lines += report.records.details()
    lines.append(f"  the run took {report.seconds / 60:.1f} min")
    return lines
