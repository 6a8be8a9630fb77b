"""A job that starts a new attempt after a failed one is announced on `/events` (and so to the
webhook, which gets the same notifications) as an Update, even when its status stays the same."""

from __future__ import annotations

import pytest

from tests.api.test_events_stream import Frame, open_stream
from tests.conftest import ClientFactory, post_job

# Each attempt runs long enough to be seen running, then fails; one retry is allowed.
FAILING_TWICE = {
    "backoffLimit": 1,
    "command": ["sh", "-c", "sleep 1; exit 3"],
}


def attempts(frame: Frame) -> int:
    return len(frame.body["jobStatuses"][0].get("podStatuses") or [])


@pytest.mark.timeout(90)
async def test_a_second_attempt_is_announced_as_an_update(start: ClientFactory) -> None:
    client = await start()
    stream = await open_stream(client)
    name = (await post_job(client, FAILING_TWICE))["name"]
    frames: list[Frame] = []
    while not (frames and frames[-1].body["jobStatuses"][0]["status"] == "Failed"):
        frame = await stream.frame()
        if frame.body["name"] == name:
            frames.append(frame)
    seen = [attempts(frame) for frame in frames if frame.event == "Update"]
    assert 2 in seen, f"attempts seen in the job's updates: {seen}"
    # The second attempt is announced while it runs, not only with the job's end.
    running = [
        attempts(frame) for frame in frames if frame.body["jobStatuses"][0]["status"] != "Failed"
    ]
    assert 2 in running, f"attempts seen before the job failed: {running}"
