"""How a batch's status, times and failure count come from its jobs and the batchStatusRules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.domain.batch_status import derive_batch_status, is_batch_done, is_batch_succeeded
from scheduler.models import BatchStatus, BatchType, JobStatus, JobStatusEnum
from scheduler.radixconfig import BatchStatusRule

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
W, A, R, S, F, X = "Waiting", "Active", "Running", "Succeeded", "Failed", "Stopped"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def jobs_in(*statuses: str) -> list[JobStatus]:
    return [
        JobStatus(name=f"batch-1-{i}", status=JobStatusEnum(status))
        for i, status in enumerate(statuses)
    ]


def rule(condition: str, operator: str, statuses: list[str], batch_status: str) -> BatchStatusRule:
    return BatchStatusRule.model_validate(
        {
            "condition": condition,
            "operator": operator,
            "jobStatuses": statuses,
            "batchStatus": batch_status,
        }
    )


ANY_FAILED_FAILS = rule("Any", "In", [F], F)
ALL_SUCCEEDED_SUCCEEDS = rule("All", "In", [S], S)
ALL_BUT_WAITING_RUNS = rule("All", "NotIn", [W], R)
ANY_NOT_DONE_IS_ACTIVE = rule("Any", "NotIn", [S, F, X], A)

# (name, job statuses, rules, batch status)
# fmt: off
CASES: list[tuple[str, tuple[str, ...], list[BatchStatusRule], str]] = [
    ("a_batch_without_jobs_is_waiting", (), [], W),
    ("a_batch_without_jobs_is_waiting_whatever_the_rules", (), [ALL_SUCCEEDED_SUCCEEDS], W),
    ("a_batch_of_waiting_jobs_is_waiting", (W, W), [], W),
    ("a_batch_with_one_job_running_is_active", (W, R), [], A),
    ("a_batch_with_an_active_job_is_active", (A, S), [], A),
    ("a_batch_of_finished_jobs_is_completed", (S, F, X), [], "Completed"),
    ("a_batch_of_failed_jobs_is_completed_without_rules", (F, F), [], "Completed"),
    ("any_in_rule_matches_when_one_job_is_listed", (S, F, R), [ANY_FAILED_FAILS], F),
    ("any_in_rule_does_not_match_when_no_job_is_listed", (S, R), [ANY_FAILED_FAILS], A),
    ("all_in_rule_matches_when_every_job_is_listed", (S, S), [ALL_SUCCEEDED_SUCCEEDS], S),
    ("all_in_rule_does_not_match_when_one_job_is_not_listed", (S, X), [ALL_SUCCEEDED_SUCCEEDS], "Completed"),
    ("all_not_in_rule_matches_when_no_job_is_listed", (R, A), [ALL_BUT_WAITING_RUNS], R),
    ("all_not_in_rule_does_not_match_when_one_job_is_listed", (R, W), [ALL_BUT_WAITING_RUNS], A),
    ("any_not_in_rule_matches_when_one_job_is_not_listed", (S, W), [ANY_NOT_DONE_IS_ACTIVE], A),
    ("any_not_in_rule_does_not_match_when_every_job_is_listed", (S, F), [ANY_NOT_DONE_IS_ACTIVE], "Completed"),
    ("the_first_matching_rule_wins", (S, F), [ANY_FAILED_FAILS, rule("Any", "In", [S], S)], F),
    ("a_later_rule_applies_when_earlier_ones_do_not_match", (S, S), [ANY_FAILED_FAILS, ALL_SUCCEEDED_SUCCEEDS], S),
    ("a_rule_may_end_a_batch_while_other_jobs_still_run", (F, R), [ANY_FAILED_FAILS], F),
]
# fmt: on


@pytest.mark.parametrize(
    ("statuses", "rules", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_batch_status_of(
    statuses: tuple[str, ...], rules: list[BatchStatusRule], expected: str
) -> None:
    status = derive_batch_status("batch-1", batch_id="b-1", jobs=jobs_in(*statuses), rules=rules)
    assert status.status == JobStatusEnum(expected)


def test_a_derived_batch_is_of_type_batch_with_its_name_id_and_jobs_in_the_given_order() -> None:
    jobs = jobs_in(S, R, W)
    status = derive_batch_status("batch-1", batch_id="b-1", jobs=jobs, rules=[])
    assert (status.name, status.batch_id, status.batch_type) == ("batch-1", "b-1", BatchType.BATCH)
    assert status.job_statuses == jobs


def test_a_batch_is_created_and_started_with_its_first_job_and_updated_with_its_last() -> None:
    jobs = [
        JobStatus(
            name="j1", status=JobStatusEnum.RUNNING, created=at(2), started=at(5), updated=at(9)
        ),
        JobStatus(name="j2", status=JobStatusEnum.WAITING, created=at(1), updated=at(7)),
        JobStatus(
            name="j3", status=JobStatusEnum.RUNNING, created=at(3), started=at(4), updated=at(8)
        ),
    ]
    status = derive_batch_status("batch-1", batch_id=None, jobs=jobs, rules=[])
    assert (status.created, status.started, status.updated) == (at(1), at(4), at(9))
    assert status.ended is None


def test_a_batch_of_waiting_jobs_has_not_started() -> None:
    jobs = [JobStatus(name="j1", created=at(1)), JobStatus(name="j2", created=at(2))]
    status = derive_batch_status("batch-1", batch_id=None, jobs=jobs, rules=[])
    assert status.started is None and status.ended is None


def test_a_batch_ends_with_its_last_job_once_all_are_done() -> None:
    jobs = [
        JobStatus(name="j1", status=JobStatusEnum.SUCCEEDED, started=at(1), ended=at(5)),
        JobStatus(name="j2", status=JobStatusEnum.FAILED, started=at(2), ended=at(9)),
        JobStatus(name="j3", status=JobStatusEnum.STOPPED, ended=at(3)),
    ]
    assert derive_batch_status("batch-1", batch_id=None, jobs=jobs, rules=[]).ended == at(9)


def test_a_batch_with_a_job_still_running_has_not_ended() -> None:
    jobs = [
        JobStatus(name="j1", status=JobStatusEnum.SUCCEEDED, started=at(1), ended=at(5)),
        JobStatus(name="j2", status=JobStatusEnum.RUNNING, started=at(2)),
    ]
    assert derive_batch_status("batch-1", batch_id=None, jobs=jobs, rules=[]).ended is None


def test_a_batch_ended_by_a_rule_has_no_end_time_while_jobs_still_run() -> None:
    jobs = [
        JobStatus(name="j1", status=JobStatusEnum.FAILED, ended=at(5)),
        JobStatus(name="j2", status=JobStatusEnum.RUNNING),
    ]
    status = derive_batch_status("batch-1", batch_id=None, jobs=jobs, rules=[ANY_FAILED_FAILS])
    assert status.status is JobStatusEnum.FAILED and status.ended is None


def test_the_batch_failure_count_is_the_sum_of_its_jobs() -> None:
    jobs = [JobStatus(name="j1", failed=2), JobStatus(name="j2"), JobStatus(name="j3", failed=3)]
    assert derive_batch_status("batch-1", batch_id=None, jobs=jobs, rules=[]).failed == 5


def test_a_batch_without_jobs_has_no_times_and_no_failures() -> None:
    status = derive_batch_status("batch-1", batch_id=None, jobs=[], rules=[])
    assert (status.created, status.started, status.ended, status.updated) == (None,) * 4
    assert status.failed == 0 and status.job_statuses == []


# (name, job statuses, done, succeeded)
# fmt: off
FINISHED: list[tuple[str, tuple[str, ...], bool, bool]] = [
    ("a_batch_of_succeeded_jobs_is_done_and_succeeded", (S, S), True, True),
    ("a_batch_of_succeeded_and_stopped_jobs_is_done_and_succeeded", (S, X), True, True),
    ("a_batch_of_stopped_jobs_is_done_and_succeeded", (X, X), True, True),
    ("a_batch_with_a_failed_job_is_done_and_not_succeeded", (S, F), True, False),
    ("a_batch_with_a_running_job_is_not_done", (S, R), False, False),
    ("a_batch_of_waiting_jobs_is_not_done", (W, W), False, False),
    ("a_batch_with_a_failed_and_a_running_job_is_not_done", (F, R), False, False),
    ("a_batch_without_jobs_is_not_done", (), False, False),
]
# fmt: on


@pytest.mark.parametrize(
    ("statuses", "done", "succeeded"), [c[1:] for c in FINISHED], ids=[c[0] for c in FINISHED]
)
def test_whether(statuses: tuple[str, ...], done: bool, succeeded: bool) -> None:
    status = derive_batch_status(
        "batch-1", batch_id=None, jobs=jobs_in(*statuses), rules=[ANY_FAILED_FAILS]
    )
    assert (is_batch_done(status), is_batch_succeeded(status)) == (done, succeeded)


# A status without job statuses (a single job's batch) is judged by its own status.
# fmt: off
ALONE: list[tuple[str, str, bool, bool]] = [
    ("a_succeeded_single_job_batch_is_done_and_succeeded", S, True, True),
    ("a_stopped_single_job_batch_is_done_and_succeeded", X, True, True),
    ("a_failed_single_job_batch_is_done_and_not_succeeded", F, True, False),
    ("a_running_single_job_batch_is_not_done", R, False, False),
    ("a_completed_batch_without_job_statuses_is_done", "Completed", True, False),
]
# fmt: on


@pytest.mark.parametrize(
    ("own", "done", "succeeded"), [c[1:] for c in ALONE], ids=[c[0] for c in ALONE]
)
def test_without_job_statuses_whether(own: str, done: bool, succeeded: bool) -> None:
    status = BatchStatus(name="batch-1", batch_type=BatchType.JOB, status=JobStatusEnum(own))
    assert (is_batch_done(status), is_batch_succeeded(status)) == (done, succeeded)
