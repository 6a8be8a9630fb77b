"""Pure builders of the Kubernetes bodies: a job's Job, its anchor (a ConfigMap the Job owns, which
owns the job's payload Secret, or its payload's part Secrets, and Service), a batch's record (a
ConfigMap that owns its Jobs and their Secrets and Services), and the patches that commit and stop
them.

Plain dicts in the API's own field names; no I/O, no client types, so they are table-tested.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from scheduler.backends.base import BatchRequest, Identity, JobRequest
from scheduler.backends.kubernetes.payloads import Assembly, is_split, part_secret_name
from scheduler.backends.kubernetes.placement import gpu_limits, pod_placement
from scheduler.models.wire import rfc3339

LABEL_APP = "radix-app"
LABEL_COMPONENT = "radix-component"
LABEL_JOB_TYPE = "radix-job-type"
LABEL_JOB_NAME = "radix-job-name"
LABEL_BATCH_NAME = "radix-batch-name"
# A run of a radixconfig schedule carries the schedule's name.
LABEL_SCHEDULE = "radix.equinor.com/schedule"
# An Idempotency-Key's claim (a ConfigMap), which is no batch.
LABEL_IDEMPOTENCY_KEY = "radix.equinor.com/idempotency-key"
JOB_TYPE = "job-scheduler"
ANNOTATION_JOB_ID = "radix.equinor.com/job-id"
ANNOTATION_BATCH_ID = "radix.equinor.com/batch-id"
ANNOTATION_BATCH_INDEX = "radix.equinor.com/batch-index"
# A stop is a suspended Job with this annotation: Kubernetes terminates its pods, keeps the Job,
# and forgets when it started, which the second annotation remembers.
ANNOTATION_STOPPED_AT = "radix.equinor.com/stopped-at"
ANNOTATION_STARTED_AT = "radix.equinor.com/started-at"
# Created and not yet committed (a label, so a restarted scheduler can list just these), and the
# time after which whoever finds it may finish or remove it.
LABEL_PENDING = "radix.equinor.com/pending"
ANNOTATION_COMMIT_DEADLINE = "radix.equinor.com/commit-deadline"
# A restarted job's Job replaces the one before: when, the attempts of the runs before it (JSON),
# and when the job was first created.
ANNOTATION_RESTARTED_AT = "radix.equinor.com/restarted-at"
ANNOTATION_PREVIOUS_ATTEMPTS = "radix.equinor.com/previous-attempts"
ANNOTATION_CREATED_AT = "radix.equinor.com/created-at"
# A restart under way (a ConfigMap holding the replacement Job), which is no batch.
LABEL_RESTART = "radix.equinor.com/restart"
# On a Job a restart has taken hold of (its value the restart's time): no delete or other restart
# may touch it, and its deletion is the restart's, not the job's end.
ANNOTATION_REPLACED_BY = "radix.equinor.com/replaced-by-restart"
# A job held until its start time (`startAfter`, kept once it has started; the Job is born
# suspended and started then), and its waiting timeout (`waitingTimeoutSeconds`).
ANNOTATION_START_AFTER = "radix.equinor.com/start-after"
ANNOTATION_WAITING_TIMEOUT = "radix.equinor.com/waiting-timeout-seconds"
# A job given up on for waiting too long: when, and why (its status message). It is suspended,
# which removes its pods.
ANNOTATION_GAVE_UP_AT = "radix.equinor.com/waiting-timed-out-at"
ANNOTATION_GAVE_UP = "radix.equinor.com/waiting-timed-out"
# A single job's anchor (a ConfigMap), which is no batch either.
LABEL_ANCHOR = "radix.equinor.com/anchor"
# What a job's record keeps of each attempt of its current run: its status on the Job, one
# annotation per attempt (this prefix and its pod's name); its log and result in a ConfigMap
# the Job owns (`attempts.py`), which is no batch either.
ANNOTATION_ATTEMPT_PREFIX = "attempts.radix.equinor.com/"
LABEL_ATTEMPTS = "radix.equinor.com/attempts"
ANCHOR_SUFFIX = "-anchor"
PAYLOAD_KEY = "payload"
PAYLOAD_VOLUME = "job-payload"
CONTAINER_NAME_FALLBACK = "job"
# Kubernetes adds this label to every pod of a Job; the per-job Service selects on it.
POD_JOB_NAME_LABEL = "job-name"


def identity_labels(identity: Identity) -> dict[str, str]:
    return {
        LABEL_APP: identity.app,
        LABEL_COMPONENT: identity.component,
        LABEL_JOB_TYPE: JOB_TYPE,
    }


def label_selector(identity: Identity) -> str:
    """Selects exactly this scheduler's Jobs and Pods (another scheduler's share the namespace)."""
    return ",".join(f"{key}={value}" for key, value in identity_labels(identity).items())


def payload_secret_name(job_name: str) -> str:
    return f"{job_name}-payload"


def job_pods_selector(identity: Identity, job_name: str) -> str:
    """The pods of one of this scheduler's jobs."""
    return f"{label_selector(identity)},{POD_JOB_NAME_LABEL}={job_name}"


