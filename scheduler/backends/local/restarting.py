"""Restarting a local job: one write puts its row back to waiting, as if new, with the time of the
restart and the index its next attempt takes. Its attempts so far stay (the job's record shows
them as previous attempts), its payload file and request are the ones it was created with, and
the backoff limit counts failures from the restart on."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from scheduler.backends.local.schema import Attempt, JobChanges, JobState, StoredJob

RESTARTABLE_STATES: frozenset[JobState] = frozenset({"succeeded", "failed", "stopped"})


def is_restartable(job: StoredJob) -> bool:
    return job.state in RESTARTABLE_STATES


def restart_changes(attempts: Sequence[Attempt], now: datetime) -> JobChanges:
    """The row of a restarted job whose attempts so far are `attempts`."""
    return {
        "state": "waiting",
        "started": None,
        "completed": None,
        "failed_attempts": 0,
        "condition_type": None,
        "condition_reason": None,
        "condition_message": None,
        "condition_time": None,
        "stopped_at": None,
        "restarted": now,
        "first_attempt": max((attempt.idx for attempt in attempts), default=-1) + 1,
    }
