"""Payloads up to `SCHEDULER_MAX_PAYLOAD_BYTES` (64 MiB at most), on both backends: the job reads
exactly the payload it was given, byte for byte, from `<payload.path>/payload`. On Kubernetes a
payload above 1 MiB travels in parts of 512 KiB (cut through multi-byte UTF-8 characters here)
that an init container puts together; locally it is written as it is. What the parts look like in
the cluster is in tests/backends/kubernetes/test_large_payloads_in_the_cluster.py."""

from __future__ import annotations

import hashlib
import json
import random
import sys

import pytest

from tests.conftest import ClientFactory, post_job, wait_for_status
from tests.factories import JSON, Client

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="local jobs are Linux processes")

KIB, MIB = 1024, 1024 * 1024
PART_BYTES = 512 * KIB
LIMIT_BYTES = 64 * MIB
# The scheduler's image, which the fake's node runs from this repository.
IMAGE = "job-scheduler:test"
PAYLOAD_PATH = {"kubernetes": "/compute/args/payload", "local": '"$RADIX_PAYLOAD_PATH/payload"'}
# Four-, three- and two-byte characters, each cut in two by a part boundary.
STRADDLING = ("\U0001f680".encode(), "\u20ac".encode(), "\u00e9".encode())
# A 64 MiB job takes a few seconds to create and put together on a busy machine.
JOB_SECONDS = 60.0


def payload_of(size: int, seed: int = 0) -> str:
    """`size` bytes of UTF-8: printable ASCII that differs from part to part (a part out of
    place changes the checksum), with a multi-byte character across every 512 KiB boundary."""
    alphabet = bytes(range(0x21, 0x7F))
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    text = bytearray(random.Random(seed).randbytes(size).translate(table))
    for n, boundary in enumerate(range(PART_BYTES, size, PART_BYTES)):
        character = STRADDLING[n % len(STRADDLING)]
        start = boundary - len(character) // 2 - 1 if len(character) > 2 else boundary - 1
        if start + len(character) <= size:
            text[start : start + len(character)] = character
    return text.decode("utf-8")


@pytest.fixture
async def client(start: ClientFactory) -> Client:
    return await start(SCHEDULER_MAX_PAYLOAD_BYTES=str(LIMIT_BYTES), SCHEDULER_IMAGE=IMAGE)


async def read_back(client: Client, backend: str, payload: str) -> tuple[str, int]:
    """The checksum and size of the payload as the job read it, from its log."""
    path = PAYLOAD_PATH[backend]
    script = f"sha256sum {path}; wc -c < {path}"
    body = json.dumps({"payload": payload, "command": ["sh", "-c", script]})
    response = await client.post("/api/v1/jobs", data=body)
    assert response.status == 200, await response.text()
    name = (await response.json())["name"]
    await wait_for_status(client, name, "Succeeded", JOB_SECONDS)
    log = await client.get(f"/api/v1/jobs/{name}/logs")
    assert log.status == 200, await log.text()
    checksum_line, size_line, *_ = (await log.text()).splitlines()
    return checksum_line.split()[0], int(size_line.split()[0])


SIZES = {
    "empty": 0,
    "1 MiB - 1": MIB - 1,
    "1 MiB + 1": MIB + 1,
    "10 MiB": 10 * MIB,
}


def test_every_part_boundary_cuts_a_multi_byte_character() -> None:
    encoded = payload_of(3 * PART_BYTES + 10).encode()
    for boundary in (PART_BYTES, 2 * PART_BYTES, 3 * PART_BYTES):
        with pytest.raises(UnicodeDecodeError):
            encoded[:boundary].decode()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_the_job_reads_its_payload_byte_for_byte(
    client: Client, backend: str, size: int
) -> None:
    payload = payload_of(size)
    assert len(payload.encode()) == size
    checksum, read = await read_back(client, backend, payload)
    assert (checksum, read) == (hashlib.sha256(payload.encode()).hexdigest(), size)


@pytest.mark.timeout(240)
async def test_a_payload_at_the_highest_limit_of_64_mib_is_read_byte_for_byte(
    client: Client, backend: str
) -> None:
    payload = payload_of(LIMIT_BYTES, seed=64)
    checksum, read = await read_back(client, backend, payload)
    assert (checksum, read) == (hashlib.sha256(payload.encode()).hexdigest(), LIMIT_BYTES)


async def test_a_payload_above_the_limit_is_413_and_nothing_is_created(
    start: ClientFactory,
) -> None:
    client = await start(SCHEDULER_MAX_PAYLOAD_BYTES=str(2 * MIB), SCHEDULER_IMAGE=IMAGE)
    response = await client.post("/api/v1/jobs", data=json.dumps({"payload": "x" * (2 * MIB + 1)}))
    assert response.status == 413, await response.text()
    body: JSON = await response.json()
    assert body["reason"] == "RequestEntityTooLarge"
    assert "2097153 bytes; at most 2097152 bytes (2 MiB)" in body["message"]
    listed = await client.get("/api/v1/jobs")
    assert await listed.json() == []
    # The limit is the payload's: one just at it is taken.
    await post_job(client, {"payload": "x" * (2 * MIB), "command": ["sh", "-c", "exit 0"]})
