"""Job names: `<job>-<yyyymmddHHMMSS>-<8 random lowercase letters>`, as Radix names them."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime

_SUFFIX_LENGTH = 8
_system_random = random.SystemRandom()


def new_job_name(job: str, now: datetime | None = None, rng: random.Random | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    letters = "".join((rng or _system_random).choices(string.ascii_lowercase, k=_SUFFIX_LENGTH))
    return f"{job}-{moment:%Y%m%d%H%M%S}-{letters}"
