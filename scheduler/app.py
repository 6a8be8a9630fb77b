"""The app factory: wires settings, backend, view, service, watches and pruner into one app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from scheduler.api.errors import error_middleware
from scheduler.api.keys import BACKEND, HEALTH, METRICS, SERVICE, SETTINGS, SWAGGER, VIEW
from scheduler.api.routes import add_routes
from scheduler.backends.base import Backend, Identity, Kind
from scheduler.domain.jobs import JobService
from scheduler.domain.pruning import MIN_PRUNE_INTERVAL_SECONDS, Pruner
from scheduler.health import Health
from scheduler.metrics import Metrics
from scheduler.settings import Settings
from scheduler.store import JobView
from scheduler.swagger import render
from scheduler.watching import watching

# JSON escapes can make a 1 MiB payload several times larger on the wire; the 1 MiB limit on the
# payload itself is checked after parsing, with a clear 413.
MAX_REQUEST_BODY_BYTES = 16 * 1024 * 1024
PRUNE_INTERVAL = web.AppKey("prune_interval_seconds", float)


def identity_of(settings: Settings) -> Identity:
    definition = settings.definition
    return Identity(
        app=definition.app,
        environment=definition.environment,
        component=definition.name,
        namespace=settings.namespace,
    )


def _default_backend(settings: Settings) -> Backend:
    # The only place the Kubernetes backend is chosen; importing it loads the client library.
    from scheduler.backends.kubernetes.client import KubernetesBackend

    return KubernetesBackend(identity_of(settings), kubeconfig=settings.kubeconfig)


async def _background(app: web.Application) -> AsyncIterator[None]:
    backend, view, health, metrics = app[BACKEND], app[VIEW], app[HEALTH], app[METRICS]
    await backend.start()
    service = app[SERVICE]

    def restarted(kind: Kind, reason: str) -> None:
        metrics.watch_restarts.labels(kind.value, reason).inc()
        if reason == "error":
            metrics.api_server_errors.labels("watch").inc()

    pruner = Pruner(
        view,
        service.prune,
        limit=app[SETTINGS].history_limit,
        min_interval_seconds=app[PRUNE_INTERVAL],
        on_pruned=lambda name: metrics.pruned.inc(),
    )
    tasks = [
        asyncio.create_task(
            watching(backend, view, kind, health, restarted), name=f"watching-{kind.value}"
        )
        for kind in Kind
    ]
    tasks.append(asyncio.create_task(pruner.pruning(), name="pruning"))
    # A restarted scheduler prunes what finished while it was away, once its view has synced.
    tasks.append(asyncio.create_task(_prune_after_sync(view, pruner), name="first-prune"))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await backend.close()


async def _prune_after_sync(view: JobView, pruner: Pruner) -> None:
    await view.wait_synced()
    pruner.poke()


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    prune_interval_seconds: float = MIN_PRUNE_INTERVAL_SECONDS,
) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_REQUEST_BODY_BYTES)
    backend = backend or _default_backend(settings)
    view = JobView()
    metrics = Metrics()
    metrics.watch_jobs(view.counts)
    app[SETTINGS] = settings
    app[BACKEND] = backend
    app[VIEW] = view
    app[HEALTH] = Health()
    app[METRICS] = metrics
    app[SERVICE] = JobService(settings.definition, backend, view)
    app[SWAGGER] = render().encode()
    app[PRUNE_INTERVAL] = prune_interval_seconds
    add_routes(app)
    app.cleanup_ctx.append(_background)
    return app
