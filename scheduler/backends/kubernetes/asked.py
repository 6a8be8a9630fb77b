"""What was asked of a job, read back off its Job as `manifests.build_job` wrote it: pure, no
I/O. Some options are not written as given, so they read back as what the Job does with them:
the placement keeps one of `node` and `runtime` (a node type, else a GPU request, else the
architecture), a GPU list comes back lower-cased, and a `startAfter` that had passed when the
job was created (or before a restart) is not on the Job."""

from __future__ import annotations

from typing import Any

from scheduler.backends.base import SCHEDULER_VARIABLES, Asked, NodeSpec, RuntimeSpec
from scheduler.backends.kubernetes.manifests import (
    ANNOTATION_JOB_ID,
    ANNOTATION_START_AFTER,
    ANNOTATION_WAITING_TIMEOUT,
    CONTAINER_NAME_FALLBACK,
    LABEL_BATCH_NAME,
    LABEL_SCHEDULE,
    PAYLOAD_VOLUME,
)
from scheduler.backends.kubernetes.placement import (
    ARCH_LABEL,
    DEFAULT_ARCHITECTURE,
    GPU_COUNT_KEY,
    GPU_LABEL,
    NODE_TYPE_KEY,
)
from scheduler.backends.kubernetes.records import parse_time


def job_container(pod_spec: dict[str, Any], component: str) -> dict[str, Any]:
    """The job's own container in its pod spec (named after the component), else the first."""
    containers = pod_spec.get("containers") or [{}]
    ours = component or CONTAINER_NAME_FALLBACK
    return next((c for c in containers if c.get("name") == ours), containers[0])


def asked_of_job(job: dict[str, Any], component: str) -> Asked:
    metadata = job.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    spec = job.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    container = job_container(pod_spec, component)
    resources = container.get("resources") or {}
    node, runtime = _placement(pod_spec)
    return Asked(
        image=str(container.get("image") or ""),
        command=_strings(container.get("command")),
        args=_strings(container.get("args")),
        requests=_quantities(resources.get("requests")),
        limits=_quantities(resources.get("limits")),
        # Only names: a variable is a value or a reference (valueFrom), and neither is told.
        variable_names=tuple(
            sorted(
                {str(e["name"]) for e in container.get("env") or () if e.get("name")}
                - SCHEDULER_VARIABLES
            )
        ),
        # Its payload Secret's volume, or the volume its payload in parts is put together in.
        has_payload=any(v.get("name") == PAYLOAD_VOLUME for v in pod_spec.get("volumes") or ()),
        node=node,
        runtime=runtime,
        time_limit_seconds=_integer(spec.get("activeDeadlineSeconds")),
        backoff_limit=_integer(spec.get("backoffLimit")),
        start_after=parse_time(annotations.get(ANNOTATION_START_AFTER)),
        waiting_timeout_seconds=_integer(annotations.get(ANNOTATION_WAITING_TIMEOUT)),
        schedule=labels.get(LABEL_SCHEDULE),
        batch_name=labels.get(LABEL_BATCH_NAME),
        job_id=annotations.get(ANNOTATION_JOB_ID),
    )


def _placement(pod_spec: dict[str, Any]) -> tuple[NodeSpec | None, RuntimeSpec | None]:
    """The `node` and `runtime` that `placement.pod_placement` turned into this affinity."""
    affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    values: dict[tuple[str, str], list[str]] = {}
    for term in affinity.get("nodeSelectorTerms") or ():
        for expression in term.get("matchExpressions") or ():
            key = (str(expression.get("key")), str(expression.get("operator")))
            values.setdefault(key, []).extend(str(v) for v in expression.get("values") or ())
    architecture = next(iter(values.get((ARCH_LABEL, "In"), ())), None)
    node_types = values.get((NODE_TYPE_KEY, "In"))
    if node_types:
        # The job pool's term beside it names the architecture, amd64 when none was asked.
        fixed = architecture if architecture != DEFAULT_ARCHITECTURE else None
        return None, RuntimeSpec(architecture=fixed, node_type=node_types[0])
    gpus = [
        *values.get((GPU_LABEL, "In"), ()),
        *(f"-{g}" for g in values.get((GPU_LABEL, "NotIn"), ())),
    ]
    if gpus:
        # "At least N" is written as "more than N - 1".
        above = _integer(next(iter(values.get((GPU_COUNT_KEY, "Gt"), ())), None))
        count = None if above is None else str(above + 1)
        return NodeSpec(gpu=", ".join(gpus), gpu_count=count), None
    if architecture is not None:
        return None, RuntimeSpec(architecture=architecture)
    return None, None


def _strings(values: Any) -> tuple[str, ...] | None:
    return None if values is None else tuple(str(v) for v in values)


def _quantities(values: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


def _integer(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
