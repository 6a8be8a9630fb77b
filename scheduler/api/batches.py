"""Handlers of `/api/v1/batches`: parse, call the batch service, answer JSON."""

from __future__ import annotations

from aiohttp import web
from pydantic import TypeAdapter

from scheduler.api.bodies import create_response, json_bytes, json_response, parse_body
from scheduler.api.keys import BATCHES, IDEMPOTENCY, WAITING
from scheduler.api.memory import read_body
from scheduler.api.waits import after_waiting
from scheduler.domain.batches import EMPTY_BATCH
from scheduler.errors import InvalidError
from scheduler.heap import give_back_memory
from scheduler.models import BatchScheduleDescription, BatchStatus

_BATCH_LIST = TypeAdapter(list[BatchStatus])
# A batch of this many jobs or more leaves enough freed memory to be worth giving back.
LARGE_BATCH_JOBS = 100


async def create_batch(request: web.Request) -> web.Response:
    description = parse_body(
        await read_body(request), BatchScheduleDescription, "BatchScheduleDescription"
    )
    if description is None:
        raise InvalidError(EMPTY_BATCH)
    try:
        return await create_response(
            request,
            description,
            create=request.app[BATCHES].create,
            create_with_key=request.app[IDEMPOTENCY].create_batch,
        )
    finally:
        if len(description.job_schedule_descriptions) >= LARGE_BATCH_JOBS:
            # Its manifests and answers were tens of MB, now free: the heap gives them back.
            give_back_memory()


async def get_batches(request: web.Request) -> web.Response:
    body = _BATCH_LIST.dump_json(request.app[BATCHES].statuses(), by_alias=True)
    return json_bytes(body)


async def get_batch(request: web.Request) -> web.Response:
    name = request.match_info["batchName"]
    return await after_waiting(
        request,
        lambda seconds: request.app[WAITING].batch(name, seconds),
        lambda: json_response(request.app[BATCHES].status(name)),
    )


async def get_batch_job(request: web.Request) -> web.Response:
    batch, job = request.match_info["batchName"], request.match_info["jobName"]
    return await after_waiting(
        request,
        lambda seconds: request.app[WAITING].batch_job(batch, job, seconds),
        lambda: json_response(request.app[BATCHES].job(batch, job)),
    )


async def delete_batch(request: web.Request) -> web.Response:
    return json_response(await request.app[BATCHES].delete(request.match_info["batchName"]))


async def stop_batch(request: web.Request) -> web.Response:
    return json_response(await request.app[BATCHES].stop(request.match_info["batchName"]))


async def stop_all_batches(request: web.Request) -> web.Response:
    return json_response(await request.app[BATCHES].stop_all())


async def stop_batch_job(request: web.Request) -> web.Response:
    info = request.match_info
    return json_response(await request.app[BATCHES].stop_job(info["batchName"], info["jobName"]))
