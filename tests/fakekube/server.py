"""The HTTP surface: kube-apiserver's REST paths for the served kinds, over aiohttp.

Handlers only translate HTTP to registry calls and back; one middleware turns ApiError into a
`Status` response, one applies injected faults, and a response hook records the audit log.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import errors as e
from .audit import AuditEntry, ResourcePath, audit_entry, is_watch, parse_path
from .discovery import SUBRESOURCES, api_groups, api_resources, api_versions, health, version
from .faults import Faults
from .kinds import POD, Kind, kind_for
from .kubelet import Kubelet
from .managedfields import manager_from
from .metrics import GROUP_VERSION, METRICS, PodMetricsServer
from .options import DeleteOptions, Page
from .registry import Registry
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .storage import Record
from .watching import Watches, WatchRequest

log = logging.getLogger(__name__)

JSON = dict[str, Any]

LOG_POLL_SECONDS = 0.05  # how often a followed log checks for new lines


@dataclass(frozen=True, slots=True)
class Backend:
    registry: Registry
    watches: Watches
    kubelet: Kubelet
    faults: Faults
    record_audit: Callable[[AuditEntry], None]
    metrics: PodMetricsServer


BACKEND = web.AppKey("backend", Backend)


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def status_response(error: e.ApiError) -> web.Response:
    body = json.dumps(error.status()).encode()
    response = json_response(body, error.code)
    response.headers.update(error.headers)
    return response


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except e.ApiError as error:
        return status_response(error)
    except web.HTTPException:
        raise
    except Exception as exc:  # a bug in the fake: answer like a real server, but say so
        log.exception("fake API server failed on %s %s", request.method, request.path_qs)
        return status_response(e.ApiError(500, "InternalError", f"fake server error: {exc!r}"))


@web.middleware
async def faults_middleware(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    faults = request.app[BACKEND].faults
    verdict = faults.judge(request.method, request.path_qs)
    if verdict.waits:
        # A held request has arrived whole (aiohttp keeps the body for the handler), so it
        # still lands if its client dies while it waits, as on a real server.
        await request.read()
    if not await faults.admit(verdict):
        # The fake is stopping: close the connection unanswered, as a server going away does.
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=503)
    if verdict.error is not None:
        raise verdict.error
    response: web.StreamResponse = await handler(request)
    return response


async def _record_audit(request: web.Request, response: web.StreamResponse) -> None:
    entry = audit_entry(request.method, request.path, request.query.get("watch"), response.status)
    request.app[BACKEND].record_audit(entry)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise e.bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc


def _manager(request: web.Request) -> str:
    return manager_from(request.query.get("fieldManager"), request.headers.get("User-Agent"))


def _int_param(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError as exc:
        raise e.bad_request(f'{name}: Invalid value: "{value}": must be an integer') from exc


def _selectors(request: web.Request, kind: Kind) -> tuple[Any, Any]:
    try:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), kind.field_labels)
    except SelectorError as exc:
        raise e.bad_request(str(exc)) from exc
    return labels, fields


def _list_body(kind: Kind, page: Page) -> bytes:
    metadata: JSON = {"resourceVersion": str(page.resource_version)}
    if page.continue_token:
        metadata["continue"] = page.continue_token
        metadata["remainingItemCount"] = page.remaining
    head = json.dumps(
        {"kind": kind.list_kind, "apiVersion": kind.api_version, "metadata": metadata}
    )
    items = b",".join(record.item_json() for record in page.records)
    return head[:-1].encode() + b',"items":[' + items + b"]}"


def _deleted_body(record: Record, removed: bool) -> bytes:
    if not removed or record.kind.returns_deleted_object:
        return record.full_json()
    details: JSON = {"name": record.name}
    if record.kind.group:
        details["group"] = record.kind.group
    details.update({"kind": record.kind.plural, "uid": record.uid})
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }
    return json.dumps(status).encode()


class ResourceHandler:
    """Dispatches `/api/v1/...` and `/apis/{group}/{version}/...` to the registry."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = parse_path(request.path)
        kind = kind_for(path.group, path.version, path.resource) if path else None
        if path is None or kind is None:
            raise e.not_found_path()
        if (kind.namespaced and path.namespace is None and path.name is not None) or (
            not kind.namespaced and path.namespace is not None
        ):
            raise e.not_found_path()
        if path.subresource and kind.name not in SUBRESOURCES.get(path.subresource, ()):
            raise e.not_found_path()
        backend = request.app[BACKEND]
        if path.name is None:
            return await self._collection(request, backend, kind, path)
        return await self._item(request, backend, kind, path, path.name)

    async def _collection(
        self, request: web.Request, backend: Backend, kind: Kind, path: ResourcePath
    ) -> web.StreamResponse:
        namespace = path.namespace if kind.namespaced else ""
        labels, fields = _selectors(request, kind)
        dry_run = bool(request.query.get("dryRun"))
        if request.method == "GET":
            if is_watch(request.query.get("watch")):
                timeout = _int_param(request, "timeoutSeconds")
                watch = WatchRequest(
                    kind,
                    path.namespace,
                    labels,
                    fields,
                    resource_version=_int_param(request, "resourceVersion"),
                    bookmarks=request.query.get("allowWatchBookmarks", "").lower() == "true",
                    timeout_seconds=float(timeout) if timeout else None,
                    send_initial_events=request.query.get("sendInitialEvents") == "true",
                )
                return await backend.watches.serve(request, watch)
            page = backend.registry.list(
                kind,
                path.namespace,
                labels,
                fields,
                limit=_int_param(request, "limit"),
                continue_token=request.query.get("continue"),
            )
            return json_response(_list_body(kind, page))
        if namespace is None:
            raise e.method_not_allowed(request.method)
        if request.method == "POST":
            created = backend.registry.create(
                kind, namespace, await _body(request), dry_run=dry_run, manager=_manager(request)
            )
            return json_response(created.full_json(), 201)
        if request.method == "DELETE":
            options = DeleteOptions.parse(await _body(request), request.query)
            page = backend.registry.list(kind, namespace, labels, fields)
            deleted = [
                backend.registry.delete(kind, namespace, r.name, options).record
                for r in page.records
            ]
            return json_response(_list_body(kind, Page(deleted, page.resource_version)))
        raise e.method_not_allowed(request.method)

    async def _item(
        self, request: web.Request, backend: Backend, kind: Kind, path: ResourcePath, name: str
    ) -> web.StreamResponse:
        registry = backend.registry
        namespace = path.namespace or ""
        sub = path.subresource
        dry_run = bool(request.query.get("dryRun"))
        method = request.method
        if sub == "log":
            if method != "GET":
                raise e.method_not_allowed(method)
            return await self._log(request, backend, registry.get(kind, namespace, name))
        if method == "GET":
            return json_response(registry.get(kind, namespace, name).full_json())
        if method == "PUT":
            body = await _body(request)
            record = registry.replace(
                kind,
                namespace,
                name,
                body,
                subresource=sub,
                dry_run=dry_run,
                manager=_manager(request),
            )
            return json_response(record.full_json())
        if method == "PATCH":
            body = await _body(request)
            content_type = request.headers.get("Content-Type", "")
            record = registry.patch(
                kind,
                namespace,
                name,
                body,
                content_type,
                subresource=sub,
                dry_run=dry_run,
                manager=_manager(request),
            )
            return json_response(record.full_json())
        if method == "DELETE" and sub is None:
            options = DeleteOptions.parse(await _body(request), request.query)
            deletion = registry.delete(kind, namespace, name, options)
            return json_response(_deleted_body(deletion.record, deletion.removed))
        raise e.method_not_allowed(method)

    async def _log(self, request: web.Request, backend: Backend, pod: Record) -> web.StreamResponse:
        container = request.query.get("container")
        timestamps = request.query.get("timestamps", "").lower() == "true"
        since = request.query.get("sinceTime")
        text = backend.kubelet.logs(pod, container, timestamps, since)
        tail = _int_param(request, "tailLines")
        if request.query.get("follow", "").lower() != "true":
            return web.Response(text=_tail(text, tail), content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        stream = _FollowedLog(request, response, backend.faults.take_log_cut())
        if not await stream.send(_tail(text, tail)):
            return response
        offset = len(text)
        # Poll the kubelet until the container ends: simple, and a followed log is rare.
        while True:
            current = backend.registry.store.get(POD, pod.namespace, pod.name)
            if current is None or current.uid != pod.uid:
                break
            text = backend.kubelet.logs(current, container, timestamps, since)
            if backend.faults.down or not await stream.send(text[offset:]):
                stream.cut()  # an outage ends the open streams mid-way, as a restart does
                return response
            offset = len(text)
            if backend.kubelet.logs_finished(current):
                break
            await asyncio.sleep(LOG_POLL_SECONDS)
        return response


class _FollowedLog:
    """A followed log's stream, cut after a number of lines when a fault says so."""

    def __init__(
        self, request: web.Request, response: web.StreamResponse, cut: tuple[int, bool] | None
    ) -> None:
        self._request = request
        self._response = response
        self._lines_left: int | None
        self._lines_left, self._clean = cut if cut is not None else (None, False)

    async def send(self, text: str) -> bool:
        """False when the stream was cut on the way."""
        if self._lines_left is not None:
            lines = text.splitlines(keepends=True)
            if len(lines) > self._lines_left:
                kept = "".join(lines[: self._lines_left])
                if not self._clean:
                    kept += lines[self._lines_left][: len(lines[self._lines_left]) // 2]
                await self._response.write(kept.encode())
                self.cut()
                return False
            self._lines_left -= len(lines)
        if text:
            await self._response.write(text.encode())
        return True

    def cut(self) -> None:
        """End the stream: cleanly, or by closing its connection mid-stream."""
        if not self._clean and self._request.transport is not None:
            self._request.transport.close()


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)
    return "".join(kept[-lines:]) if lines > 0 else ""


async def pod_metrics(request: web.Request) -> web.Response:
    """metrics.k8s.io's pods: a list (of a namespace, or of all) or one pod's PodMetrics."""
    metrics = request.app[METRICS]
    namespace = request.match_info.get("namespace")
    name = request.match_info.get("name")
    if name is not None and namespace is not None:
        return web.json_response(metrics.get(namespace, name))
    labels, _ = _selectors(request, POD)
    return web.json_response(metrics.list(namespace, labels))


def create_app(backend: Backend) -> web.Application:
    app = web.Application(
        middlewares=[errors_middleware, faults_middleware], client_max_size=64 * 1024 * 1024
    )
    app[BACKEND] = backend
    app[METRICS] = backend.metrics
    app.on_response_prepare.append(_record_audit)
    app.router.add_get("/version", version)
    for probe in ("/healthz", "/readyz", "/livez"):
        app.router.add_get(probe, health)
    app.router.add_get("/api", api_versions)
    app.router.add_get("/apis", api_groups)
    app.router.add_get("/apis/", api_groups)
    metrics = f"/apis/{GROUP_VERSION}"
    for path in ("/pods", "/namespaces/{namespace}/pods", "/namespaces/{namespace}/pods/{name}"):
        app.router.add_get(metrics + path, pod_metrics)
    # Clients ask for discovery with and without a trailing slash; the real server answers both.
    for prefix in ("/api/{version}", "/apis/{group}/{version}"):
        app.router.add_get(prefix, api_resources)
        app.router.add_get(prefix + "/", api_resources)
    app.router.add_route("*", "/{tail:.*}", ResourceHandler().handle)
    return app
