"""Liveness, readiness and metrics: outside `/api/v1` and outside the Radix spec."""

from __future__ import annotations

import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scheduler.api.bodies import JSON
from scheduler.api.keys import HEALTH, METRICS, VIEW

# The probes: kubelet calls them by the pod's address, with no token, and they tell nothing.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    reason = request.app[HEALTH].not_ready_reason(request.app[VIEW].synced)
    if reason is None:
        return web.Response(text="ok\n")
    body = json.dumps({"ready": False, "reason": reason})
    return web.Response(status=503, text=body, content_type=JSON)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
