"""Which finished jobs the history limit removes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scheduler.domain.pruning import select_prunable
from scheduler.models import JobStatus, JobStatusEnum

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def done(name: str, status: JobStatusEnum, ended_minute: int) -> JobStatus:
    return JobStatus(
        name=name, status=status, created=T0, ended=T0 + timedelta(minutes=ended_minute)
    )


def test_keeps_the_latest_n_of_each_bucket_and_selects_the_older_ones_oldest_first() -> None:
    succeeded = [done(f"s{i}", JobStatusEnum.SUCCEEDED, i) for i in range(13)]
    failed = [done(f"f{i}", JobStatusEnum.FAILED, i) for i in range(11)]
    # Ties in completion time fall back to the name, so the order is total.
    assert select_prunable(succeeded + failed, limit=10) == ["f0", "s0", "s1", "s2"]


def test_running_and_waiting_jobs_are_never_selected() -> None:
    live = [
        JobStatus(name=f"r{i}", status=s, created=T0)
        for i, s in enumerate(
            [JobStatusEnum.RUNNING, JobStatusEnum.WAITING, JobStatusEnum.ACTIVE] * 10
        )
    ]
    assert select_prunable(live, limit=1) == []


def test_order_is_by_completion_not_by_creation() -> None:
    early_but_slow = JobStatus(
        name="slow", status=JobStatusEnum.SUCCEEDED, created=T0, ended=T0 + timedelta(hours=5)
    )
    late_but_quick = JobStatus(
        name="quick",
        status=JobStatusEnum.SUCCEEDED,
        created=T0 + timedelta(hours=1),
        ended=T0 + timedelta(hours=2),
    )
    assert select_prunable([early_but_slow, late_but_quick], limit=1) == ["quick"]


def test_selection_is_the_same_whatever_the_input_order() -> None:
    jobs = [done(f"s{i}", JobStatusEnum.SUCCEEDED, i % 7) for i in range(30)]
    assert select_prunable(jobs, 10) == select_prunable(list(reversed(jobs)), 10)
