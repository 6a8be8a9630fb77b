"""Exponential back-off with equal jitter: what every loop that reconnects to the API server waits
between tries."""

from __future__ import annotations

import random
from collections.abc import Callable

INITIAL_BACKOFF_SECONDS = 0.2
# At most this long between tries: a server back from an outage is found again within it
# (readiness promises 5 s).
MAX_BACKOFF_SECONDS = 4.0


class Backoff:
    """Each delay is half the current ceiling plus a random share of the other half (equal
    jitter: never less than half, so a flapping server is not hammered); the ceiling doubles up
    to `maximum` and starts over after a success (`reset`)."""

    def __init__(
        self,
        initial: float = INITIAL_BACKOFF_SECONDS,
        maximum: float = MAX_BACKOFF_SECONDS,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._initial, self._maximum, self._rng = initial, maximum, rng
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._maximum, self._initial * 2**self._attempt)
        self._attempt += 1
        return float(ceiling / 2 + ceiling / 2 * self._rng())
