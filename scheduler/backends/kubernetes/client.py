"""The one seam to the Kubernetes API and the only module that imports the `kubernetes` client.

It uses the official asyncio client (`kubernetes.aio`) for configuration, auth and transport, and
reads raw JSON (the `*_without_preload_content` calls): plain dicts go in and out, so list, watch
and create share one parser and a watch of thousands of objects builds no client models. API
errors become the scheduler's own errors right here.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes.aio import client as k8s
from kubernetes.aio import config as k8s_config
from kubernetes.aio.config.config_exception import ConfigException

from scheduler.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    InvalidError,
    NotFoundError,
    ResourceExpiredError,
    SchedulerError,
)

REQUEST_TIMEOUT_SECONDS = 30.0
# The server ends each watch after this long (plus jitter, so replicas do not reconnect in step);
# the client-side timeout must be longer.
WATCH_SERVER_TIMEOUT_SECONDS = 240
WATCH_CLIENT_TIMEOUT_SECONDS = 330.0
# Batches make bursts the normal case: enough pooled connections for the creates in flight.
CONNECTION_POOL_SIZE = 64
# A pod log streams as long as its container runs (a job's time limit at most); the client's only
# timeout is a total one, so a followed log gets a long one.
LOG_TIMEOUT_SECONDS = 7 * 24 * 3600.0
LOG_CHUNK_BYTES = 64 * 1024
MERGE_PATCH = "application/merge-patch+json"

_ERRORS_BY_STATUS: dict[int, type[SchedulerError]] = {
    400: InvalidError,
    404: NotFoundError,
    409: ConflictError,
    410: ResourceExpiredError,
    422: InvalidError,
}


class Resource(Enum):
    JOBS = "jobs"
    PODS = "pods"
    SECRETS = "secrets"
    SERVICES = "services"
    CONFIGMAPS = "configmaps"


@dataclass(frozen=True, slots=True)
class _Calls:
    """The typed client's method names and model for one resource."""

    api: str  # "batch" | "core"
    suffix: str  # create_namespaced_<suffix>_without_preload_content, ...
    model: str  # the client's model class for create bodies


_CALLS = {
    Resource.JOBS: _Calls("batch", "job", "V1Job"),
    Resource.PODS: _Calls("core", "pod", "V1Pod"),
    Resource.SECRETS: _Calls("core", "secret", "V1Secret"),
    Resource.SERVICES: _Calls("core", "service", "V1Service"),
    Resource.CONFIGMAPS: _Calls("core", "config_map", "V1ConfigMap"),
}


def error_for(status: int, body: bytes) -> SchedulerError:
    try:
        message = str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    message = message or f"HTTP {status}"
    if status in _ERRORS_BY_STATUS:
        return _ERRORS_BY_STATUS[status](message)
    if status in (429, 500, 502, 503, 504):
        return BackendUnavailableError(f"the Kubernetes API answered {status}: {message}")
    return BackendError(f"the Kubernetes API answered {status}: {message}")


async def _json(call: Awaitable[aiohttp.ClientResponse]) -> dict[str, Any]:
    """Await one API call and return its JSON body, mapping failures to our errors."""
    try:
        response = await call
        async with response:
            body = await response.read()
            if response.status >= 400:
                raise error_for(response.status, body)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise BackendUnavailableError(f"the Kubernetes API cannot be reached: {exc!r}") from exc
    result: dict[str, Any] = json.loads(body)
    return result


async def _opened(call: Awaitable[aiohttp.ClientResponse]) -> aiohttp.ClientResponse:
    """A streamed call's response, open; our errors for an unreachable server or an error."""
    try:
        response = await call
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise BackendUnavailableError(f"the Kubernetes API cannot be reached: {exc!r}") from exc
    if response.status >= 400:
        async with response:
            raise error_for(response.status, await response.read())
    return response


async def load_configuration(kubeconfig: Path | None) -> k8s.Configuration:
    configuration = k8s.Configuration()
    if kubeconfig is not None and not await asyncio.to_thread(kubeconfig.is_file):
        # The client would say "Expected key current-context", which hides the real problem.
        raise ConfigError(f"kubeconfig {kubeconfig}: no such file")
    try:
        if kubeconfig is not None:
            await k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), client_configuration=configuration
            )
        else:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "in-cluster service account"
        raise ConfigError(f"{where}: cannot load Kubernetes credentials: {exc}") from exc
    return configuration


