"""Cron schedules of the radixconfig: validated at start, each tick one ordinary job (jobId
`schedule:<name>`), once across replicas and restarts, with Forbid and Replace over a schedule's
own runs, and `GET /schedules` with the next run times."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from scheduler.api.keys import SCHEDULES, SERVICE, VIEW
from scheduler.backends.kubernetes.manifests import LABEL_SCHEDULE
from scheduler.cron import next_tick, parse_cron
from scheduler.domain.schedules import Schedules
from scheduler.errors import ConfigError
from scheduler.names import run_name
from scheduler.radixconfig import Schedule
from tests.conftest import NAMESPACE, TEST_CONFIG, ClientFactory, make_settings, wait_until
from tests.factories import Client
from tests.fakekube import FakeKube

RUN_NAME = re.compile(r"^(?P<job>[a-z0-9-]+)-(?P<tick>\d{14})-[a-z]{8}$")
LONG = ["sh", "-c", "sleep 1000; exit 0"]


def write_config(
    tmp_path: Path,
    schedules: list[dict[str, Any]] | None = None,
    job: str = "etl",
    command: list[str] | None = None,
    **fields: Any,
) -> Path:
    """The tests' radixconfig with `schedules` (and other fields) on one job."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    for entry in config["spec"]["jobs"]:
        if entry["name"] == job:
            if schedules is not None:
                entry["schedules"] = schedules
            if command is not None:
                entry["command"] = command
            entry.update(fields)
    path = tmp_path / "schedules-radixconfig.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def jobs(client: Client) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await (await client.get("/api/v1/jobs")).json()
    return result