def anchor_name(job_name: str) -> str:
    return f"{job_name}{ANCHOR_SUFFIX}"


def has_anchor(request: JobRequest) -> bool:
    """A single job that owns a payload Secret or a Service holds them through an anchor (a
    batch's job through its batch record); a job with neither has nothing to hand over."""
    return request.batch_name is None and (request.payload is not None or bool(request.ports))


def pending_selector(identity: Identity) -> str:
    """This scheduler's objects that were created and never committed."""
    return f"{label_selector(identity)},{LABEL_PENDING}=true"


def _owner_reference(
    name: str, uid: str, *, kind: str = "Job", api_version: str = "batch/v1"
) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


# A Job waiting for its commit is held with parallelism 0: the Job controller makes no pod for it.
# (Born suspended instead, each job cost the API server two more status writes and two Events, a
# Suspended and a Resumed.) A Radix job runs one pod at a time.
HELD_PODS, RUNNING_PODS = 0, 1


def _pending_marks(deadline: datetime | None) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations of an object not yet committed (none when it is born committed)."""
    if deadline is None:
        return {}, {}
    # Rounded up, so the grace is never shorter than configured.
    return {LABEL_PENDING: "true"}, {ANNOTATION_COMMIT_DEADLINE: whole_seconds_up(deadline)}


def whole_seconds_up(moment: datetime) -> str:
    """A time as an annotation holds it, in whole seconds, rounded up (a deadline never comes
    early, a job never starts before its start time)."""
    whole = moment.replace(microsecond=0)
    if whole < moment:
        whole += timedelta(seconds=1)
    return rfc3339(whole) or ""


def commit_patch(start: bool = True) -> dict[str, Any]:
    """Clears the pending marks (and, for a Job, lets it start): the one write that commits."""
    patch: dict[str, Any] = {
        "metadata": {
            "labels": {LABEL_PENDING: None},
            "annotations": {ANNOTATION_COMMIT_DEADLINE: None},
        }
    }
    if start:
        patch["spec"] = {"parallelism": RUNNING_PODS}
    return patch


def start_patch(resource_version: str) -> dict[str, Any]:
    """Starts a held Job, on condition that it has not changed since it was read."""
    return {"metadata": {"resourceVersion": resource_version}, "spec": {"suspend": False}}


def give_up_patch(resource_version: str, now: datetime, message: str) -> dict[str, Any]:
    """Fails a Job that waited too long: suspended (its pods go), saying when and why; on
    condition that it has not changed since it was read."""
    annotations = {ANNOTATION_GAVE_UP_AT: rfc3339(now), ANNOTATION_GAVE_UP: message}
    return {
        "metadata": {"resourceVersion": resource_version, "annotations": annotations},
        "spec": {"suspend": True},
    }


def stop_patch(now: datetime, started: datetime | None) -> dict[str, Any]:
    annotations = {ANNOTATION_STOPPED_AT: rfc3339(now)}
    if started is not None:
        annotations[ANNOTATION_STARTED_AT] = rfc3339(started)
    return {"metadata": {"annotations": annotations}, "spec": {"suspend": True}}


def build_batch_record(
    identity: Identity, batch: BatchRequest, deadline: datetime
) -> dict[str, Any]:
    """The batch's own object: its Jobs are owned by it, so deleting it deletes the batch, and
    clearing its pending mark is the single write that commits the whole batch."""
    pending_labels, pending_annotations = _pending_marks(deadline)
    annotations = dict(pending_annotations)
    if batch.batch_id is not None:
        annotations[ANNOTATION_BATCH_ID] = batch.batch_id
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": batch.name,
            "labels": {
                **identity_labels(identity),
                LABEL_BATCH_NAME: batch.name,
                **pending_labels,
            },
            "annotations": annotations,
        },
        "data": {"jobs": str(len(batch.jobs))},
    }


def configmap_owner(name: str, uid: str) -> dict[str, Any]:
    """A batch record, or a single job's anchor, as the owner of what it holds."""
    return _owner_reference(name, uid, kind="ConfigMap", api_version="v1")


