"""What a failed attempt means for its job, as the Kubernetes Job controller decides it: the
`failurePolicy` rules by exit code (FailJob, Ignore, Count), then the `backoffLimit`."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.backends.base import ExitCodeRule, JobRequest


@dataclass(frozen=True, slots=True)
class Verdict:
    failures: int  # failed attempts that count toward the backoff limit, this one included
    reason: str | None = None  # None: try again
    message: str | None = None


def _matches(rule: ExitCodeRule, exit_code: int) -> bool:
    listed = exit_code in rule.values
    return listed if rule.operator == "In" else not listed


def judge(request: JobRequest, exit_code: int | None, failures: int) -> Verdict:
    """`failures`: the failed attempts counted so far, before this one."""
    code = exit_code if exit_code is not None else 128
    for index, rule in enumerate(request.failure_rules):
        if not _matches(rule, code):
            continue
        if rule.action == "FailJob":
            return Verdict(
                failures + 1,
                "PodFailurePolicy",
                f"Container {request.name} failed with exit code {code} matching FailJob rule "
                f"at index {index}",
            )
        if rule.action == "Ignore":
            return Verdict(failures)  # not counted: try again
        break  # Count: as without a rule
    if failures + 1 > request.backoff_limit:
        return Verdict(
            failures + 1, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        )
    return Verdict(failures + 1)