def tick_of(name: str) -> datetime:
    match = RUN_NAME.match(name)
    assert match, name
    return datetime.strptime(match["tick"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


# -- the radixconfig ---------------------------------------------------------------------------

DAILY = {"name": "a", "cron": "@daily"}
BAD_SCHEDULES = [
    ([{"name": "a", "cron": "0 2 * *"}], "schedules[0].cron", "has 4 fields"),
    ([{"name": "a", "cron": "0 0 2 * * *"}], "schedules[0].cron", "has 6 fields"),
    ([{"name": "a", "cron": "0 25 * * *"}], "schedules[0].cron", "Bad hour"),
    ([{"name": "a", "cron": "@fortnightly"}], "schedules[0].cron", "unknown macro"),
    ([{"name": "a", "cron": "@every 2d"}], "schedules[0].cron", "@every <duration>"),
    ([{"name": "a", "cron": "@every 0s"}], "schedules[0].cron", "at least one second"),
    ([{**DAILY, "timeZone": "Europe/Atlantis"}], "schedules[0].timeZone", "unknown time zone"),
    ([{**DAILY, "concurrency": "Sometimes"}], "schedules[0].concurrency", "'Forbid'"),
    ([{"name": "Nightly", "cron": "@daily"}], "schedules[0].name", "should match pattern"),
    ([{"cron": "@daily"}], "schedules[0].name", "Field required"),
    ([DAILY, {"name": "b", "cron": "@daily"}, DAILY], "schedules", "schedules[2].name: 'a'"),
    ([{"name": f"s{i}", "cron": "@daily"} for i in range(21)], "schedules", "at most 20"),
    ([{**DAILY, "payload": "x"}], "schedules[0].payload", "no payload.path"),
]


@pytest.mark.parametrize(("schedules", "field", "problem"), BAD_SCHEDULES)
def test_a_bad_schedule_stops_the_start_naming_file_and_field(
    tmp_path: Path, schedules: list[dict[str, Any]], field: str, problem: str
) -> None:
    path = write_config(tmp_path, schedules)
    with pytest.raises(ConfigError) as raised:
        make_settings(tmp_path, "etl", RADIX_CONFIG_FILE=str(path))
    assert f"{path}: spec.jobs[1].{field}" in str(raised.value)
    assert problem in str(raised.value)


def test_a_bad_schedule_of_an_environment_names_its_environment_config(tmp_path: Path) -> None:
    bad = {"environment": "dev", "schedules": [{"name": "a", "cron": "@daily", "timeZone": "X"}]}
    path = write_config(tmp_path, environmentConfig=[bad])
    with pytest.raises(ConfigError, match=r"environmentConfig\[0\]\.schedules\[0\]\.timeZone"):
        make_settings(tmp_path, "etl", RADIX_CONFIG_FILE=str(path))


def test_kubernetes_cronjob_field_names_are_accepted_and_defaults_are_utc_and_allow(
    tmp_path: Path,
) -> None:
    path = write_config(
        tmp_path,
        [
            {"name": "k8s", "schedule": "*/5 * * * *", "timezone": "Europe/Oslo"},
            {"name": "plain", "cron": "@hourly", "concurrencyPolicy": "Forbid"},
            {"name": "least", "cron": "@every 90s"},
        ],
    )
    schedules = make_settings(tmp_path, "etl", RADIX_CONFIG_FILE=str(path)).definition.schedules
    assert [(s.name, s.cron, s.time_zone, s.concurrency) for s in schedules] == [
        ("k8s", "*/5 * * * *", "Europe/Oslo", "Allow"),
        ("plain", "@hourly", "UTC", "Forbid"),
        ("least", "@every 90s", "UTC", "Allow"),
    ]


def test_an_environment_list_replaces_the_job_list(tmp_path: Path) -> None:
    job_level = [{"name": "job-level", "cron": "@daily"}]
    env_level = {"environment": "dev", "schedules": [{"name": "dev-only", "cron": "@hourly"}]}
    path = write_config(tmp_path, job_level, environmentConfig=[env_level])
    definition = make_settings(tmp_path, "etl", RADIX_CONFIG_FILE=str(path)).definition
    assert [s.name for s in definition.schedules] == ["dev-only"]
    path = write_config(
        tmp_path, job_level, environmentConfig=[{"environment": "dev", "schedules": []}]
    )
    assert make_settings(tmp_path, "etl", RADIX_CONFIG_FILE=str(path)).definition.schedules == ()


# -- ticks and names (pure) --------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TICKS = [
    ("0 2 * * *", "Europe/Oslo", T, datetime(2026, 1, 16, 1, 0, tzinfo=UTC)),  # UTC+1
    ("0 2 * * *", "Europe/Oslo", T.replace(month=7), datetime(2026, 7, 16, 0, 0, tzinfo=UTC)),
    # 02:30 does not exist the night summer time starts: 03:00 local, as Debian cron.
    (
        "30 2 * * *",
        "Europe/Oslo",
        datetime(2026, 3, 28, 12, tzinfo=UTC),
        datetime(2026, 3, 29, 1, tzinfo=UTC),
    ),
    ("@hourly", "UTC", T, T + timedelta(hours=1)),  # strictly after
    ("*/15 * * * *", "UTC", T.replace(minute=7, second=30), T.replace(minute=15)),
    ("@weekly", "UTC", datetime(2026, 1, 14, tzinfo=UTC), datetime(2026, 1, 18, tzinfo=UTC)),
    ("@every 90s", "UTC", EPOCH + timedelta(seconds=100), EPOCH + timedelta(seconds=180)),
    ("@every 1s", "UTC", T + timedelta(microseconds=500), T + timedelta(seconds=1)),
    ("@every 1h30m", "Asia/Tokyo", T, datetime(2026, 1, 15, 13, 30, tzinfo=UTC)),
]


@pytest.mark.parametrize(("cron", "zone", "after", "expected"), TICKS)
def test_next_tick(cron: str, zone: str, after: datetime, expected: datetime) -> None:
    assert next_tick(parse_cron(cron, zone), after) == expected


def test_a_run_is_named_from_its_schedule_and_tick_alike_on_every_replica() -> None:
    name = run_name("compute", "nightly", datetime(2026, 1, 16, 1, 0, tzinfo=UTC))
    assert RUN_NAME.match(name) and name.startswith("compute-20260116010000-")
    assert name == run_name(
        "compute", "nightly", datetime(2026, 1, 16, 2, 0, tzinfo=ZoneInfo("Europe/Oslo"))
    )
    assert name != run_name("compute", "hourly", datetime(2026, 1, 16, 1, 0, tzinfo=UTC))
    assert name != run_name("compute", "nightly", datetime(2026, 1, 17, 1, 0, tzinfo=UTC))
    assert len(run_name("x" * 39, "s", T)) <= 63


# -- runs --------------------------------------------------------------------------------------


async def test_an_every_second_schedule_runs_listed_jobs_named_after_it(
    start: ClientFactory, tmp_path: Path
) -> None:
    schedule = {"name": "often", "cron": "@every 1s", "variables": {"MODE": "scheduled"}}
    client = await start("etl", RADIX_CONFIG_FILE=str(write_config(tmp_path, [schedule])))
    runs: list[dict[str, Any]] = []

    async def ran_twice() -> bool:
        runs[:] = [job for job in await jobs(client) if job.get("jobId") == "schedule:often"]
        return len(runs) >= 2

    await wait_until(ran_twice)
    for run in runs:
        assert run["name"] == run_name("etl", "often", tick_of(run["name"]))
    listed = await (await client.get("/api/v1/schedules")).json()
    assert listed[0]["name"] == "often" and "lastRun" in listed[0]
    # An ordinary job: readable and stoppable (or finished already), deletable.
    first = runs[0]["name"]
    assert (await client.get(f"/api/v1/jobs/{first}")).status == 200
    assert (await client.post(f"/api/v1/jobs/{first}/stop")).status in (200, 400)
    assert (await client.delete(f"/api/v1/jobs/{first}")).status == 200


async def test_runs_are_pruned_with_the_history(start: ClientFactory, tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"name": "often", "cron": "@every 1s"}])
    client = await start(
        "etl", RADIX_CONFIG_FILE=str(path), RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="1"
    )
    seen: list[str] = []

    async def first_run_pruned() -> bool:
        names = [job["name"] for job in await jobs(client)]
        if not seen and names:
            seen.append(names[0])
        return bool(seen) and seen[0] not in names and len(names) >= 1

    await wait_until(first_run_pruned, timeout=20)


