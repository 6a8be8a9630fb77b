"""The app factory: wires settings, backend, view, service, watches and pruner into one app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from scheduler.api.auth import token_middleware
from scheduler.api.console import add_security_headers
from scheduler.api.errors import SERVER_LOG, error_middleware
from scheduler.api.events import serve_events
from scheduler.api.guard import guard_middleware
from scheduler.api.hosts import OwnHosts, own_hosts_middleware
from scheduler.api.keys import (
    BACKEND,
    BATCHES,
    HEALTH,
    IDEMPOTENCY,
    LOGS,
    METRICS,
    RESTARTS,
    RESULTS,
    SCHEDULES,
    SERVICE,
    SETTINGS,
    SWAGGER,
    USAGE,
    VIEW,
    WAITING,
)
from scheduler.api.memory import BODY_BUDGET, BodyBudget, body_budget_middleware
from scheduler.api.routes import add_routes
from scheduler.api.sse import SSE
from scheduler.backends.base import Backend, Identity, Kind
from scheduler.domain.batches import BatchService
from scheduler.domain.events import EventHub
from scheduler.domain.idempotency import Idempotency
from scheduler.domain.jobs import JobService
from scheduler.domain.logs import LogReader
from scheduler.domain.notifying import Notifier
from scheduler.domain.payloads import PayloadRules
from scheduler.domain.pruning import MIN_PRUNE_INTERVAL_SECONDS, Pruner
from scheduler.domain.restarting import Restarter
from scheduler.domain.results import Results
from scheduler.domain.schedules import Schedules
from scheduler.domain.starting import Starter
from scheduler.domain.usage import UsageService
from scheduler.domain.view import JobView
from scheduler.domain.waiting import Waiting
from scheduler.health import Health
from scheduler.loops import cancelled
from scheduler.metrics import Metrics
from scheduler.recovering import recovering, sweep_interval
from scheduler.settings import Settings, check_exposure
from scheduler.swagger import render
from scheduler.watching import watching
from scheduler.webhook import WebhookSender

PRUNE_INTERVAL = web.AppKey("prune_interval_seconds", float)
WEBHOOK = web.AppKey("webhook", WebhookSender)
# Starts jobs held until their startAfter, and fails those that waited too long.
STARTER = web.AppKey("starter", Starter)


def identity_of(settings: Settings) -> Identity:
    definition = settings.definition
    return Identity(
        app=definition.app,
        environment=definition.environment,
        component=definition.name,
        namespace=settings.namespace,
    )


def check_startup(settings: Settings) -> None:
    """Raises `ConfigError` for what makes the scheduler refuse to start: a local backend exposed
    without a token, or a state dir that cannot be ours."""
    check_exposure(settings)
    if settings.backend == "local" and settings.state_dir is not None:
        from scheduler.backends.local.statedir import check_state_dir

        check_state_dir(settings.state_dir)


def _default_backend(settings: Settings) -> Backend:
    if settings.backend == "local":
        from scheduler.backends.local.backend import LocalBackend

        assert settings.state_dir is not None, "the local backend has a state dir"
        return LocalBackend(
            identity_of(settings),
            settings.state_dir,
            max_parallel=settings.max_parallel,
            log_limit_bytes=settings.log_limit_bytes,
            usage_interval_seconds=settings.usage_interval_seconds,
        )
    return kubernetes_backend(settings)


def kubernetes_backend(settings: Settings, configuration: Any = None) -> Backend:
    """The Kubernetes backend as the settings say; `configuration` (a client configuration)
    stands in for the kubeconfig or the pod's service account."""
    # The only place the Kubernetes backend is chosen; importing it loads the client library.
    from scheduler.backends.kubernetes.backend import KubernetesBackend

    return KubernetesBackend(
        identity_of(settings),
        kubeconfig=settings.kubeconfig,
        configuration=configuration,
        create_grace_seconds=settings.create_grace_seconds,
        keep_attempts=settings.keep_attempts,
        attempt_log_bytes=settings.attempt_log_bytes,
        attempt_record_bytes=settings.attempt_record_bytes,
        usage_interval_seconds=settings.usage_interval_seconds,
        image=settings.image,
    )


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
        delete_batch=app[BATCHES].delete,
        batches=app[BATCHES].statuses,
        min_interval_seconds=app[PRUNE_INTERVAL],
        on_pruned=lambda name: metrics.pruned.inc(),
    )
    tasks = [
        asyncio.create_task(
            watching(backend, view, kind=kind, health=health, on_restart=restarted),
            name=f"watching-{kind.value}",
        )
        for kind in Kind
    ]
    tasks.append(asyncio.create_task(pruner.pruning(), name="pruning"))
    interval = sweep_interval(app[SETTINGS].create_grace_seconds)
    tasks.append(asyncio.create_task(recovering(backend, interval), name="recovering"))
    expiry = min(interval, max(app[SETTINGS].idempotency_ttl_seconds / 2, 0.05))
    tasks.append(asyncio.create_task(app[IDEMPOTENCY].expiring(expiry), name="expiring-keys"))
    tasks.append(asyncio.create_task(app[SCHEDULES].running(), name="schedules"))
    tasks.append(asyncio.create_task(app[STARTER].starting(), name="starting"))
    # A restarted scheduler prunes what finished while it was away, once its view has synced.
    tasks.append(asyncio.create_task(_prune_after_sync(view, pruner), name="first-prune"))
    try:
        yield
    finally:
        await cancelled(*tasks)
        await backend.close()


