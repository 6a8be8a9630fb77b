"""The attempt records' figures (attempt_records.py): API calls per ended job, GET and RSS with
many ended jobs, records on and off; their table rows, details and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from procs import ENDED_LOG_LINES
from rows import GET_P95_TARGET_MS, Timings, ratio, row, verdict
from schedclient import Seeding

# API calls by verb, as the audit log names them: writes, and reads (watches are neither).
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
READ_VERBS = ("get", "list")


@dataclass(frozen=True)
class ApiCalls:
    """API calls into one namespace, from the fake's audit log: how many of each ("create
    configmaps", "get pods/log"), and of those the answers other than 2xx ("get configmaps 404")."""

    counts: dict[str, int]
    refused: dict[str, int]

    @classmethod
    def from_audit(cls, calls: list[dict[str, Any]]) -> ApiCalls:
        counts: dict[str, int] = {}
        refused: dict[str, int] = {}
        for call in calls:
            resource = "/".join(part for part in (call["resource"], call["subresource"]) if part)
            name = f"{call['verb']} {resource}"
            counts[name] = counts.get(name, 0) + call["count"]
            if not 200 <= call["code"] < 300:
                key = f"{name} {call['code']}"
                refused[key] = refused.get(key, 0) + call["count"]
        return cls(counts, refused)

    def of(self, verbs: tuple[str, ...]) -> int:
        return sum(count for name, count in self.counts.items() if name.split()[0] in verbs)

    @property
    def writes(self) -> int:
        return self.of(WRITE_VERBS)

    @property
    def reads(self) -> int:
        return self.of(READ_VERBS)

    def per_job(self, jobs: int, verbs: tuple[str, ...]) -> str:
        """`create configmaps 1.00, patch jobs 1.05`: each call of these verbs, per job."""
        found = sorted(
            (name, count) for name, count in self.counts.items() if name.split()[0] in verbs
        )
        return ", ".join(f"{name} {count / max(jobs, 1):.2f}" for name, count in found) or "none"

    def to_json(self) -> dict[str, Any]:
        return {
            "writes": self.writes,
            "reads": self.reads,
            "by_call": self.counts,
            "not_2xx": self.refused,
        }


@dataclass(frozen=True)
class RecordsSide:
    """One side of the attempt records' figures: a scheduler with the records on or off."""

    keep: bool
    namespace: str
    ended: Seeding  # jobs POSTed and run to their end through the scheduler
    calls: ApiCalls  # while they ran and their attempts were kept
    history_jobs: int  # ended jobs in its view at the end
    copied: int  # of those, copies of one of them put into the fake
    objects_per_job: int  # a copy's objects: the Job and what it owns
    history_calls: ApiCalls  # while the copies arrived through its watch
    get: Timings
    body_bytes: int
    rss_idle_mib: float
    rss_mib: float
    peak_rss_mib: float

    @property
    def label(self) -> str:
        return "records on" if self.keep else "records off"

    def per_job(self, count: int) -> float:
        return count / max(self.ended.created, 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "keep_attempts": self.keep,
            "namespace": self.namespace,
            "ended_jobs": self.ended.to_json(),
            "calls": self.calls.to_json(),
            "writes_per_job": self.per_job(self.calls.writes),
            "reads_per_job": self.per_job(self.calls.reads),
            "history_jobs": self.history_jobs,
            "copied_jobs": self.copied,
            "objects_per_copied_job": self.objects_per_job,
            "history_calls": self.history_calls.to_json(),
            "get": self.get.to_json(),
            "get_body_bytes": self.body_bytes,
            "rss_idle_mib": self.rss_idle_mib,
            "rss_mib": self.rss_mib,
            "peak_rss_mib": self.peak_rss_mib,
        }


