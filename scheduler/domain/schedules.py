"""The radixconfig's cron schedules: at each tick, run the job once, as an ordinary job with the
schedule's variables and payload and the jobId `schedule:<name>`.

A run's name is made from the schedule and the tick, so of two replicas (or a scheduler restarted
within the tick) only one creates it: the other's create is a conflict, and it skips the tick.
Missed ticks are not run later: after a restart the timers start from the next tick, and a
timer that wakes more than a minute late (a suspended machine, a clock set forward) skips the tick,
as a CronJob with `startingDeadlineSeconds: 60` does. `Forbid` and `Replace` look at this
schedule's runs only (a run carries its schedule's name).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from scheduler.backoff import Backoff
from scheduler.clock import utcnow
from scheduler.cron import Cron, next_tick, parse_cron
from scheduler.domain.jobs import JobService
from scheduler.domain.stopping import is_stoppable
from scheduler.domain.view import JobView
from scheduler.errors import ConflictError, SchedulerError
from scheduler.loops import Stop, forever
from scheduler.models import EnvVars, JobScheduleDescription, JobStatus, JobStatusEnum
from scheduler.models.schedules import ScheduleStatus
from scheduler.names import run_name
from scheduler.radixconfig import JobDefinition, Schedule

log = logging.getLogger(__name__)

JOB_ID_PREFIX = "schedule:"
# A run in one of these is still going: Forbid skips a tick for it.
ACTIVE = frozenset(
    {JobStatusEnum.WAITING, JobStatusEnum.ACTIVE, JobStatusEnum.RUNNING, JobStatusEnum.STOPPING}
)
# Timers wake at least this often, so a wall clock set forward or back is followed.
MAX_SLEEP_SECONDS = 60.0
# A tick whose timer woke later than this is missed, not run late.
STARTING_DEADLINE_SECONDS = 60.0

Clock = Callable[[], datetime]
SleepUntil = Callable[[datetime], Awaitable[None]]


def job_id(schedule: str) -> str:
    return f"{JOB_ID_PREFIX}{schedule}"


@dataclass(slots=True)
class _Timer:
    schedule: Schedule
    cron: Cron
    skipped: int = 0  # ticks that Forbid skipped
    missed: int = 0  # ticks whose timer woke too late
    started: int = 0  # runs this scheduler created
    after: datetime | None = None  # the next tick is the first after this; None: after now


class Schedules:
    def __init__(
        self,
        definition: JobDefinition,
        jobs: JobService,
        view: JobView,
        *,
        clock: Clock = utcnow,
        sleep_until: SleepUntil | None = None,
    ) -> None:
        self._definition = definition
        self._jobs = jobs
        self._view = view
        self._clock = clock
        self._sleep_until = sleep_until or self._sleeping_until
        self._timers = {
            s.name: _Timer(s, parse_cron(s.cron, s.time_zone)) for s in definition.schedules
        }

    # -- reading -------------------------------------------------------------------------------

    def statuses(self) -> list[ScheduleStatus]:
        now = self._clock()
        return [
            ScheduleStatus(
                name=name,
                cron=timer.schedule.cron,
                time_zone=timer.schedule.time_zone,
                concurrency=timer.schedule.concurrency,
                next_run=next_tick(timer.cron, now),
                last_run=max((run.created for run in self.runs(name) if run.created), default=None),
            )
            for name, timer in self._timers.items()
        ]

    def runs(self, schedule: str) -> list[JobStatus]:
        """The schedule's runs in the view, oldest first."""
        return [
            status
            for status in self._view.single_statuses()
            if (record := self._view.job(status.name)) is not None and record.schedule == schedule
        ]

    def skipped(self, schedule: str) -> int:
        """How many ticks this scheduler skipped because a run was active (Forbid)."""
        return self._timers[schedule].skipped

    # -- running -------------------------------------------------------------------------------

    async def running(self) -> None:
        """One timer per schedule, from the next tick on, once the view has synced (Forbid and
        Replace need to see the runs)."""
        if not self._timers:
            return
        await self._view.wait_synced()
        async with asyncio.TaskGroup() as group:
            for name in self._timers:
                group.create_task(self._timing(name), name=f"schedule-{name}")

    async def _timing(self, name: str) -> None:
        timer = self._timers[name]
        await forever(
            f"the timer of schedule {name}", lambda: self._tick(timer), log=log, backoff=Backoff()
        )

    async def _tick(self, timer: _Timer) -> None:
        """Sleep until the timer's next tick, then run it, or miss it when woken too late."""
        name = timer.schedule.name
        try:
            tick = next_tick(timer.cron, timer.after or self._clock())
        except ValueError as exc:
            log.error("schedule %s stops: %s", name, exc)
            raise Stop from exc
        await self._sleep_until(tick)
        late = (self._clock() - tick).total_seconds()
        if late > STARTING_DEADLINE_SECONDS:
            timer.missed += 1
            log.warning("schedule %s missed its tick at %s", name, tick.isoformat())
        else:
            try:
                await self.fire(name, tick)
            except Exception:
                log.exception("the run of schedule %s at %s failed", name, tick.isoformat())
        # Ticks that passed while this one ran are missed, not run late.
        timer.after = max(tick, self._clock())

    async def _sleeping_until(self, moment: datetime) -> None:
        delay = (moment - self._clock()).total_seconds()
        while delay > 0:
            await asyncio.sleep(min(delay, MAX_SLEEP_SECONDS))
            delay = (moment - self._clock()).total_seconds()

    async def fire(self, name: str, tick: datetime) -> str | None:
        """Run schedule `name` for `tick`, as its concurrency allows; the run's name, or None
        when the tick was skipped or already run (by another replica, or before a restart)."""
        timer = self._timers[name]
        schedule = timer.schedule
        active = [run for run in self.runs(name) if run.status in ACTIVE]
        if active and schedule.concurrency == "Forbid":
            timer.skipped += 1
            log.info("schedule %s skipped its tick: run %s is still active", name, active[0].name)
            return None
        if active and schedule.concurrency == "Replace":
            await self._stop(name, active)
        run = run_name(self._definition.name, name, tick)
        description = JobScheduleDescription(
            job_id=job_id(name),
            variables=EnvVars(dict(schedule.variables)) if schedule.variables else None,
            payload=schedule.payload,
        )
        try:
            await self._jobs.create(description, name=run, schedule=name)
        except ConflictError:
            log.debug("schedule %s: the run %s exists already", name, run)
            return None
        except SchedulerError as exc:
            log.warning("schedule %s could not start its run %s: %s", name, run, exc.message)
            return None
        timer.started += 1
        log.info("schedule %s started run %s", name, run, extra={"job_name": run})
        return run

    async def _stop(self, name: str, active: list[JobStatus]) -> None:
        for run in active:
            if not is_stoppable(run):
                continue  # already stopping
            try:
                await self._jobs.stop(run.name)
            except SchedulerError as exc:
                # Ended, deleted or stopped by another replica meanwhile.
                log.info("schedule %s could not stop run %s: %s", name, run.name, exc.message)
