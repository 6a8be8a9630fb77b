"""Handler of `/api/v1/schedules`: the job's cron schedules with their next run times."""

from __future__ import annotations

from aiohttp import web
from pydantic import TypeAdapter

from scheduler.api.bodies import json_bytes
from scheduler.api.keys import SCHEDULES
from scheduler.models.schedules import ScheduleStatus

_SCHEDULE_LIST = TypeAdapter(list[ScheduleStatus])


async def get_schedules(request: web.Request) -> web.Response:
    body = _SCHEDULE_LIST.dump_json(request.app[SCHEDULES].statuses(), by_alias=True)
    return json_bytes(body)
