"""Waiting for a job's attempt record in the fake cluster: what the scheduler keeps of each
attempt is written in the background once the attempt ends."""

from __future__ import annotations

import json
from typing import Any

from scheduler.backends.kubernetes.attempts import RECORD_SUFFIX
from scheduler.backends.kubernetes.manifests import ANNOTATION_ATTEMPT_PREFIX, LABEL_ATTEMPTS
from tests.conftest import NAMESPACE, wait_until
from tests.fakekube import FakeKube


def kept_attempts(kube: FakeKube, job: str) -> dict[str, str]:
    """How much the Job's record keeps of each attempt, by pod name."""
    found = kube.get("Job", NAMESPACE, job)
    annotations = (found or {}).get("metadata", {}).get("annotations") or {}
    return {
        key.removeprefix(ANNOTATION_ATTEMPT_PREFIX): json.loads(value).get("kept")
        for key, value in annotations.items()
        if key.startswith(ANNOTATION_ATTEMPT_PREFIX)
    }


async def attempts_kept(kube: FakeKube, job: str, count: int = 1, timeout: float = 15) -> None:
    """Until the Job's record keeps `count` attempts whole (read once they had ended)."""

    async def kept() -> bool:
        return list(kept_attempts(kube, job).values()).count("final") >= count

    await wait_until(kept, timeout=timeout)


def kept_summaries(kube: FakeKube, job: str) -> dict[str, dict[str, Any]]:
    """What the Job's annotations keep of each attempt, by pod name."""
    found = kube.get("Job", NAMESPACE, job)
    annotations = (found or {}).get("metadata", {}).get("annotations") or {}
    return {
        key.removeprefix(ANNOTATION_ATTEMPT_PREFIX): json.loads(value)
        for key, value in annotations.items()
        if key.startswith(ANNOTATION_ATTEMPT_PREFIX)
    }


def attempt_record(kube: FakeKube, job: str) -> dict[str, Any] | None:
    """The ConfigMap that keeps the job's attempts' logs and results; None when there is none."""
    return kube.get("ConfigMap", NAMESPACE, f"{job}{RECORD_SUFFIX}")


def attempt_records(kube: FakeKube) -> list[str]:
    """The names of every attempt record in the namespace."""
    records = kube.list("ConfigMap", NAMESPACE, f"{LABEL_ATTEMPTS}=true")
    return [record["metadata"]["name"] for record in records]
