"""The one seam to the Kubernetes API and the only module that imports the `kubernetes` client.

The official asyncio client (`kubernetes.aio`) loads the configuration (kubeconfig or the pod's
service account), supplies the credentials (refreshed tokens included) and builds the TLS context.
The calls themselves are plain HTTP, JSON bytes in and out, parsed with orjson: on the pool of
`http.py`, and the watches and log streams on an aiohttp session. The generated API methods would
validate every body into the client's models, serialize it back and look up proxy settings in a
thread on each request; at the rate of a batch of 500 jobs that was a third of the scheduler's
CPU. API errors become the scheduler's own errors right here.
"""

from __future__ import annotations

import asyncio
import random
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from kubernetes.aio import client as k8s
from kubernetes.aio import config as k8s_config
from kubernetes.aio.client import rest as k8s_rest
from kubernetes.aio.config.config_exception import ConfigException
from yarl import URL

from scheduler.backends.kubernetes.http import HttpError, HttpPool
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
# Batches make bursts the normal case: at most this many calls are in flight toward the API
# server, each on a pooled keep-alive connection; the rest wait their turn in order. Watches and
# log streams hold their connections for minutes or days, so they have a pool of their own.
CONNECTION_POOL_SIZE = 64
# A pod log streams as long as its container runs (a job's time limit at most); the client's only
# timeout is a total one, so a followed log gets a long one.
LOG_TIMEOUT_SECONDS = 7 * 24 * 3600.0
LOG_CHUNK_BYTES = 64 * 1024
# One watch event of a real Job or Pod is 3.5 to 5.4 KB; a line may be far longer (large objects).
STREAM_BUFFER_BYTES = 2**21
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "job-scheduler"

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


_API_GROUP_PATH = {Resource.JOBS: "/apis/batch/v1"}
# The metrics API (metrics-server's, where the cluster serves it): pods' current usage.
METRICS_API_PATH = "/apis/metrics.k8s.io/v1beta1"


