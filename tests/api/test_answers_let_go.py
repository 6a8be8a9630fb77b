"""An answer is not kept once it is sent. aiohttp's connection keeps its last request and
response until its next request, so every idle keep-alive connection would hold the last answer
it carried (at 10,000 jobs a job list is 6 MB: a pool of clients held hundreds of MB)."""

from __future__ import annotations

import gc

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from scheduler.api.bodies import SentOnce, json_bytes
from tests.conftest import post_job
from tests.factories import Client


def answers_still_holding_a_body() -> list[SentOnce]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, SentOnce) and o.body is not None]


async def test_a_job_list_sent_over_a_keep_alive_connection_is_not_kept(client: Client) -> None:
    for _ in range(3):
        await post_job(client, {})
    for path in ("/api/v1/jobs", "/api/v1/batches", "/api/v1/schedules"):
        response = await client.get(path)
        assert response.status == 200
        await response.read()
    # The connection stays open for the next request, and has let go of what it sent.
    assert answers_still_holding_a_body() == []


async def test_a_large_answer_arrives_whole_after_its_headers() -> None:
    body = b"[" + b",".join(b'{"name":"job-%06d"}' % n for n in range(20_000)) + b"]"

    async def large(request: web.Request) -> web.Response:
        return json_bytes(body)

    app = web.Application()
    app.router.add_get("/large", large)
    async with TestClient(TestServer(app)) as http:
        for _ in range(2):  # the second over the same connection
            response = await http.get("/large")
            assert response.headers["Content-Length"] == str(len(body))
            assert response.content_type == "application/json"
            assert await response.read() == body
    assert answers_still_holding_a_body() == []