@dataclass(frozen=True)
class Records:
    """The cost of attempt records: the same ended jobs with the records on and off."""

    on: RecordsSide
    off: RecordsSide

    @property
    def sides(self) -> tuple[RecordsSide, RecordsSide]:
        return self.on, self.off

    def verdicts(self, chart_limit_mib: float) -> dict[str, bool]:
        verdicts = {}
        for side in self.sides:
            name = "on" if side.keep else "off"
            verdicts[f"get_{name}"] = side.get.p95_ms <= GET_P95_TARGET_MS
            verdicts[f"rss_{name}"] = side.rss_mib <= chart_limit_mib
        return verdicts

    def to_json(self, chart_limit_mib: float) -> dict[str, Any]:
        return {
            "on": self.on.to_json(),
            "off": self.off.to_json(),
            "writes_ratio": ratio(self.on.calls.writes, self.off.calls.writes),
            "rss_ratio": ratio(self.on.rss_mib, self.off.rss_mib),
            # Not among the run's verdicts: for information beside the figures above.
            "verdicts": self.verdicts(chart_limit_mib),
        }

    def rows(self, chart_limit: str, chart_limit_mib: float) -> list[str]:
        """The table's rows: calls per job, GET and RSS, each on and off."""
        verdicts = self.verdicts(chart_limit_mib)
        on, off = self.on, self.off
        lines = []
        for side in self.sides:
            lines.append(
                row(
                    f"API calls per ended job, {side.label}",
                    f"{side.per_job(side.calls.writes):.2f} writes, "
                    f"{side.per_job(side.calls.reads):.2f} reads",
                    "",
                    f"{ratio(on.calls.writes, off.calls.writes):.2f}x" if side.keep else "",
                    "(information)",
                )
            )
        for side in self.sides:
            name = "on" if side.keep else "off"
            lines.append(
                row(
                    f"GET p50 / p95, {side.history_jobs} ended, {side.label}",
                    f"{side.get.p50_ms:.2f} / {side.get.p95_ms:.2f} ms",
                    "",
                    f"{ratio(on.get.p50_ms, off.get.p50_ms):.2f}x" if side.keep else "",
                    f"p95 <= {GET_P95_TARGET_MS:g} ms",
                    verdict(verdicts[f"get_{name}"]),
                )
            )
        for side in self.sides:
            name = "on" if side.keep else "off"
            lines.append(
                row(
                    f"RSS at {side.history_jobs} ended jobs, {side.label}",
                    f"{side.rss_mib:.1f} MiB",
                    "",
                    f"{ratio(on.rss_mib, off.rss_mib):.2f}x" if side.keep else "",
                    f"<= {chart_limit} (chart)",
                    verdict(verdicts[f"rss_{name}"]),
                )
            )
        return lines

    def details(self) -> list[str]:
        first = self.on
        lines = [
            f"  attempt records: on each side {first.ended.created} jobs of `ended` "
            f"({ENDED_LOG_LINES} lines of log, exit 0) run to their end through a scheduler of "
            f"its own (--keep-attempts true / false), then {first.copied} copies of one of them "
            f"(its Job and the {first.objects_per_job - 1} objects it owns) put into the fake: "
            f"{first.history_jobs} ended jobs in all",
        ]
        for side in self.sides:
            jobs, calls, ended = side.ended.created, side.calls, side.ended
            refused = ", ".join(
                f"{name} {count / max(jobs, 1):.2f}"
                for name, count in sorted(calls.refused.items())
            )
            lines += [
                f"    {side.label}, API calls per job: writes {calls.per_job(jobs, WRITE_VERBS)}; "
                f"reads {calls.per_job(jobs, READ_VERBS)}"
                + (f"; not 2xx: {refused}" if refused else ""),
                f"    {side.label}: all {ended.listed} Succeeded {ended.running_seconds:.1f} s "
                f"after the last of {ended.posted} POSTs; while the copies arrived, "
                f"{side.history_calls.writes} writes and {side.history_calls.reads} reads; at "
                f"{side.history_jobs} ended jobs GET answers {side.body_bytes / 1024:.0f} KiB, GET "
                f"max {side.get.max_ms:.2f} ms; RSS idle {side.rss_idle_mib:.1f} MiB, then "
                f"{side.rss_mib:.1f} MiB (+{_per_1000(side):.1f} MiB per 1,000 ended jobs), peak "
                f"{side.peak_rss_mib:.1f} MiB",
            ]
        return lines


def _per_1000(side: RecordsSide) -> float:
    return (side.rss_mib - side.rss_idle_mib) * 1000 / max(side.history_jobs, 1)