async def test_a_run_gets_the_schedules_variables_and_payload(
    scheduler_factory: ClientFactory, kube: FakeKube, tmp_path: Path
) -> None:
    schedule = {
        "name": "fed",
        "cron": "@every 1s",
        "variables": {"MODE": "scheduled"},
        "payload": "p!",
    }
    path = write_config(tmp_path, [schedule], job="compute")
    await scheduler_factory("compute", RADIX_CONFIG_FILE=str(path))
    found: list[dict[str, Any]] = []

    async def ran() -> bool:
        found[:] = kube.list("Job", NAMESPACE, f"{LABEL_SCHEDULE}=fed")
        return bool(found) and found[0]["spec"].get("parallelism") != 0

    await wait_until(ran)
    job = found[0]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODE"] == "scheduled"
    secret = kube.get("Secret", NAMESPACE, f"{job['metadata']['name']}-payload")
    assert secret is not None and base64.b64decode(secret["data"]["payload"]) == b"p!"


async def test_two_replicas_make_exactly_one_run_per_tick(
    scheduler_factory: ClientFactory, kube: FakeKube, tmp_path: Path
) -> None:
    path = write_config(tmp_path, [{"name": "both", "cron": "@every 1s"}])
    await scheduler_factory("etl", RADIX_CONFIG_FILE=str(path))
    await scheduler_factory("etl", RADIX_CONFIG_FILE=str(path))
    runs: list[str] = []

    async def ran_thrice() -> bool:
        runs[:] = [
            j["metadata"]["name"] for j in kube.list("Job", NAMESPACE, f"{LABEL_SCHEDULE}=both")
        ]
        conflicts = [
            e
            for e in kube.audit
            if e.resource == "jobs" and e.verb == "create" and e.status_code == 409
        ]
        return len(runs) >= 3 and bool(conflicts)

    await wait_until(ran_thrice)
    ticks = [tick_of(name) for name in runs]
    assert len(set(ticks)) == len(runs)
    assert runs == [run_name("etl", "both", tick) for tick in ticks]


async def test_a_tick_that_ran_does_not_run_again_after_a_restart(
    start: ClientFactory, tmp_path: Path
) -> None:
    path = write_config(tmp_path, [{"name": "yearly", "cron": "@yearly"}])
    tick = datetime(2030, 1, 1, tzinfo=UTC)
    first = await start("etl", RADIX_CONFIG_FILE=str(path))
    assert await first.app[SCHEDULES].fire("yearly", tick) == run_name("etl", "yearly", tick)
    await first.close()
    second = await start("etl", RADIX_CONFIG_FILE=str(path))
    assert await second.app[SCHEDULES].fire("yearly", tick) is None
    assert [job["name"] for job in await jobs(second)] == [run_name("etl", "yearly", tick)]


async def test_forbid_skips_ticks_while_a_run_is_active(
    start: ClientFactory, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path, [{"name": "single", "cron": "@every 1s", "concurrency": "Forbid"}], command=LONG
    )
    client = await start("etl", RADIX_CONFIG_FILE=str(path))
    schedules = client.app[SCHEDULES]

    async def skipped_twice() -> bool:
        return schedules.skipped("single") >= 2

    await wait_until(skipped_twice)
    runs = await jobs(client)
    assert len(runs) == 1 and runs[0]["status"] in ("Waiting", "Running")


