"""What a loop waits after each failure: a ceiling that doubles up to its maximum and starts over
after a success, with equal or full jitter, and a receiver's Retry-After honoured up to the
maximum."""

from __future__ import annotations

import pytest

from scheduler.backoff import Backoff


def delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_the_ceiling_doubles_from_the_first_delay_up_to_the_maximum() -> None:
    backoff = Backoff(0.2, 4.0, rng=lambda: 1.0)
    assert delays(backoff, 7) == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 4.0, 4.0])


def test_equal_jitter_never_waits_less_than_half_the_ceiling() -> None:
    backoff = Backoff(0.2, 4.0, rng=lambda: 0.0)
    assert delays(backoff, 6) == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0])


def test_full_jitter_may_wait_anywhere_from_nothing_to_the_ceiling() -> None:
    assert delays(Backoff(1.0, 8.0, jitter="full", rng=lambda: 0.0), 3) == [0.0, 0.0, 0.0]
    assert delays(Backoff(1.0, 8.0, jitter="full", rng=lambda: 0.5), 4) == [0.5, 1.0, 2.0, 4.0]


def test_a_success_starts_the_ceiling_over() -> None:
    backoff = Backoff(0.2, 4.0, rng=lambda: 1.0)
    delays(backoff, 5)
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.2)


def test_an_outage_of_thousands_of_failures_keeps_waiting_the_maximum() -> None:
    backoff = Backoff(0.2, 4.0, rng=lambda: 1.0)
    assert delays(backoff, 5000)[-1] == 4.0


def test_a_retry_after_is_honoured_up_to_the_maximum_and_still_grows_the_ceiling() -> None:
    backoff = Backoff(1.0, 30.0, jitter="full", rng=lambda: 1.0)
    assert backoff.delay_after(7.0) == 7.0
    assert backoff.delay_after(600.0) == 30.0
    assert backoff.delay_after(None) == 4.0  # the third delay: the ceiling grew twice meanwhile
