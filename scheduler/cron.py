"""Schedule expressions: five cron fields, the `@hourly`-style macros, `@every <duration>`, each in
an IANA time zone, and the pure `next_tick` that the schedules' timers and `GET /schedules` share.

`@every` ticks are counted from the Unix epoch, not from when a process started, so every replica
and every restart agrees on when the ticks are (a run's name is made from its tick).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from scheduler.clock import utcnow

# As Kubernetes CronJobs (robfig/cron) spell them.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EVERY = re.compile(r"^@every\s+(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed expression: either cron `fields` in `zone`, or a fixed period (`every`)."""

    expression: str
    zone: ZoneInfo
    fields: str | None = None
    every: timedelta | None = None


def parse_time_zone(name: str) -> ZoneInfo:
    """ValueError naming the zone when it is not an IANA time zone known here."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Oslo)") from exc


def parse_cron(expression: str, time_zone: str = "UTC") -> Cron:
    """ValueError saying what is wrong with the expression or the time zone."""
    zone = parse_time_zone(time_zone)
    text = " ".join(expression.split())
    if text.startswith("@every"):
        return Cron(text, zone, every=_period(text))
    fields = MACROS.get(text.lower(), text)
    if fields.startswith("@"):
        known = ", ".join([*MACROS, "@every <duration>"])
        raise ValueError(f"unknown macro {text!r} (one of {known})")
    if len(fields.split()) != 5:
        raise ValueError(
            f"{text!r} has {len(fields.split())} fields; a cron expression has five "
            "(minute hour day-of-month month day-of-week)"
        )
    try:
        next(CronSim(fields, utcnow().astimezone(zone)))
    except CronSimError as exc:
        raise ValueError(f"{text!r} is not a valid cron expression: {exc}") from exc
    except StopIteration:
        raise ValueError(f"{text!r} never matches a date") from None
    return Cron(text, zone, fields=fields)


def _period(text: str) -> timedelta:
    match = _EVERY.match(text)
    if match is None or not any(match.groups()):
        raise ValueError(f"{text!r}: expected `@every <duration>` such as 90s, 5m, 1h or 1h30m")
    hours, minutes, seconds = (int(group or 0) for group in match.groups())
    period = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if period < timedelta(seconds=1):
        raise ValueError(f"{text!r}: the period must be at least one second")
    return period


def next_tick(cron: Cron, after: datetime) -> datetime:
    """The first tick strictly after `after`, in UTC with whole seconds; ValueError when there is
    none in the next 50 years."""
    after = after.astimezone(UTC)
    if cron.every is not None:
        period = int(cron.every.total_seconds())
        elapsed = int((after - _EPOCH).total_seconds() // 1)
        return _EPOCH + timedelta(seconds=(elapsed // period + 1) * period)
    assert cron.fields is not None
    try:
        return next(CronSim(cron.fields, after.astimezone(cron.zone))).astimezone(UTC)
    except StopIteration:
        raise ValueError(f"{cron.expression!r} has no tick after {after.isoformat()}") from None
