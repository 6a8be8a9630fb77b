"""Names of jobs, batches, batch jobs and scheduled runs, as Radix makes them."""

from __future__ import annotations

import hashlib
import random
import string
from datetime import UTC, datetime

from scheduler.clock import utcnow

_SUFFIX_LENGTH = 8
_system_random = random.SystemRandom()


def new_job_name(job: str, now: datetime | None = None, rng: random.Random | None = None) -> str:
    moment = (now or utcnow()).astimezone(UTC)
    return f"{job}-{moment:%Y%m%d%H%M%S}-{_letters(rng)}"


def _letters(rng: random.Random | None) -> str:
    return "".join((rng or _system_random).choices(string.ascii_lowercase, k=_SUFFIX_LENGTH))


# The job's name is cut in a batch name so `<batch>-<8>` stays a valid 63-character label value
# (radix-operator cuts it to 16 as well).
BATCH_JOB_PREFIX_LENGTH = 16


def new_batch_name(job: str, now: datetime | None = None, rng: random.Random | None = None) -> str:
    """`batch-<job>-<yyyymmddHHMMSS>-<8 random lowercase letters>`."""
    moment = (now or utcnow()).astimezone(UTC)
    prefix = job[:BATCH_JOB_PREFIX_LENGTH].rstrip("-")
    return f"batch-{prefix}-{moment:%Y%m%d%H%M%S}-{_letters(rng)}"


def new_batch_job_names(batch: str, count: int, rng: random.Random | None = None) -> list[str]:
    """`<batch>-<8 random lowercase letters>`, distinct within the batch."""
    names: list[str] = []
    while len(names) < count:
        name = f"{batch}-{_letters(rng)}"
        if name not in names:
            names.append(name)
    return names


def run_name(job: str, schedule: str, tick: datetime) -> str:
    """A scheduled run's name, `<job>-<yyyymmddHHMMSS of the tick>-<8 letters from a hash of
    schedule and tick>`: the same for every replica, so a tick's run is created once."""
    tick = tick.astimezone(UTC)
    digest = hashlib.sha256(f"{schedule}\n{tick:%Y-%m-%dT%H:%M:%SZ}".encode()).digest()
    letters = "".join(string.ascii_lowercase[byte % 26] for byte in digest[:_SUFFIX_LENGTH])
    return f"{job}-{tick:%Y%m%d%H%M%S}-{letters}"
