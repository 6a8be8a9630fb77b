"""Now, in UTC: the one clock of the package (tests replace `utcnow` where a module names it), and
the same instant as the scheduler writes it where a second is too coarse: RFC 3339 to the
microsecond (`2024-05-01T12:00:00.123456Z`), the way log lines are timed."""

from __future__ import annotations

from datetime import UTC, datetime

# Replicas' clocks differ a little: a deadline another replica wrote is judged passed only this
# much after it (a creation about to commit, an Idempotency-Key claim about to be used).
CLOCK_SKEW_SECONDS = 2.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def now_rfc3339_micro() -> str:
    return utcnow().isoformat(timespec="microseconds").replace("+00:00", "Z")
