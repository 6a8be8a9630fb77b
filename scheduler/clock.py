"""Now, as the scheduler writes it where a second is too coarse: RFC 3339 UTC to the microsecond
(`2024-05-01T12:00:00.123456Z`), the way log lines are timed."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339_micro() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
