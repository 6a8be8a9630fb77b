"""Helpers for tests that use the fake: a connected client bundle, manifest builders, a raw
watch recorder and the objects recorded from a real API server (reference/)."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes.aio import client
from kubernetes.aio.client.exceptions import ApiException

from .fake import FakeKube

JSON = dict[str, Any]
IMAGE = "busybox:1.36"
REFERENCE = Path(__file__).parent / "reference"


def server_command(kubeconfig: Path, *options: str) -> list[str]:
    """`python -m tests.fakekube` on a free port, writing its kubeconfig, its clock 20x fast."""
    return [
        *(sys.executable, "-m", "tests.fakekube", "--port", "0"),
        *("--kubeconfig", str(kubeconfig), "--time-scale", "0.05", *options),
    ]


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
    annotations: dict[str, str] | None = None,
    restart_policy: str = "Never",
    container: JSON | None = None,
    pod_spec: JSON | None = None,
    **spec: Any,
) -> JSON:
    """A batch/v1 Job running `sh -c script`, as our scheduler builds them; `labels` and
    `annotations` go on the Job and its pod template."""
    main = {"name": "main", "image": image, "command": ["sh", "-c", script], **(container or {})}
    metadata: JSON = {"name": name, "labels": labels or {}}
    template_metadata: JSON = {"labels": labels or {}}
    if annotations:
        metadata["annotations"] = dict(annotations)
        template_metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "template": {
                "metadata": template_metadata,
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


def reference(name: str) -> Any:
    """An object recorded from a real API server (reference/README.md)."""
    return json.loads((REFERENCE / name).read_text())


def reference_events(name: str) -> list[bytes]:
    """The raw lines of a watch recorded from a real API server, one event each."""
    return [line for line in (REFERENCE / name).read_bytes().splitlines() if line]


@asynccontextmanager
async def recorded_watch(
    list_call: Callable[..., Awaitable[aiohttp.ClientResponse]], namespace: str, **params: Any
) -> AsyncIterator[list[bytes]]:
    """Record a watch's event lines, as the server sent them, while the block runs.

    `list_call` is a client's `list_namespaced_*_without_preload_content`; the watch is open
    (the server has registered it) when the block starts.
    """
    response = await list_call(namespace, watch=True, **params)
    lines: list[bytes] = []

    async def read() -> None:
        async for line in response.content:
            if line.strip():
                lines.append(line.rstrip(b"\n"))

    reader = asyncio.get_running_loop().create_task(read())
    try:
        yield lines
    finally:
        reader.cancel()
        with suppress(asyncio.CancelledError):
            await reader
        response.close()
