"""The batch wire models: what a client sends and sees, with Radix's field names, nulls and
limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from scheduler.models import (
    BatchEvent,
    BatchScheduleDescription,
    BatchStatus,
    BatchType,
    Event,
    EventType,
    JobStatus,
    JobStatusEnum,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def wire(model: BatchStatus) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(model.model_dump_json(by_alias=True))
    return parsed


def test_a_batch_description_reads_radix_field_names() -> None:
    body = {
        "batchId": "b-1",
        "defaultRadixJobComponentConfig": {"imageTagName": "v2", "timeLimitSeconds": 60},
        "jobScheduleDescriptions": [{"jobId": "j1", "payload": "{}"}, {"jobId": "j2"}],
    }
    description = BatchScheduleDescription.model_validate_json(json.dumps(body))
    assert description.batch_id == "b-1"
    assert description.default_radix_job_component_config is not None
    assert description.default_radix_job_component_config.image_tag_name == "v2"
    assert [j.job_id for j in description.job_schedule_descriptions] == ["j1", "j2"]


def test_a_batch_description_round_trips() -> None:
    body = {
        "batchId": "b-1",
        "defaultRadixJobComponentConfig": {"variables": {"A": "1"}, "command": ["run"]},
        "jobScheduleDescriptions": [{"jobId": "j1", "args": []}],
    }
    description = BatchScheduleDescription.model_validate(body)
    again = BatchScheduleDescription.model_validate_json(description.model_dump_json(by_alias=True))
    assert again == description


def test_a_batch_description_ignores_fields_it_does_not_know() -> None:
    description = BatchScheduleDescription.model_validate(
        {"jobScheduleDescriptions": [{"jobId": "j1", "futureField": 1}], "other": True}
    )
    assert [j.job_id for j in description.job_schedule_descriptions] == ["j1"]


def test_a_batch_description_without_job_list_is_invalid() -> None:
    with pytest.raises(ValidationError):
        BatchScheduleDescription.model_validate({"batchId": "b-1"})


def test_an_empty_job_list_is_left_to_the_domain_to_reject_with_radix_message() -> None:
    assert BatchScheduleDescription.model_validate({"jobScheduleDescriptions": []})


def test_a_batch_takes_500_jobs() -> None:
    jobs = [{"jobId": str(i)} for i in range(500)]
    description = BatchScheduleDescription.model_validate({"jobScheduleDescriptions": jobs})
    assert len(description.job_schedule_descriptions) == 500


def test_a_batch_of_501_jobs_is_invalid() -> None:
    jobs = [{"jobId": str(i)} for i in range(501)]
    with pytest.raises(ValidationError, match="at most 500"):
        BatchScheduleDescription.model_validate({"jobScheduleDescriptions": jobs})


def test_a_new_batch_status_has_null_times_and_leaves_out_other_unset_fields() -> None:
    assert wire(BatchStatus(name="batch-1")) == {
        "name": "batch-1",
        "created": None,
        "started": None,
        "ended": None,
        "updated": None,
        "status": "Waiting",
        "failed": 0,
        "podStatuses": [],
        "batchType": "batch",
    }


def test_a_batch_status_uses_radix_names_and_second_precision_utc_times() -> None:
    status = BatchStatus(
        name="batch-1",
        batch_id="b-1",
        batch_type=BatchType.BATCH,
        status=JobStatusEnum.ACTIVE,
        created=T0,
        started=T0,
        failed=2,
        deployment_name="dep-1",
        job_statuses=[JobStatus(name="batch-1-aaaa", job_id="j1", status=JobStatusEnum.RUNNING)],
    )
    seen = wire(status)
    assert seen["batchId"] == "b-1"
    assert seen["batchType"] == "batch"
    assert seen["DeploymentName"] == "dep-1"
    assert seen["created"] == seen["started"] == "2024-05-01T12:00:00Z"
    assert seen["ended"] is None
    assert seen["failed"] == 2
    assert seen["jobStatuses"] == [
        {
            "jobId": "j1",
            "name": "batch-1-aaaa",
            "created": None,
            "started": None,
            "ended": None,
            "updated": None,
            "status": "Running",
            "failed": 0,
            "podStatuses": [],
        }
    ]


def test_a_batch_status_without_job_statuses_leaves_them_out_as_radix_does() -> None:
    assert "jobStatuses" not in wire(BatchStatus(name="batch-1", batch_type=BatchType.JOB))


def test_a_batch_status_round_trips() -> None:
    status = BatchStatus(
        name="batch-1",
        batch_id="b-1",
        batch_type=BatchType.JOB,
        status=JobStatusEnum.COMPLETED,
        created=T0.replace(microsecond=0),
        job_statuses=[JobStatus(name="batch-1-aaaa", status=JobStatusEnum.SUCCEEDED)],
    )
    assert BatchStatus.model_validate_json(status.model_dump_json(by_alias=True)) == status


def test_a_batch_status_from_radix_reads_its_batch_type() -> None:
    status = BatchStatus.model_validate({"name": "batch-1", "batchType": "job"})
    assert status.batch_type is BatchType.JOB


def test_an_unknown_batch_type_is_invalid() -> None:
    with pytest.raises(ValidationError):
        BatchStatus.model_validate({"name": "batch-1", "batchType": "cron"})


def test_a_batch_event_is_the_batch_status_with_its_event() -> None:
    event = BatchEvent(
        name="batch-1",
        batch_id="b-1",
        event=Event(EventType.UPDATE),
        updated=T0,
        job_statuses=[JobStatus(name="batch-1-aaaa", batch_name="batch-1")],
    )
    seen = wire(event)
    assert seen["event"] == "Update"
    assert seen["updated"] == "2024-05-01T12:00:00Z"
    assert seen["created"] is None
    assert seen["jobStatuses"][0]["batchName"] == "batch-1"
    assert set(seen) - set(wire(BatchStatus(name="batch-1"))) == {"event", "batchId", "jobStatuses"}


@pytest.mark.parametrize("kind", ["Create", "Update", "Delete"])
def test_a_batch_event_round_trips_each_kind_of_event(kind: str) -> None:
    event = BatchEvent.model_validate({"name": "batch-1", "event": kind})
    assert wire(event)["event"] == kind
    assert BatchEvent.model_validate_json(event.model_dump_json(by_alias=True)) == event


def test_a_batch_event_without_event_is_invalid() -> None:
    with pytest.raises(ValidationError):
        BatchEvent.model_validate({"name": "batch-1"})


def test_a_batch_event_with_an_unknown_event_is_invalid() -> None:
    with pytest.raises(ValidationError):
        BatchEvent.model_validate({"name": "batch-1", "event": "Restart"})
