"""Typed application keys: what handlers may find on the app."""

from __future__ import annotations

from aiohttp import web

from scheduler.backends.base import Backend
from scheduler.domain.batches import BatchService
from scheduler.domain.jobs import JobService
from scheduler.health import Health
from scheduler.metrics import Metrics
from scheduler.settings import Settings
from scheduler.store import JobView

SETTINGS = web.AppKey("settings", Settings)
SERVICE = web.AppKey("service", JobService)
BATCHES = web.AppKey("batches", BatchService)
VIEW = web.AppKey("view", JobView)
HEALTH = web.AppKey("health", Health)
METRICS = web.AppKey("metrics", Metrics)
BACKEND = web.AppKey("backend", Backend)
SWAGGER = web.AppKey("swagger", bytes)
