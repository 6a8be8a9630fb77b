"""A batch's `defaultRadixJobComponentConfig` merged into each of its jobs, by Radix's rules
(radix-notes §1.3, `applyDefaultJobDescriptionProperties`), and what that merge would cost,
measured before it is made; pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scheduler.models import (
    EnvVars,
    JobScheduleDescription,
    RadixJobComponentConfig,
    ResourceList,
    Resources,
)
from scheduler.radixconfig import JobDefinition

# The most a batch's jobs may come to once each is merged with the defaults, as `expanded_size`
# counts. The defaults are repeated in every job: 3000 default variables in a 43 KiB request
# would become 1.5 million environment entries across 500 jobs (over 300 MiB built).
MAX_EXPANDED_BATCH_BYTES = 8 * 1024 * 1024
# What each map entry or list item counts beyond its text. Many tiny entries cost the most
# memory once built (a dict entry, then an {"name", "value"} object in each Job manifest).
ITEM_BYTES = 32
_SCALAR_BYTES = 8  # a number, a boolean or null


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
    are the job's own. A batch merges each job with `layered` defaults, whose variables are
    shared rather than copied into each job.
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


def layered(
    definition: JobDefinition, defaults: RadixJobComponentConfig | None
) -> tuple[JobDefinition, RadixJobComponentConfig | None]:
    """The defaults' variables laid over the radixconfig's once for the whole batch, so that
    every job without variables of its own shares that one map (see `build_request`). The same
    environment as merging them into each job: the job's keys win, then the defaults'."""
    if defaults is None or defaults.variables is None:
        return definition, defaults
    variables = {**definition.variables, **defaults.variables.root}
    return (
        definition.model_copy(update={"variables": variables}),
        defaults.model_copy(update={"variables": None}),
    )


def _size(value: Any) -> int:
    """A JSON value's text in bytes, and `ITEM_BYTES` for each entry of its maps and lists."""
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, dict):
        return sum(ITEM_BYTES + _size(key) + _size(item) for key, item in value.items())
    if isinstance(value, list):
        return sum(ITEM_BYTES + _size(item) for item in value)
    return _SCALAR_BYTES


def expanded_size(
    defaults: RadixJobComponentConfig | None, jobs: Sequence[JobScheduleDescription]
) -> int:
    """The size of the jobs' configuration once each is merged with `defaults` (as `_size`
    counts it), found without merging: the defaults are measured once, each job's own fields
    once. `jobId` and `payload` are the job's own and not repeated (a payload has its own limit).
    """
    fields = set(RadixJobComponentConfig.model_fields)
    default = defaults.model_dump(mode="json", include=fields) if defaults is not None else {}
    default_sizes = {field: _size(value) for field, value in default.items()}
    default_variables: dict[str, str] = default.get("variables") or {}
    total = 0
    for job in jobs:
        own = job.model_dump(mode="json", include=fields)
        for field in fields:
            value = own.get(field)
            if field == "variables":
                # Merged by key: the job's keys replace the defaults' of the same name.
                replaced = (
                    ITEM_BYTES + _size(key) + _size(default_variables[key])
                    for key in value or ()
                    if key in default_variables
                )
                total += default_sizes.get(field, 0) + _size(value) - sum(replaced)
            elif field == "resources":
                total += default_sizes.get(field, 0) + _size(value)  # a few keys; at most both
            else:
                total += _size(value) if _is_set(value) else default_sizes.get(field, 0)
    return total