async def test_replace_stops_the_active_run_then_starts(
    start: ClientFactory, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path, [{"name": "latest", "cron": "@every 1s", "concurrency": "Replace"}], command=LONG
    )
    client = await start("etl", RADIX_CONFIG_FILE=str(path))

    async def replaced() -> bool:
        runs = await jobs(client)
        return len(runs) >= 2 and runs[0]["status"] == "Stopped"

    await wait_until(replaced, timeout=20)
    runs = await jobs(client)
    assert runs[-1]["status"] != "Stopped"


async def test_schedules_are_listed_with_their_next_run(
    start: ClientFactory, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path,
        [
            {
                "name": "nightly",
                "cron": "0 2 * * *",
                "timeZone": "Europe/Oslo",
                "concurrency": "Forbid",
            },
            {"name": "hourly", "cron": "@every 1h"},
        ],
    )
    client = await start("etl", RADIX_CONFIG_FILE=str(path))
    before = datetime.now(UTC)
    response = await client.get("/api/v1/schedules")
    after = datetime.now(UTC)
    assert response.status == 200
    listed = await response.json()
    assert [(s["name"], s["cron"], s["timeZone"], s["concurrency"]) for s in listed] == [
        ("nightly", "0 2 * * *", "Europe/Oslo", "Forbid"),
        ("hourly", "@every 1h", "UTC", "Allow"),
    ]
    assert all("lastRun" not in s for s in listed)
    for entry, (cron, zone) in zip(
        listed, [("0 2 * * *", "Europe/Oslo"), ("@every 1h", "UTC")], strict=True
    ):
        next_run = datetime.fromisoformat(entry["nextRun"].replace("Z", "+00:00"))
        parsed = parse_cron(cron, zone)
        assert next_tick(parsed, before) <= next_run <= next_tick(parsed, after)
    nightly = datetime.fromisoformat(listed[0]["nextRun"].replace("Z", "+00:00"))
    assert nightly.astimezone(ZoneInfo("Europe/Oslo")).strftime("%H:%M") == "02:00"


# -- the timer, on a clock the test turns ------------------------------------------------------


class TurnedClock:
    """Wall time that moves only when the test says; timers sleep until it reaches their tick."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._changed = asyncio.Condition()
        self._sleeping: set[datetime] = set()

    def __call__(self) -> datetime:
        return self.now

    async def sleep_until(self, moment: datetime) -> None:
        async with self._changed:
            self._sleeping.add(moment)
            self._changed.notify_all()
            await self._changed.wait_for(lambda: self.now >= moment)
            self._sleeping.discard(moment)

    async def sleeping_until(self, moment: datetime) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: moment in self._sleeping)

    async def turn_to(self, moment: datetime) -> None:
        async with self._changed:
            self.now = moment
            self._changed.notify_all()


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_timer_runs_each_tick_from_the_next_one_on_and_misses_what_it_slept_through(
    start: ClientFactory, tmp_path: Path, running: list[asyncio.Task[None]]
) -> None:
    client = await start("etl")  # no schedules of its own: this test's timer is the only one
    app = client.app
    five = Schedule.model_validate({"name": "five", "cron": "*/5 * * * *"})
    definition = app[SERVICE].definition.model_copy(update={"schedules": (five,)})
    at = datetime(2026, 1, 15, 10, 3, 30, tzinfo=UTC)
    clock = TurnedClock(at)
    schedules = Schedules(
        definition, app[SERVICE], app[VIEW], clock=clock, sleep_until=clock.sleep_until
    )
    running.append(asyncio.create_task(schedules.running()))

    # Started at 10:03:30: the 10:00 tick is not run late; 10:05 is the first.
    await clock.sleeping_until(at.replace(minute=5, second=0))
    await clock.turn_to(at.replace(minute=5, second=0))
    await clock.sleeping_until(at.replace(minute=10, second=0))
    first = run_name("etl", "five", at.replace(minute=5, second=0))
    assert [(job["name"], job["jobId"]) for job in await jobs(client)] == [(first, "schedule:five")]
    assert schedules.statuses()[0].next_run == at.replace(minute=10, second=0)

    # Asleep from 10:05 to 10:27 (a suspended machine): 10:10 to 10:25 are missed, not run late.
    await clock.turn_to(at.replace(minute=27, second=0))
    await clock.sleeping_until(at.replace(minute=30, second=0))
    assert [job["name"] for job in await jobs(client)] == [first]
    await clock.turn_to(at.replace(minute=30, second=1))
    await clock.sleeping_until(at.replace(minute=35, second=0))
    second = run_name("etl", "five", at.replace(minute=30, second=0))
    assert [job["name"] for job in await jobs(client)] == [first, second]