async def _webhook(app: web.Application) -> AsyncIterator[None]:
    sender = app[WEBHOOK]
    await sender.start()
    try:
        yield
    finally:
        await sender.close()


async def _releasing_waits(app: web.Application) -> None:
    app[WAITING].release_all()


async def _prune_after_sync(view: JobView, pruner: Pruner) -> None:
    await view.wait_synced()
    pruner.poke()


def _middlewares(settings: Settings) -> list[Middleware]:
    own = OwnHosts(settings.definition.name, settings.namespace, settings.allowed_hosts)
    middlewares = [error_middleware, own_hosts_middleware(own)]
    if settings.api_token is not None:
        middlewares.append(token_middleware(settings.api_token.get_secret_value()))
    return [*middlewares, guard_middleware, body_budget_middleware]


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    prune_interval_seconds: float = MIN_PRUNE_INTERVAL_SECONDS,
) -> web.Application:
    # The whole body's limit (a batch of many payloads, or one of the largest); each payload's
    # own limit is checked after parsing, with a 413 that names it.
    app = web.Application(
        # The checks run inside the error middleware, which turns their refusals into `Status`:
        # a foreign `Host` first (403 whoever asks), then the token, then the cross-site guard.
        middlewares=_middlewares(settings),
        client_max_size=settings.max_request_bytes,
        handler_args={"logger": SERVER_LOG},  # unparsable requests: a WARNING, not an ERROR
    )
    backend = backend or _default_backend(settings)
    view = JobView()
    metrics = Metrics()
    metrics.watch_jobs(view.counts)
    app[SETTINGS] = settings
    app[BODY_BUDGET] = BodyBudget(settings.body_budget_bytes)
    app[BACKEND] = backend
    app[VIEW] = view
    app[HEALTH] = Health()
    app[METRICS] = metrics
    definition = settings.definition
    payloads = PayloadRules.of(definition, settings.max_payload_bytes)
    app[SERVICE] = JobService(definition, backend, view, payloads=payloads)
    notifier = Notifier(view, lambda name: app[BATCHES].find(name))
    app[BATCHES] = BatchService(
        definition, backend, view, payloads=payloads, creating=notifier.holding
    )
    app[LOGS] = LogReader(backend, view, app[BATCHES])
    app[RESULTS] = Results(view, app[BATCHES], backend)
    app[RESTARTS] = Restarter(backend, view, app[BATCHES])
    app[USAGE] = UsageService(view, app[BATCHES], backend)
    app[WAITING] = Waiting(view, app[BATCHES])
    metrics.waiting.set_function(lambda: app[WAITING].count)
    # A GET still waiting would hold a shutdown up to its timeout: it is answered now.
    app.on_shutdown.append(_releasing_waits)
    app[IDEMPOTENCY] = Idempotency(
        backend.keys,
        view,
        app[SERVICE],
        app[BATCHES],
        ttl_seconds=settings.idempotency_ttl_seconds,
        grace_seconds=settings.create_grace_seconds,
    )
    app[SCHEDULES] = Schedules(settings.definition, app[SERVICE], view)
    app[STARTER] = Starter(backend, view)
    # GET /api/v1/events: always subscribed, so a client that comes back finds the ring filled.
    events = EventHub(
        SSE, ring_size=settings.events_ring_size, queue_size=settings.events_queue_size
    )
    notifier.subscribe(events.publish)
    serve_events(app, events)
    app[SWAGGER] = render().encode()
    app[PRUNE_INTERVAL] = prune_interval_seconds
    add_routes(app)
    app.on_response_prepare.append(add_security_headers)  # of the web console
    url = settings.definition.webhook_url
    if url is not None:
        sender = WebhookSender(
            url,
            secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None,
            attempts=settings.webhook_attempts,
            timeout_seconds=settings.webhook_timeout_seconds,
            queue_size=settings.webhook_queue_size,
            metrics=metrics,
        )
        app[WEBHOOK] = sender
        notifier.subscribe(lambda note: sender.send(note.id, note.key, note.body))
        # Started before the watches and closed after them, so no event is sent to a closed one.
        app.cleanup_ctx.append(_webhook)
    app.cleanup_ctx.append(_background)
    return app
