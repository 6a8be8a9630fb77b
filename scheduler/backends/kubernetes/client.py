"""The Kubernetes backend: the only module that imports the `kubernetes` client.

It uses the official asyncio client (`kubernetes.aio`) for configuration, auth and transport, and
reads raw JSON (the `*_without_preload_content` calls) so list, watch and create share one parser
and a watch of thousands of objects does not build thousands of client models.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes.aio import client as k8s
from kubernetes.aio import config as k8s_config
from kubernetes.aio.config.config_exception import ConfigException

from scheduler.backends.base import Identity, JobRecord, JobRequest, Kind, Record, WatchEvent
from scheduler.backends.kubernetes.manifests import (
    build_job,
    build_payload_secret,
    build_service,
    label_selector,
)
from scheduler.backends.kubernetes.records import job_record, pod_record
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

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 30.0
LIST_PAGE_SIZE = 500
# The server ends each watch after this long (plus jitter, so replicas do not reconnect in step);
# the client-side timeout must be longer.
WATCH_SERVER_TIMEOUT_SECONDS = 240
WATCH_CLIENT_TIMEOUT_SECONDS = 330.0

_ERRORS_BY_STATUS: dict[int, type[SchedulerError]] = {
    400: InvalidError,
    404: NotFoundError,
    409: ConflictError,
    410: ResourceExpiredError,
    422: InvalidError,
}


def _error_for(status: int, body: bytes) -> SchedulerError:
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
                raise _error_for(response.status, body)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise BackendUnavailableError(f"the Kubernetes API cannot be reached: {exc!r}") from exc
    result: dict[str, Any] = json.loads(body)
    return result


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


class KubernetesBackend:
    """Runs each job as a batch/v1 Job, with its payload Secret and Service owned by the Job."""

    def __init__(
        self,
        identity: Identity,
        kubeconfig: Path | None = None,
        configuration: k8s.Configuration | None = None,
    ) -> None:
        self.identity = identity
        self._kubeconfig = kubeconfig
        self._configuration = configuration
        self._selector = label_selector(identity)
        self._namespace = identity.namespace
        self._api: k8s.ApiClient | None = None

    async def start(self) -> None:
        configuration = self._configuration or await load_configuration(self._kubeconfig)
        self._api = k8s.ApiClient(configuration)
        self._batch = k8s.BatchV1Api(self._api)
        self._core = k8s.CoreV1Api(self._api)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()  # type: ignore[no-untyped-call]

    async def create_job(self, request: JobRequest) -> JobRecord:
        created = await _json(
            self._batch.create_namespaced_job_without_preload_content(
                self._namespace,
                k8s.V1Job.model_validate(build_job(self.identity, request)),
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        )
        uid = created["metadata"]["uid"]
        try:
            await self._create_owned(request, uid)
        except BaseException:
            # Secret and Service are owned by the Job: deleting it takes whatever was created.
            await asyncio.shield(self._roll_back(request.name, uid))
            raise
        return job_record(created)

    async def _create_owned(self, request: JobRequest, job_uid: str) -> None:
        calls = []
        secret = build_payload_secret(self.identity, request, job_uid)
        if secret is not None:
            calls.append(
                _json(
                    self._core.create_namespaced_secret_without_preload_content(
                        self._namespace,
                        k8s.V1Secret.model_validate(secret),
                        _request_timeout=REQUEST_TIMEOUT_SECONDS,
                    )
                )
            )
        service = build_service(self.identity, request, job_uid)
        if service is not None:
            calls.append(
                _json(
                    self._core.create_namespaced_service_without_preload_content(
                        self._namespace,
                        k8s.V1Service.model_validate(service),
                        _request_timeout=REQUEST_TIMEOUT_SECONDS,
                    )
                )
            )
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _roll_back(self, name: str, uid: str) -> None:
        try:
            await self.delete_job(name, uid)
        except NotFoundError:
            pass
        except SchedulerError as exc:
            log.error(
                "could not roll back a half-created job; its pod cannot start without its "
                "payload and the job will fail at its deadline",
                extra={"job_name": name, "error": exc.message},
            )

    async def delete_job(self, name: str, uid: str) -> None:
        body = k8s.V1DeleteOptions(
            # Pods, the payload Secret and the Service go with the Job (Jobs orphan by default).
            propagation_policy="Background",
            # Never delete a namesake that is not the job we know.
            preconditions=k8s.V1Preconditions(uid=uid),
        )
        try:
            await _json(
                self._batch.delete_namespaced_job_without_preload_content(
                    name, self._namespace, body=body, _request_timeout=REQUEST_TIMEOUT_SECONDS
                )
            )
        except ConflictError as exc:
            raise NotFoundError(f"job {name} not found") from exc

    def _list_call(self, kind: Kind) -> Any:
        if kind is Kind.JOB:
            return self._batch.list_namespaced_job_without_preload_content
        return self._core.list_namespaced_pod_without_preload_content

    @staticmethod
    def _record(kind: Kind, obj: dict[str, Any]) -> Record:
        return job_record(obj) if kind is Kind.JOB else pod_record(obj)

    async def list_records(self, kind: Kind) -> tuple[list[Record], str]:
        records: list[Record] = []
        token: str | None = None
        while True:
            page = await _json(
                self._list_call(kind)(
                    self._namespace,
                    label_selector=self._selector,
                    limit=LIST_PAGE_SIZE,
                    _continue=token,
                    _request_timeout=REQUEST_TIMEOUT_SECONDS,
                )
            )
            records.extend(self._record(kind, item) for item in page.get("items") or ())
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            if not token:
                return records, str(metadata.get("resourceVersion", ""))

    async def watch_records(self, kind: Kind, resource_version: str) -> AsyncIterator[WatchEvent]:
        try:
            response = await self._list_call(kind)(
                self._namespace,
                label_selector=self._selector,
                watch=True,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SERVER_TIMEOUT_SECONDS + random.randint(0, 60),
                _request_timeout=WATCH_CLIENT_TIMEOUT_SECONDS,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise BackendUnavailableError(f"the Kubernetes API cannot be reached: {exc!r}") from exc
        async with response:
            if response.status >= 400:
                raise _error_for(response.status, await response.read())
            try:
                async for line in response.content:
                    if line.strip():
                        yield self._event(kind, json.loads(line))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise BackendUnavailableError(f"the watch stream broke: {exc!r}") from exc

    def _event(self, kind: Kind, event: dict[str, Any]) -> WatchEvent:
        kind_of_event = event.get("type")
        obj = event.get("object") or {}
        if kind_of_event == "ERROR":
            raise _error_for(int(obj.get("code") or 500), json.dumps(obj).encode())
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        if kind_of_event == "BOOKMARK":
            return WatchEvent("BOOKMARK", version, None)
        if kind_of_event not in ("ADDED", "MODIFIED", "DELETED"):
            raise BackendError(f"unexpected watch event type {kind_of_event!r}")
        return WatchEvent(kind_of_event, version, self._record(kind, obj))
