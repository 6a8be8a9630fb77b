"""What a local job uses, read from /proc: the parsing and the tree (pure), then real processes,
measured directly and through the scheduler (sandbox, store and a scheduler restart)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from scheduler.backends.local.usage import ProcessStat, UsageSampler, parse_stat, tree
from tests.conftest import ClientFactory, ok_json, post_job, wait_for_status, wait_until
from tests.factories import Client

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")

MIB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
# Holds 100 MiB, spins the CPU for half a second, then idles a moment so that the last look
# (one every INTERVAL) sees all of it: what an attempt does after its last look is not seen.
BUSY = (
    "import time\n"
    "held = b'x' * (100 << 20)\n"
    "start = time.process_time()\n"
    "while time.process_time() - start < 0.5:\n"
    "    pass\n"
    "time.sleep(0.5)\n"
)
SPIN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.3: pass\n"
INTERVAL = 0.05


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "4242 (python3) S 4241 4242 4242 0 -1 4194560 900 0 0 0 "
            "30 12 5 3 20 0 1 0 100 20000000 2560 18446744073709551615",
            ProcessStat(4242, 4241, ticks=42, child_ticks=8, rss_bytes=2560 * PAGE),
        ),
        # A command name may hold spaces and parentheses: the fields follow the last ")".
        (
            "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 6 7 0",
            ProcessStat(7, 1, ticks=3, child_ticks=7, rss_bytes=7 * PAGE),
        ),
        ("7 (cut short) S 1 7", None),
        ("not a stat line", None),
        ("7 (x) S one 7 7 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 6 7 0", None),
    ],
)
def test_a_stat_line_gives_the_parent_the_times_and_the_resident_memory(
    line: str, expected: ProcessStat | None
) -> None:
    assert parse_stat(line) == expected


def _process(pid: int, ppid: int) -> ProcessStat:
    return ProcessStat(pid, ppid, ticks=1, child_ticks=0, rss_bytes=MIB)


def test_a_tree_is_its_root_and_all_below_it_and_nothing_beside_it() -> None:
    processes = [_process(10, 1), _process(11, 10), _process(12, 11), _process(13, 1)]
    assert sorted(p.pid for p in tree(10, processes)) == [10, 11, 12]
    assert tree(99, processes) == []


async def _measured(argv: list[str]) -> Any:
    """The figures of a real child process, looked at every INTERVAL until it ends."""
    sampler = UsageSampler(INTERVAL)
    sampler.start()
    try:
        process = await asyncio.create_subprocess_exec(*argv)
        sampler.track("attempt", process.pid, ["the-launcher"])
        assert await process.wait() == 0
        return sampler.untrack("attempt")
    finally:
        await sampler.close()


async def test_a_process_holding_100_mib_and_spinning_half_a_second_is_measured_so() -> None:
    usage = await _measured([sys.executable, "-c", BUSY])
    assert usage is not None and usage.samples >= 5
    # Its 100 MiB, and Python itself (some 10 MiB): not less, and not much more.
    assert 100 * MIB <= usage.peak_memory_bytes <= 160 * MIB
    # Its half second, Python's start and the allocation: a CPU second is far too much.
    assert 0.45 <= usage.cpu_seconds <= 1.5
    assert not usage.estimated


async def test_children_that_ended_count_through_the_parent_that_waited_for_them() -> None:
    spin = f"{sys.executable} -c '{SPIN}'"
    usage = await _measured(["sh", "-c", f"{spin}; {spin}; sleep 0.3"])
    # Gone long before the last looks, the two children's 0.6 s are the shell's waited-for time.
    assert usage is not None and 0.55 <= usage.cpu_seconds <= 1.5


async def test_an_attempt_never_looked_at_has_no_figures_rather_than_zeros() -> None:
    sampler = UsageSampler(60.0)
    sampler.start()
    try:
        process = await asyncio.create_subprocess_exec("true")
        sampler.track("attempt", process.pid, ["the-launcher"])
        await process.wait()
        assert sampler.untrack("attempt") is None
    finally:
        await sampler.close()


def test_where_there_is_no_proc_usage_says_why(tmp_path: Path) -> None:
    sampler = UsageSampler(proc=tmp_path)
    assert sampler.unavailable == f"this system has no {tmp_path} to read what processes use from"


# -- through the scheduler ------------------------------------------------------------------------


async def _scheduler(factory: ClientFactory, interval: float = INTERVAL) -> Client:
    return await factory(options={"usage_interval_seconds": interval})


async def _usage(client: Client, name: str) -> dict[str, Any]:
    return await ok_json(await client.get(f"/api/v1/jobs/{name}/usage"))


async def test_a_job_s_figures_come_with_its_requests_and_limits_and_outlive_a_restart(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await _scheduler(local_scheduler_factory)
    body = {
        "command": [sys.executable, "-c", BUSY],
        "resources": {"limits": {"memory": "256Mi", "cpu": "2"}, "requests": {"cpu": "100m"}},
    }
    name = (await post_job(client, body))["name"]
    await wait_for_status(client, name, "Succeeded")
    [attempt] = (await _usage(client, name))["attempts"]
    assert attempt["available"] is True
    assert 100 * MIB <= attempt["peakMemoryBytes"] <= 160 * MIB
    assert 0.45 <= attempt["cpuSeconds"] <= 1.5
    assert attempt["limits"] == {"memory": "256Mi", "cpu": "2"}
    assert attempt["requests"] == {"cpu": "100m"}
    assert attempt["hint"].startswith("peak 1")
    assert " MiB of a 256 MiB limit; " in attempt["hint"]
    assert "CPU on average of a 2 CPU limit" in attempt["hint"]

    await client.close()
    restarted = await _scheduler(local_scheduler_factory)
    assert (await _usage(restarted, name))["attempts"] == [attempt]


async def test_a_running_job_shows_its_figures_so_far(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await _scheduler(local_scheduler_factory)
    name = (await post_job(client, {"command": ["sh", "-c", "sleep 100000"]}))["name"]
    await wait_for_status(client, name, "Running")

    async def measured() -> bool:
        [attempt] = (await _usage(client, name))["attempts"]
        return bool(attempt["available"])

    await wait_until(measured)
    [attempt] = (await _usage(client, name))["attempts"]
    assert attempt["hint"].startswith("so far: peak ")
    assert attempt["samples"] >= 1


async def test_a_job_too_brief_to_be_looked_at_says_so(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await _scheduler(local_scheduler_factory, interval=60.0)
    name = (await post_job(client, {"command": ["true"]}))["name"]
    await wait_for_status(client, name, "Succeeded")
    [attempt] = (await _usage(client, name))["attempts"]
    assert attempt["available"] is False
    assert attempt["peakMemoryBytes"] is None and attempt["cpuSeconds"] is None
    assert attempt["reason"] == (
        "no sample was taken while it ran (too briefly, or before this scheduler saw it); "
        "figures come from its process tree, read from /proc every 60 s while it runs"
    )
    assert attempt["hint"] == f"no figures: {attempt['reason']}"


async def test_the_sandbox_s_own_processes_are_not_the_job_s(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await _scheduler(local_scheduler_factory)
    name = (await post_job(client, {"command": ["sh", "-c", "sleep 40"]}))["name"]
    await wait_for_status(client, name, "Succeeded")
    [attempt] = (await _usage(client, name))["attempts"]
    # A shell and a sleep hold a few MiB; the launcher and its init, two Pythons, some 25 more.
    assert attempt["available"] is True and attempt["peakMemoryBytes"] < 10 * MIB