def job_owner(name: str, uid: str) -> dict[str, Any]:
    return _owner_reference(name, uid)


def _env(identity: Identity, request: JobRequest) -> list[dict[str, str]]:
    values = {
        **request.env,
        "RADIX_JOB_NAME": request.name,
        "RADIX_APP": identity.app,
        "RADIX_ENVIRONMENT": identity.environment,
        "RADIX_COMPONENT": identity.component,
    }
    return [{"name": name, "value": value} for name, value in values.items()]


def _container(identity: Identity, request: JobRequest) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": identity.component or CONTAINER_NAME_FALLBACK,
        "image": request.image,
        "imagePullPolicy": "Always",
        "env": _env(identity, request),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if request.command is not None:
        container["command"] = list(request.command)
    if request.args is not None:
        container["args"] = list(request.args)
    if request.ports:
        container["ports"] = [
            {"name": p.name, "containerPort": p.port, "protocol": "TCP"} for p in request.ports
        ]
    resources: dict[str, dict[str, str]] = {}
    if request.requests:
        resources["requests"] = dict(request.requests)
    limits = {**request.limits, **gpu_limits(request.node)}
    if limits:
        resources["limits"] = limits
    if resources:
        container["resources"] = resources
    if request.payload_path is not None:
        container["volumeMounts"] = [
            {"name": PAYLOAD_VOLUME, "mountPath": request.payload_path, "readOnly": True}
        ]
    return container


def _job_labels(identity: Identity, request: JobRequest) -> dict[str, str]:
    labels = {**identity_labels(identity), LABEL_JOB_NAME: request.name}
    if request.batch_name is not None:
        labels[LABEL_BATCH_NAME] = request.batch_name
    if request.schedule is not None:
        labels[LABEL_SCHEDULE] = request.schedule
    return labels