def error_for(status: int, body: bytes) -> SchedulerError:
    try:
        message = str(orjson.loads(body).get("message") or "")
    except (orjson.JSONDecodeError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    message = message or f"HTTP {status}"
    if status in _ERRORS_BY_STATUS:
        return _ERRORS_BY_STATUS[status](message)
    if status in (429, 500, 502, 503, 504):
        return BackendUnavailableError(f"the Kubernetes API answered {status}: {message}")
    return BackendError(f"the Kubernetes API answered {status}: {message}")


# Every object the API server sends carries `metadata.managedFields`, the field ownership of each
# writer: some 40 % of a Job's or Pod's JSON and half the time to parse it, and never read here.
# Kubernetes writes it last in `metadata`, an array of objects without arrays inside, so the
# first "]" after its start ends it: it is cut out before parsing.
_MANAGED_FIELDS = b',"managedFields":['


def parse(body: bytes) -> Any:
    """A JSON answer or watch event, without the objects' `managedFields`."""
    start = body.find(_MANAGED_FIELDS)
    if start == -1:
        return orjson.loads(body)
    kept = []
    position = 0
    while start != -1:
        end = body.find(b"]", start + len(_MANAGED_FIELDS))
        if end == -1:
            return orjson.loads(body)
        kept.append(body[position:start])
        position = end + 1
        start = body.find(_MANAGED_FIELDS, position)
    kept.append(body[position:])
    try:
        return orjson.loads(b"".join(kept))
    except orjson.JSONDecodeError:
        # Not shaped as Kubernetes writes it (a "]" inside a string, say): parse all of it.
        return orjson.loads(body)


def _unreachable(exc: BaseException) -> BackendUnavailableError:
    return BackendUnavailableError(f"the Kubernetes API cannot be reached: {exc!r}")


_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


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


def proxy_for(configuration: Any) -> str | None:
    """The proxy toward the API server: the configuration's, else the environment's
    (`HTTPS_PROXY`, `NO_PROXY`, ...), looked up once rather than on every request."""
    if configuration.proxy:
        return str(configuration.proxy)
    url = URL(configuration.host)
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass(url.host or ""):
        return None
    return proxies.get(url.scheme)


class KubeApi:
    """Namespaced calls on the resources the scheduler uses, dicts in and out."""

    def __init__(
        self, namespace: str, kubeconfig: Path | None = None, configuration: Any = None
    ) -> None:
        self._namespace = namespace
        self._kubeconfig = kubeconfig
        self._configuration: Any = configuration
        self._calls: HttpPool | None = None
        self._streams: aiohttp.ClientSession | None = None
        # The watches' and log streams' own: aiohttp's request options, and the server's origin.
        self._stream_options: dict[str, Any] = {}
        self._streams_origin = ""
        self._paths: dict[Resource, str] = {}
        self._pod_metrics_path = ""

    async def start(self) -> None:
        configuration = self._configuration or await load_configuration(self._kubeconfig)
        self._configuration = configuration
        server = URL(str(configuration.host))
        # A host may carry a path: an API server behind a gateway (Rancher's, say).
        prefix = server.path.rstrip("/")
        self._paths = {
            resource: f"{prefix}{_API_GROUP_PATH.get(resource, '/api/v1')}"
            f"/namespaces/{self._namespace}/{resource.value}"
            for resource in Resource
        }
        self._pod_metrics_path = f"{prefix}{METRICS_API_PATH}/namespaces/{self._namespace}/pods"
        self._streams_origin = str(server.origin())
        # The client's own TLS setup: CA bundle, client certificates, verification switches.
        ssl_context = k8s_rest.RESTClientObject(configuration).ssl_context
        proxy = proxy_for(configuration)
        self._stream_options = {"proxy": proxy}
        if configuration.proxy_headers:
            self._stream_options["proxy_headers"] = configuration.proxy_headers
        if configuration.tls_server_name:
            self._stream_options["server_hostname"] = configuration.tls_server_name
        headers = {"User-Agent": USER_AGENT, "Accept": JSON}
        try:
            self._calls = HttpPool(
                server,
                size=CONNECTION_POOL_SIZE,
                seconds=REQUEST_TIMEOUT_SECONDS,
                ssl_context=ssl_context,
                server_hostname=configuration.tls_server_name or None,
                proxy=None if proxy is None else URL(proxy),
                proxy_headers=configuration.proxy_headers,
                headers=headers,
            )
        except ValueError as exc:
            raise ConfigError(f"the Kubernetes API server {server}: {exc}") from exc
        self._streams = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=ssl_context),
            headers=headers,
            read_bufsize=STREAM_BUFFER_BYTES,
        )

    async def close(self) -> None:
        for pool in (self._calls, self._streams):
            if pool is not None:
                await pool.close()

    async def _headers(self, content_type: str | None = None) -> dict[str, str]:
        """The credentials, from the client's configuration on each call: it refreshes
        expiring tokens (a rotated service-account token, an exec plugin's)."""
        headers: dict[str, str] = {}
        for setting in (await self._configuration.auth_settings()).values():
            if setting["in"] == "header" and setting["value"]:
                headers[setting["key"]] = setting["value"]
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        parsed: bool = True,
    ) -> dict[str, Any]:
        """One call and its JSON answer (`{}` when not `parsed`), with failures mapped to our
        errors."""
        assert self._calls is not None, "KubeApi.start() first"
        data = None if body is None else orjson.dumps(body)
        try:
            status, answer = await self._calls.request(
                method,
                path if params is None else f"{path}?{urlencode(params)}",
                body=data,
                headers=await self._headers(content_type if data is not None else None),
            )
        except HttpError as exc:
            raise _unreachable(exc) from exc
        if status >= 400:
            raise error_for(status, answer)
        if not parsed:
            return {}
        result: dict[str, Any] = parse(answer)
        return result

    async def _open(
        self, path: str, params: dict[str, str], within_seconds: float
    ) -> aiohttp.ClientResponse:
        """A streamed call's response, open; our errors for an unreachable server or an error."""
        assert self._streams is not None, "KubeApi.start() first"
        try:
            response = await self._streams.get(
                self._streams_origin + path,
                params=params,
                headers=await self._headers(),
                timeout=aiohttp.ClientTimeout(total=within_seconds),
                **self._stream_options,
            )
        except _NETWORK_ERRORS as exc:
            raise _unreachable(exc) from exc
        if response.status >= 400:
            async with response:
                raise error_for(response.status, await response.read())
        return response

    def _item(self, resource: Resource, name: str) -> str:
        """The path of one object. A name may come from a client's request: it is quoted, so
        that it stays one path segment of one request line."""
        return f"{self._paths[resource]}/{quote(name, safe='')}"

    async def create(self, resource: Resource, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", self._paths[resource], body=body)

    async def create_unread(self, resource: Resource, body: dict[str, Any]) -> None:
        """A create whose answer nobody reads (a Secret's would be its data again): it is not
        parsed."""
        await self._call("POST", self._paths[resource], body=body, parsed=False)

    async def get(self, resource: Resource, name: str) -> dict[str, Any]:
        return await self._call("GET", self._item(resource, name))

    async def find(self, resource: Resource, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none (a GET's 404)."""
        try:
            return await self.get(resource, name)
        except NotFoundError:
            return None

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: dict[str, Any],
        *,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch: `None` values remove keys. `field_manager` names the writer in
        the object's managedFields (else the API server takes the User-Agent)."""
        params = None if field_manager is None else {"fieldManager": field_manager}
        return await self._call(
            "PATCH",
            self._item(resource, name),
            params=params,
            body=patch,
            content_type=MERGE_PATCH,
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
        options: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": propagation,
        }
        preconditions = {
            key: value
            for key, value in (("uid", uid), ("resourceVersion", resource_version))
            if value
        }
        if preconditions:
            options["preconditions"] = preconditions
        try:
            await self._call("DELETE", self._item(resource, name), body=options)
        except ConflictError as exc:
            raise NotFoundError(f"{resource.value} {name} not found: {exc.message}") from exc

    async def list(
        self, resource: Resource, selector: str, *, limit: int, token: str | None = None
    ) -> dict[str, Any]:
        """One page of a list."""
        params = {"labelSelector": selector, "limit": str(limit)}
        if token:
            params["continue"] = token
        return await self._call("GET", self._paths[resource], params=params)

    async def pod_metrics(self, selector: str) -> dict[str, Any]:
        """The metrics API's PodMetrics of the running pods `selector` selects (their usage
        now); NotFoundError when the cluster does not serve the metrics API."""
        params = {"labelSelector": selector}
        return await self._call("GET", self._pod_metrics_path, params=params)

    async def watch(
        self, resource: Resource, selector: str, resource_version: str
    ) -> AsyncIterator[dict[str, Any] | None]:
        """Raw watch events after `resource_version`; first a None once the stream is open."""
        params = {
            "labelSelector": selector,
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SERVER_TIMEOUT_SECONDS + random.randint(0, 60)),
        }
        response = await self._open(self._paths[resource], params, WATCH_CLIENT_TIMEOUT_SECONDS)
        async with response:
            yield None
            try:
                async for line in response.content:
                    if line.strip():
                        yield parse(line)
            except _NETWORK_ERRORS as exc:
                raise BackendUnavailableError(f"the watch stream broke: {exc!r}") from exc

    async def pod_log(
        self,
        name: str,
        container: str,
        *,
        follow: bool,
        tail_lines: int | None,
        timestamps: bool,
        since_time: str | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """A pod's container log as the API server sends it; first an empty chunk once the
        stream is open. With `follow` it ends when the container does. `since_time` (RFC 3339)
        leaves out the lines the kubelet timed earlier."""
        params = {"container": container}
        if since_time is not None:
            params["sinceTime"] = since_time
        if follow:
            params["follow"] = "true"
        if timestamps:
            params["timestamps"] = "true"
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        url = f"{self._item(Resource.PODS, name)}/log"
        response = await self._open(url, params, LOG_TIMEOUT_SECONDS)
        async with response:
            yield b""
            try:
                async for chunk in response.content.iter_chunked(LOG_CHUNK_BYTES):
                    yield chunk
            except _NETWORK_ERRORS as exc:
                raise BackendUnavailableError(f"the log stream broke: {exc!r}") from exc
