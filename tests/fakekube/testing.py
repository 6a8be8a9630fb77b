"""Helpers for tests that use the fake: a connected client bundle and manifest builders."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from .fake import FakeKube

JSON = dict[str, Any]
IMAGE = "busybox:1.36"


@dataclass(frozen=True, slots=True)
class Kube:
    fake: FakeKube
    api: client.ApiClient
    batch: client.BatchV1Api
    core: client.CoreV1Api


@asynccontextmanager
async def running_kube(**options: Any) -> AsyncIterator[Kube]:
    """A started FakeKube and the official asyncio client connected to it."""
    async with (
        FakeKube(**options) as fake,
        client.ApiClient(configuration=fake.configuration()) as api,
    ):
        yield Kube(fake, api, client.BatchV1Api(api), client.CoreV1Api(api))


def job_manifest(
    name: str,
    script: str = "sleep 1; exit 0",
    *,
    image: str = IMAGE,
    labels: dict[str, str] | None = None,
    restart_policy: str = "Never",
    container: JSON | None = None,
    pod_spec: JSON | None = None,
    **spec: Any,
) -> JSON:
    """A batch/v1 Job running `sh -c script`, as our scheduler builds them."""
    main = {"name": "main", "image": image, "command": ["sh", "-c", script], **(container or {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "template": {
                "metadata": {"labels": labels or {}},
                "spec": {"restartPolicy": restart_policy, "containers": [main], **(pod_spec or {})},
            },
            **spec,
        },
    }


def secret_manifest(name: str, values: dict[str, str] | None = None, **fields: Any) -> JSON:
    """An Opaque Secret whose `data` holds `values` base64-encoded."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in (values or {}).items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": data,
        **fields,
    }


def configmap_manifest(name: str, data: dict[str, str] | None = None, **fields: Any) -> JSON:
    """A ConfigMap holding `data`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": dict(data or {}),
        **fields,
    }


def owner_reference(owner: Any, *, controller: bool = True) -> JSON:
    """An ownerReference to a stored object, a dict or a client model."""
    if isinstance(owner, dict):
        metadata = owner["metadata"]
        kind, api_version, name, uid = (
            owner["kind"],
            owner["apiVersion"],
            metadata["name"],
            metadata["uid"],
        )
    else:
        kind, api_version = owner.kind, owner.api_version
        name, uid = owner.metadata.name, owner.metadata.uid
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def status_body(error: ApiException) -> JSON:
    """The `Status` an ApiException carries."""
    body: JSON = json.loads(error.body or "{}")
    return body


def condition(obj: JSON | None, kind: str) -> JSON | None:
    """A status condition of a stored object (a dict from FakeKube.get)."""
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            found: JSON = item
            return found
    return None


def has_condition(obj: JSON | None, kind: str) -> bool:
    found = condition(obj, kind)
    return found is not None and found.get("status") == "True"


def phase(obj: JSON | None) -> str | None:
    value = ((obj or {}).get("status") or {}).get("phase")
    return str(value) if value is not None else None
