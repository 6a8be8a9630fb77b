"""Names of jobs, batches and batch jobs, as Radix makes them."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

_SUFFIX_LENGTH = 8
_system_random = random.SystemRandom()


def new_job_name(job: str, now: datetime | None = None, rng: random.Random | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{job}-{moment:%Y%m%d%H%M%S}-{_letters(rng)}"


def _letters(rng: random.Random | None) -> str:
    return "".join((rng or _system_random).choices(string.ascii_lowercase, k=_SUFFIX_LENGTH))


# The job's name is cut in a batch name so `<batch>-<8>` stays a valid 63-character label value
# (radix-operator cuts it to 16 as well).
BATCH_JOB_PREFIX_LENGTH = 16


def new_batch_name(job: str, now: datetime | None = None, rng: random.Random | None = None) -> str:
    """`batch-<job>-<yyyymmddHHMMSS>-<8 random lowercase letters>`."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
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


def short_job_name(batch: str, job: str) -> str:
    """A batch job's name without its batch's prefix (Radix's paths take either)."""
    return job.removeprefix(f"{batch}-")