class KubeApi:
    """Namespaced calls on the resources the scheduler uses, dicts in and out."""

    def __init__(
        self, namespace: str, kubeconfig: Path | None = None, configuration: Any = None
    ) -> None:
        self._namespace = namespace
        self._kubeconfig = kubeconfig
        self._configuration: k8s.Configuration | None = configuration
        self._api: k8s.ApiClient | None = None
        self._apis: dict[str, Any] = {}

    async def start(self) -> None:
        configuration = self._configuration or await load_configuration(self._kubeconfig)
        configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
        self._api = k8s.ApiClient(configuration)
        self._apis = {"batch": k8s.BatchV1Api(self._api), "core": k8s.CoreV1Api(self._api)}

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()  # type: ignore[no-untyped-call]

    def _method(self, verb: str, resource: Resource) -> Any:
        calls = _CALLS[resource]
        return getattr(
            self._apis[calls.api], f"{verb}_namespaced_{calls.suffix}_without_preload_content"
        )

    async def create(self, resource: Resource, body: dict[str, Any]) -> dict[str, Any]:
        model = getattr(k8s, _CALLS[resource].model)
        return await _json(
            self._method("create", resource)(
                self._namespace,
                model.model_validate(body),
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        )

    async def get(self, resource: Resource, name: str) -> dict[str, Any]:
        return await _json(
            self._method("read", resource)(
                name, self._namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS
            )
        )

    async def patch(self, resource: Resource, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch: `None` values remove keys."""
        return await _json(
            self._method("patch", resource)(
                name,
                self._namespace,
                patch,
                _content_type=MERGE_PATCH,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: str = "Background",
    ) -> None:
        """Delete with Background propagation (what the object owns goes with it; `Orphan`
        keeps it); with `uid` or `resource_version`, only if the object is still that one (else
        NotFoundError)."""
        preconditions = None
        if uid or resource_version:
            preconditions = k8s.V1Preconditions(uid=uid, resource_version=resource_version)
        body = k8s.V1DeleteOptions(propagation_policy=propagation, preconditions=preconditions)
        try:
            await _json(
                self._method("delete", resource)(
                    name, self._namespace, body=body, _request_timeout=REQUEST_TIMEOUT_SECONDS
                )
            )
        except ConflictError as exc:
            raise NotFoundError(f"{resource.value} {name} not found: {exc.message}") from exc

    async def list(
        self, resource: Resource, selector: str, limit: int, token: str | None = None
    ) -> dict[str, Any]:
        """One page of a list."""
        return await _json(
            self._method("list", resource)(
                self._namespace,
                label_selector=selector,
                limit=limit,
                _continue=token,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        )

    async def watch(
        self, resource: Resource, selector: str, resource_version: str
    ) -> AsyncIterator[dict[str, Any] | None]:
        """Raw watch events after `resource_version`; first a None once the stream is open."""
        response = await _opened(
            self._method("list", resource)(
                self._namespace,
                label_selector=selector,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SERVER_TIMEOUT_SECONDS + random.randint(0, 60),
                _request_timeout=WATCH_CLIENT_TIMEOUT_SECONDS,
            )
        )
        async with response:
            yield None
            try:
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise BackendUnavailableError(f"the watch stream broke: {exc!r}") from exc

    async def pod_log(
        self,
        name: str,
        container: str,
        *,
        follow: bool,
        tail_lines: int | None,
        timestamps: bool,
    ) -> AsyncGenerator[bytes, None]:
        """A pod's container log as the API server sends it; first an empty chunk once the
        stream is open. With `follow` it ends when the container does."""
        response = await _opened(
            self._apis["core"].read_namespaced_pod_log_without_preload_content(
                name,
                self._namespace,
                container=container,
                follow=follow,
                tail_lines=tail_lines,
                timestamps=timestamps,
                _request_timeout=LOG_TIMEOUT_SECONDS,
            )
        )
        async with response:
            yield b""
            try:
                async for chunk in response.content.iter_chunked(LOG_CHUNK_BYTES):
                    yield chunk
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise BackendUnavailableError(f"the log stream broke: {exc!r}") from exc
