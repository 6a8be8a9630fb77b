"""Typed application keys: what handlers may find on the app."""

from __future__ import annotations

from aiohttp import web

from scheduler.backends.base import Backend
from scheduler.domain.batches import BatchService
from scheduler.domain.events import EventHub
from scheduler.domain.idempotency import Idempotency
from scheduler.domain.jobs import JobService
from scheduler.domain.logs import LogReader
from scheduler.domain.restarting import Restarter
from scheduler.domain.results import Results
from scheduler.domain.schedules import Schedules
from scheduler.domain.usage import UsageService
from scheduler.domain.view import JobView
from scheduler.domain.waiting import Waiting
from scheduler.health import Health
from scheduler.metrics import Metrics
from scheduler.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
SERVICE = web.AppKey("service", JobService)
BATCHES = web.AppKey("batches", BatchService)
VIEW = web.AppKey("view", JobView)
HEALTH = web.AppKey("health", Health)
METRICS = web.AppKey("metrics", Metrics)
BACKEND = web.AppKey("backend", Backend)
SWAGGER = web.AppKey("swagger", bytes)
LOGS = web.AppKey("logs", LogReader)
IDEMPOTENCY = web.AppKey("idempotency", Idempotency)
SCHEDULES = web.AppKey("schedules", Schedules)
EVENTS = web.AppKey("events", EventHub)
RESULTS = web.AppKey("results", Results)
RESTARTS = web.AppKey("restarts", Restarter)
USAGE = web.AppKey("usage", UsageService)
WAITING = web.AppKey("waiting", Waiting)
