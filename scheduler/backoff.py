"""Exponential back-off with jitter: what a loop waits between tries of something that failed, be
it a watch or a log stream reconnecting to the API server or a webhook POST to a receiver."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Literal

INITIAL_BACKOFF_SECONDS = 0.2
# At most this long between tries: a server back from an outage is found again within it
# (readiness promises 5 s).
MAX_BACKOFF_SECONDS = 4.0
# The ceiling stops doubling here: a long outage must not overflow a float (2.0**1024 does).
_MAX_DOUBLINGS = 60

Jitter = Literal["equal", "full"]


class Backoff:
    """A delay per failed try. The ceiling starts at `initial`, doubles with each delay up to
    `maximum`, and starts over after a success (`reset`); each delay is a random share of it:

    - `equal` jitter (the default): half the ceiling plus a random share of the other half, so
      never less than half and a flapping server is not hammered;
    - `full` jitter: anywhere from 0 to the ceiling, which spreads the retries of many senders
      the most.
    """

    def __init__(
        self,
        initial: float = INITIAL_BACKOFF_SECONDS,
        maximum: float = MAX_BACKOFF_SECONDS,
        *,
        jitter: Jitter = "equal",
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._initial, self._maximum, self._jitter, self._rng = initial, maximum, jitter, rng
        self._attempt = 0

    def reset(self) -> None:
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = self._next_ceiling()
        if self._jitter == "full":
            return ceiling * self._rng()
        return ceiling / 2 + ceiling / 2 * self._rng()

    def delay_after(self, retry_after_seconds: float | None) -> float:
        """The next delay, or what the other side asked for (`Retry-After`) when it did, cut to
        `maximum`; the ceiling doubles either way."""
        if retry_after_seconds is None:
            return self.next_delay()
        self._next_ceiling()
        return min(retry_after_seconds, self._maximum)

    def _next_ceiling(self) -> float:
        doublings = min(self._attempt, _MAX_DOUBLINGS)
        self._attempt += 1
        return min(self._maximum, self._initial * 2.0**doublings)
