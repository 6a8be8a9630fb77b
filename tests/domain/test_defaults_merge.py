"""How a batch's `defaultRadixJobComponentConfig` merges into each job (Radix's rules)."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.domain.defaults import merge_defaults
from scheduler.models import JobScheduleDescription, RadixJobComponentConfig

POLICY_A = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]}
POLICY_B = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [0]}}]}

# (name, defaults, job, expected fields of the merged job; the rest are None)
# fmt: off
CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("time_limit_from_the_default_when_the_job_has_none", {"timeLimitSeconds": 60}, {}, {"timeLimitSeconds": 60}),
    ("time_limit_of_the_job_wins_over_the_default", {"timeLimitSeconds": 60}, {"timeLimitSeconds": 5}, {"timeLimitSeconds": 5}),
    ("backoff_limit_from_the_default_when_the_job_has_none", {"backoffLimit": 3}, {}, {"backoffLimit": 3}),
    ("backoff_limit_zero_of_the_job_wins_over_the_default", {"backoffLimit": 3}, {"backoffLimit": 0}, {"backoffLimit": 0}),
    ("image_from_the_default_when_the_job_has_none", {"image": "a:1"}, {}, {"image": "a:1"}),
    ("image_of_the_job_wins_over_the_default", {"image": "a:1"}, {"image": "b:2"}, {"image": "b:2"}),
    ("empty_image_of_the_job_keeps_the_default_as_in_go", {"image": "a:1"}, {"image": ""}, {"image": "a:1"}),
    ("image_tag_from_the_default_when_the_job_has_none", {"imageTagName": "v1"}, {}, {"imageTagName": "v1"}),
    ("image_tag_of_the_job_wins_over_the_default", {"imageTagName": "v1"}, {"imageTagName": "v2"}, {"imageTagName": "v2"}),
    ("failure_policy_from_the_default_when_the_job_has_none", {"failurePolicy": POLICY_A}, {}, {"failurePolicy": POLICY_A}),
    ("failure_policy_of_the_job_replaces_the_default", {"failurePolicy": POLICY_A}, {"failurePolicy": POLICY_B}, {"failurePolicy": POLICY_B}),
    ("node_from_the_default_when_the_job_has_none", {"node": {"gpu": "nvidia"}}, {}, {"node": {"gpu": "nvidia"}}),
    ("node_of_the_job_replaces_the_default", {"node": {"gpu": "nvidia"}}, {"node": {"gpuCount": "2"}}, {"node": {"gpuCount": "2"}}),
    ("resources_default_cpu_limit_and_job_memory_limit_are_both_kept", {"resources": {"limits": {"cpu": "1"}}}, {"resources": {"limits": {"memory": "1Gi"}}}, {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}),
    ("resources_job_key_wins_over_the_default_key", {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}, {"resources": {"requests": {"cpu": "2"}}}, {"resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}),
    ("resources_limits_and_requests_merge_separately", {"resources": {"limits": {"cpu": "1"}}}, {"resources": {"requests": {"cpu": "500m"}}}, {"resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}}),
    ("resources_from_the_default_when_the_job_has_none", {"resources": {"limits": {"cpu": "1"}}}, {}, {"resources": {"limits": {"cpu": "1"}}}),
    ("variables_are_combined_and_job_keys_win", {"variables": {"A": "1", "B": "1"}}, {"variables": {"B": "2", "C": "2"}}, {"variables": {"A": "1", "B": "2", "C": "2"}}),
    ("variables_from_the_default_when_the_job_has_none", {"variables": {"A": "1"}}, {}, {"variables": {"A": "1"}}),
    ("runtime_from_the_default_when_the_job_has_none", {"runtime": {"architecture": "arm64"}}, {}, {"runtime": {"architecture": "arm64"}}),
    ("runtime_of_the_job_replaces_the_default_whole", {"runtime": {"architecture": "arm64", "nodeType": "gpu-a"}}, {"runtime": {"nodeType": "gpu-b"}}, {"runtime": {"nodeType": "gpu-b"}}),
    ("empty_runtime_of_the_job_clears_the_default", {"runtime": {"architecture": "arm64"}}, {"runtime": {}}, {"runtime": {}}),
    ("command_from_the_default_when_the_job_has_none", {"command": ["run"]}, {}, {"command": ["run"]}),
    ("command_of_the_job_wins_over_the_default", {"command": ["run"]}, {"command": ["go"]}, {"command": ["go"]}),
    ("empty_command_of_the_job_overrides_the_default", {"command": ["run"]}, {"command": []}, {"command": []}),
    ("args_from_the_default_when_the_job_has_none", {"args": ["-v"]}, {}, {"args": ["-v"]}),
    ("args_of_the_job_win_over_the_default", {"args": ["-v"]}, {"args": ["-q"]}, {"args": ["-q"]}),
    ("empty_args_of_the_job_override_the_default", {"args": ["-v"]}, {"args": []}, {"args": []}),
    ("job_id_and_payload_are_the_job_own", {"imageTagName": "v1"}, {"jobId": "j1", "payload": "{}"}, {"imageTagName": "v1", "jobId": "j1", "payload": "{}"}),
]
# fmt: on


def fields_of(job: JobScheduleDescription) -> dict[str, Any]:
    dumped: dict[str, Any] = job.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped


@pytest.mark.parametrize(
    ("defaults", "job", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_the_merged_job(
    defaults: dict[str, Any], job: dict[str, Any], expected: dict[str, Any]
) -> None:
    merged = merge_defaults(
        RadixJobComponentConfig.model_validate(defaults), JobScheduleDescription.model_validate(job)
    )
    assert fields_of(merged) == expected


def test_no_defaults_gives_the_job_unchanged() -> None:
    job = JobScheduleDescription.model_validate(
        {"jobId": "j1", "command": ["run"], "resources": {"limits": {"cpu": "1"}}}
    )
    assert merge_defaults(None, job) == job


def test_empty_defaults_give_the_job_unchanged() -> None:
    job = JobScheduleDescription.model_validate({"jobId": "j1", "variables": {"A": "1"}})
    assert merge_defaults(RadixJobComponentConfig(), job) == job


def test_merged_jobs_share_nothing_with_the_defaults() -> None:
    defaults = RadixJobComponentConfig.model_validate(
        {"command": ["run"], "runtime": {"architecture": "arm64"}}
    )
    merged = merge_defaults(defaults, JobScheduleDescription())
    assert merged.command is not None and merged.runtime is not None
    merged.command.append("more")
    merged.runtime.architecture = "amd64"
    assert defaults.command == ["run"]
    assert defaults.runtime is not None and defaults.runtime.architecture == "arm64"