def build_job(
    identity: Identity,
    request: JobRequest,
    *,
    deadline: datetime | None = None,
    owner: dict[str, Any] | None = None,
    now: datetime | None = None,
    assembly: Assembly | None = None,
) -> dict[str, Any]:
    """The Job; with a `deadline` it is born held (no pods) and pending until committed. One
    whose `start_after` is later than `now` is born suspended, until a starter starts it. A
    payload in parts (`payloads.is_split`) needs its `assembly` (`Assembly.of`)."""
    labels = _job_labels(identity, request)
    annotations = {ANNOTATION_JOB_ID: request.job_id} if request.job_id is not None else {}
    if request.batch_id is not None:
        annotations[ANNOTATION_BATCH_ID] = request.batch_id
    if request.batch_index is not None:
        annotations[ANNOTATION_BATCH_INDEX] = str(request.batch_index)
    job_annotations: dict[str, str] = {}
    if request.waiting_timeout_seconds is not None:
        job_annotations[ANNOTATION_WAITING_TIMEOUT] = str(request.waiting_timeout_seconds)
    held_until = request.start_after
    if held_until is not None and now is not None and held_until <= now:
        held_until = None  # its time has come: it starts at once
    if held_until is not None:
        job_annotations[ANNOTATION_START_AFTER] = whole_seconds_up(held_until)
    pending_labels, pending_annotations = _pending_marks(deadline)
    pod_security: dict[str, Any] = {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if request.run_as_user is not None:
        pod_security["runAsUser"] = request.run_as_user
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": pod_security,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [_container(identity, request)],
    }
    if request.node is not None or request.runtime is not None:
        # Radix's node pools, node types and GPU nodes; a job that asks for none of them may run
        # on any node (Radix would still pin it to its job node pool, which few clusters have).
        pod_spec.update(pod_placement(request.node, request.runtime))
    if request.payload_path is not None and is_split(request.payload):
        if assembly is None:
            raise ValueError("a payload above one Secret's capacity needs its assembly")
        pod_spec["volumes"] = assembly.volumes(request.name, PAYLOAD_VOLUME, PAYLOAD_KEY)
        pod_spec["initContainers"] = [
            assembly.init_container(pod_spec["containers"][0], PAYLOAD_VOLUME)
        ]
    elif request.payload_path is not None:
        pod_spec["volumes"] = [
            {
                "name": PAYLOAD_VOLUME,
                "secret": {
                    "secretName": payload_secret_name(request.name),
                    "items": [{"key": PAYLOAD_KEY, "path": PAYLOAD_KEY}],
                    "defaultMode": 0o444,
                },
            }
        ]
    spec: dict[str, Any] = {
        "backoffLimit": request.backoff_limit,
        "activeDeadlineSeconds": request.time_limit_seconds,
        "template": {
            "metadata": {"labels": labels, "annotations": dict(annotations)},
            "spec": pod_spec,
        },
    }
    if request.failure_rules:
        spec["podFailurePolicy"] = {
            "rules": [
                {
                    "action": rule.action,
                    "onExitCodes": {"operator": rule.operator, "values": list(rule.values)},
                }
                for rule in request.failure_rules
            ]
        }
    if deadline is not None:
        spec["parallelism"] = HELD_PODS
    if held_until is not None:
        # Suspended, not held (parallelism 0): the Job controller starts the clock of its time
        # limit (activeDeadlineSeconds) when it is resumed, not now.
        spec["suspend"] = True
    metadata: dict[str, Any] = {
        "name": request.name,
        "labels": {**labels, **pending_labels},
        "annotations": {**annotations, **job_annotations, **pending_annotations},
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def build_anchor(identity: Identity, request: JobRequest, job_uid: str) -> dict[str, Any]:
    """A single job's anchor: owned by its Job, it owns the job's payload Secret and Service.
    A restart replaces the Job and gives the anchor the new one as its owner (a ConfigMap patch);
    the Secret and the Service are never written again, so the Role needs no patch on them."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": anchor_name(request.name),
            "labels": {**_job_labels(identity, request), LABEL_ANCHOR: "true"},
            "ownerReferences": [job_owner(request.name, job_uid)],
        },
    }


def build_payload_secret(
    identity: Identity, request: JobRequest, owner: dict[str, Any]
) -> dict[str, Any] | None:
    """`owner`: the job's anchor, or its batch record (`configmap_owner`). None for a job
    without a payload, or whose payload goes in parts (`build_payload_part`)."""
    if request.payload is None or is_split(request.payload):
        return None
    return _secret(identity, request, owner, payload_secret_name(request.name), request.payload)


def build_payload_part(
    identity: Identity,
    request: JobRequest,
    owner: dict[str, Any],
    index: int,
    part: memoryview,
) -> dict[str, Any]:
    """Part `index` of a payload in parts (`payloads.parts`), held and owned as the one payload
    Secret of a smaller payload is."""
    return _secret(identity, request, owner, part_secret_name(request.name, index), part)


def _secret(
    identity: Identity,
    request: JobRequest,
    owner: dict[str, Any],
    name: str,
    payload: bytes | memoryview,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "labels": _job_labels(identity, request),
            "ownerReferences": [owner],
        },
        "type": "Opaque",
        # The payload never changes; immutable Secrets also spare the kubelet a watch.
        "immutable": True,
        "data": {PAYLOAD_KEY: base64.b64encode(payload).decode("ascii")},
    }


def build_service(
    identity: Identity, request: JobRequest, owner: dict[str, Any]
) -> dict[str, Any] | None:
    """`owner`: the job's anchor, or its batch record (`configmap_owner`)."""
    if not request.ports:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": request.name,
            "labels": _job_labels(identity, request),
            "ownerReferences": [owner],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {POD_JOB_NAME_LABEL: request.name},
            "ports": [
                {"name": p.name, "port": p.port, "targetPort": p.port, "protocol": "TCP"}
                for p in request.ports
            ],
        },
    }
