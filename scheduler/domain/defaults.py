"""A batch's `defaultRadixJobComponentConfig` merged into each of its jobs, by Radix's rules
(radix-notes §1.3, `applyDefaultJobDescriptionProperties`); pure."""

from __future__ import annotations

from typing import Any

from scheduler.models import (
    EnvVars,
    JobScheduleDescription,
    RadixJobComponentConfig,
    ResourceList,
    Resources,
)


def _merged_map(
    default: dict[str, str] | None, job: dict[str, str] | None
) -> dict[str, str] | None:
    if default is None and job is None:
        return None
    return {**(default or {}), **(job or {})}


def _merged_resources(default: Resources | None, job: Resources | None) -> Resources | None:
    # Radix (mergo) merges resources per key: a default cpu limit and a job memory limit both stay.
    if default is None or job is None:
        return job or default
    limits = _merged_map(
        default.limits.root if default.limits else None, job.limits.root if job.limits else None
    )
    requests = _merged_map(
        default.requests.root if default.requests else None,
        job.requests.root if job.requests else None,
    )
    return Resources(
        limits=None if limits is None else ResourceList(limits),
        requests=None if requests is None else ResourceList(requests),
    )


def _merged_variables(default: EnvVars | None, job: EnvVars | None) -> EnvVars | None:
    merged = _merged_map(default.root if default else None, job.root if job else None)
    return None if merged is None else EnvVars(merged)


def _is_set(value: Any) -> bool:
    # Radix's image and imageTagName are Go strings: mergo takes "" for unset. Everything else
    # is a pointer or slice there, set when present, so `[]` and `{}` still override.
    return value is not None and value != ""


def merge_defaults(
    defaults: RadixJobComponentConfig | None, job: JobScheduleDescription
) -> JobScheduleDescription:
    """The job with every config field it leaves unset taken from `defaults`.

    `resources` (per key in limits and requests) and `variables` (job keys win) are combined;
    any other field, `runtime`, `command` and `args` included, is the job's whole value when it
    has one (so `"runtime": {}` and `"command": []` clear the default). `jobId` and `payload`
    are the job's own.
    """
    if defaults is None:
        return job
    merged: dict[str, Any] = {}
    # Every field of the shared config, so a field added to it is merged without a change here.
    for field in RadixJobComponentConfig.model_fields:
        default_value, job_value = getattr(defaults, field), getattr(job, field)
        merged[field] = job_value if _is_set(job_value) else default_value
    merged["resources"] = _merged_resources(defaults.resources, job.resources)
    merged["variables"] = _merged_variables(defaults.variables, job.variables)
    # A copy: the jobs of a batch share no mutable object with the defaults or each other.
    return job.model_copy(update=merged).model_copy(deep=True)
