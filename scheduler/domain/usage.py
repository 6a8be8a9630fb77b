"""What each attempt of a job really used (peak memory, CPU seconds) next to what it asked for,
with a hint in plain words. Ended attempts' figures are in their records (`PodRecord.usage`);
those still under watch come from the backend, which also says how it measures and when it
cannot. A figure that is not known is left out, never given as zero."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from scheduler.backends.base import (
    Backend,
    JobRecord,
    PodRecord,
    Usage,
    UsageReport,
    attempt_started,
)
from scheduler.clock import utcnow
from scheduler.domain.batches import BatchService
from scheduler.domain.status import current_attempts
from scheduler.domain.view import JobView
from scheduler.models.usage import AttemptUsage, JobUsage, quantity
from scheduler.models.wire import built

NOT_STARTED = "it has not started"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


class UsageService:
    """`GET .../usage` of a job and of a batch's job."""

    def __init__(
        self,
        view: JobView,
        batches: BatchService,
        backend: Backend,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._view = view
        self._batches = batches
        self._backend = backend
        self._clock = clock

    async def job_usage(self, name: str) -> JobUsage:
        """A job's (single or of a batch, by its full name)."""
        return await self._usage(self._view.require_status(name).name)

    async def batch_job_usage(self, batch: str, job: str) -> JobUsage:
        """A batch's job's, by its full name or the short one after the batch's."""
        return await self._usage(self._batches.job(batch, job).name)

    async def _usage(self, name: str) -> JobUsage:
        report = await self._backend.job_usage(name)
        # Read after the backend's answer: the attempts as they are now, none it has not seen.
        record = self._view.job(name)
        attempts = job_attempts(record, self._view.pods(name)) if record is not None else []
        kept = {a.name: a.usage for a in record.kept_attempts} if record is not None else {}
        now = self._clock()
        return built(
            JobUsage,
            name=name,
            source=report.source,
            attempts=[
                attempt_usage(index, pod, figures(pod, kept, report.live), report, now)
                for index, pod in enumerate(attempts)
            ],
        )


def job_attempts(job: JobRecord, pods: Iterable[PodRecord]) -> list[PodRecord]:
    """The job's attempts in the order of its podStatuses: a restart's earlier ones first."""
    return [*job.previous_attempts, *current_attempts(job, pods)]


def figures(
    pod: PodRecord, kept: Mapping[str, Usage | None], live: Mapping[str, Usage]
) -> Usage | None:
    """All that is known of what `pod`'s attempt used: its record's, the record its job keeps
    of it (a pod still there shows without it) and the backend's latest, as one."""
    found = [u for u in (pod.usage, kept.get(pod.name), live.get(pod.name)) if u is not None]
    if not found:
        return None
    merged = found[0]
    for other in found[1:]:
        merged = merged.merged(other)
    return merged


def _running(pod: PodRecord) -> bool:
    return pod.container.state == "running"


def _seconds_run(pod: PodRecord, now: datetime) -> float | None:
    state = pod.container
    if state.started_at is None:
        return None
    end = state.finished_at if state.state == "terminated" else now
    return None if end is None else max(0.0, (end - state.started_at).total_seconds())


def attempt_usage(
    index: int, pod: PodRecord, usage: Usage | None, report: UsageReport, now: datetime
) -> AttemptUsage:
    """One attempt's figures with their hint, or why there are none."""
    requests, limits = dict(report.requests), dict(report.limits)
    common = {"pod_index": index, "name": pod.name, "requests": requests, "limits": limits}
    if usage is None or usage.samples == 0:
        why = unavailable_reason(pod, report)
        return built(AttemptUsage, **common, available=False, reason=why, hint=f"no figures: {why}")
    return built(
        AttemptUsage,
        **common,
        available=True,
        peak_memory_bytes=usage.peak_memory_bytes,
        cpu_seconds=round(usage.cpu_seconds, 3),
        cpu_estimated=usage.estimated,
        samples=usage.samples,
        hint=hint(
            usage,
            requests=requests,
            limits=limits,
            seconds_run=_seconds_run(pod, now),
            running=_running(pod),
        ),
    )


def unavailable_reason(pod: PodRecord, report: UsageReport) -> str:
    if not attempt_started(pod):
        return NOT_STARTED
    if report.unavailable is not None:
        return report.unavailable
    if _running(pod):
        return f"no sample yet; figures come from {report.source}"
    return (
        "no sample was taken while it ran (too briefly, or before this scheduler saw it); "
        f"figures come from {report.source}"
    )


def hint(
    usage: Usage,
    *,
    requests: Mapping[str, str],
    limits: Mapping[str, str],
    seconds_run: float | None,
    running: bool,
) -> str:
    """E.g. "peak 410 MiB of a 2 GiB limit; 12.3 CPU seconds in 40 s, 0.31 CPU on average of a
    1 CPU limit"."""
    memory = f"peak {size_text(usage.peak_memory_bytes)}"
    memory_limit, memory_request = _value(limits, "memory"), _value(requests, "memory")
    if memory_limit is not None:
        memory += f" of a {size_text(memory_limit)} limit"
    elif memory_request is not None:
        memory += f", {size_text(memory_request)} requested, no limit"
    else:
        memory += ", no memory limit"
    cpu = f"{'about ' if usage.estimated else ''}{_amount(usage.cpu_seconds)} CPU seconds"
    if seconds_run:
        cpu += f" in {duration_text(seconds_run)}, "
        cpu += f"{_amount(usage.cpu_seconds / seconds_run)} CPU on average"
        if (cpu_limit := _value(limits, "cpu")) is not None:
            cpu += f" of a {_decimal(cpu_limit, 2)} CPU limit"
    if usage.estimated:
        samples = f"{usage.samples} sample{'s' if usage.samples != 1 else ''}"
        cpu += f" (estimated from {samples})"
    text = f"{memory}; {cpu}"
    return f"so far: {text}" if running else text


def _value(resources: Mapping[str, str], name: str) -> float | None:
    given = resources.get(name)
    value = quantity(given) if given is not None else None
    return value if value is not None and value > 0 else None


def _amount(value: float) -> str:
    """CPU seconds or cores: less than the last decimal shown is not nothing (a kernel counts
    CPU time in hundredths of a second)."""
    return "under 0.01" if value < 0.005 else _decimal(value)


def _decimal(value: float, places: int | None = None) -> str:
    """A figure with as many decimals as it needs to say something (0.03, 1.5, 12.3, 410)."""
    if places is None:
        places = 2 if value < 10 else 1 if value < 100 else 0
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def size_text(size: float) -> str:
    """Bytes in binary units: "410 MiB", "1.5 GiB", "2 GiB"."""
    unit = 0
    while size >= 1024 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{_decimal(size, 1 if size < 10 else 0)} {_UNITS[unit]}"


def duration_text(seconds: float) -> str:
    """ "0.6 s", "40 s", "2 min 5 s", "1 h 3 min"."""
    if seconds < 10:
        return f"{_decimal(seconds, 1)} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
