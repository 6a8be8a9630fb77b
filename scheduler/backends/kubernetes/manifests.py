"""Pure builders of the Kubernetes bodies for one job: Job, payload Secret, Service.

Plain dicts in the API's own field names; no I/O, no client types, so they are table-tested.
"""

from __future__ import annotations

import base64
from typing import Any

from scheduler.backends.base import Identity, JobRequest

LABEL_APP = "radix-app"
LABEL_COMPONENT = "radix-component"
LABEL_JOB_TYPE = "radix-job-type"
LABEL_JOB_NAME = "radix-job-name"
JOB_TYPE = "job-scheduler"
ANNOTATION_JOB_ID = "radix.equinor.com/job-id"
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


def _owner_reference(job_name: str, job_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": job_name,
        "uid": job_uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


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
    if request.limits:
        resources["limits"] = dict(request.limits)
    if resources:
        container["resources"] = resources
    if request.payload_path is not None:
        container["volumeMounts"] = [
            {"name": PAYLOAD_VOLUME, "mountPath": request.payload_path, "readOnly": True}
        ]
    return container


def build_job(identity: Identity, request: JobRequest) -> dict[str, Any]:
    labels = {**identity_labels(identity), LABEL_JOB_NAME: request.name}
    annotations = {ANNOTATION_JOB_ID: request.job_id} if request.job_id is not None else {}
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
    if request.payload_path is not None:
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
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": request.name, "labels": labels, "annotations": annotations},
        "spec": spec,
    }


def build_payload_secret(
    identity: Identity, request: JobRequest, job_uid: str
) -> dict[str, Any] | None:
    if request.payload is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": payload_secret_name(request.name),
            "labels": {**identity_labels(identity), LABEL_JOB_NAME: request.name},
            "ownerReferences": [_owner_reference(request.name, job_uid)],
        },
        "type": "Opaque",
        # The payload never changes; immutable Secrets also spare the kubelet a watch.
        "immutable": True,
        "data": {PAYLOAD_KEY: base64.b64encode(request.payload).decode("ascii")},
    }


def build_service(identity: Identity, request: JobRequest, job_uid: str) -> dict[str, Any] | None:
    if not request.ports:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": request.name,
            "labels": {**identity_labels(identity), LABEL_JOB_NAME: request.name},
            "ownerReferences": [_owner_reference(request.name, job_uid)],
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
