"""Restarting a job on Kubernetes. A finished Job cannot run again, so it is replaced by a Job of
the same name and spec. The job's payload Secret (or its payload's part Secrets, which the spec's
init container puts together again) and Service are never written: a single job's
are owned by its anchor (a ConfigMap), which is handed over to the new Job; a batch job's by its
batch record, which the new Job keeps as its owner. (The Role grants no patch of Secrets, which
would answer with their content, nor of Services.)

Every step can be done again, so a crash anywhere is finished by whoever comes next:
1. a record, the ConfigMap `restart-<job>`, holds the replacement Job (the old one's spec, with
   the attempts of the runs so far and the restart time in its annotations) and what it replaces;
   creating it is the lock that keeps a second restart out;
2. the old Job is marked as taken (`ANNOTATION_REPLACED_BY`), on condition that it has not
   changed since it was read, and the record says so: a delete of the job refuses a marked Job,
   and deletes its Job on the same condition, so of a delete and a restart exactly one wins;
3. the old Job is deleted with `Orphan` propagation: the garbage collector takes it off its
   anchor and pods, and the Job is gone once that is done (every replica's watch sees the mark
   in its last state, so no view loses the job in between);
4. the replacement is created, suspended;
5. the anchor gets the new Job as its owner;
6. the old pods are deleted (their attempts live on in the new Job's annotation);
7. the new Job is started (unless it was stopped meanwhile), and the record deleted.
The recovery sweep does 2-7 for a record past its grace time. A record not marked whose old Job
is gone lost to a delete: it is dropped, and the job stays deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.backends.base import Identity, JobRecord, attempt_order
from scheduler.backends.kubernetes.attempts import without_kept
from scheduler.backends.kubernetes.client import KubeApi, Resource
from scheduler.backends.kubernetes.keeping import AttemptKeeper
from scheduler.backends.kubernetes.manifests import (
    ANNOTATION_COMMIT_DEADLINE,
    ANNOTATION_CREATED_AT,
    ANNOTATION_GAVE_UP,
    ANNOTATION_GAVE_UP_AT,
    ANNOTATION_PREVIOUS_ATTEMPTS,
    ANNOTATION_REPLACED_BY,
    ANNOTATION_RESTARTED_AT,
    ANNOTATION_START_AFTER,
    ANNOTATION_STARTED_AT,
    ANNOTATION_STOPPED_AT,
    LABEL_BATCH_NAME,
    LABEL_PENDING,
    LABEL_RESTART,
    RUNNING_PODS,
    anchor_name,
    identity_labels,
    job_owner,
    job_pods_selector,
    payload_secret_name,
)
from scheduler.backends.kubernetes.payloads import has_parts
from scheduler.backends.kubernetes.records import attempt_summary, job_record, pod_record
from scheduler.backends.kubernetes.recovering import list_all
from scheduler.errors import (
    BackendUnavailableError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    SchedulerError,
)
from scheduler.models.wire import rfc3339

log = logging.getLogger(__name__)

RECORD_PREFIX = "restart-"
# The newest attempts a restarted job keeps (an annotation holds at most 256 KiB in all).
MAX_PREVIOUS_ATTEMPTS = 100
# Waiting for the garbage collector to let the old Job go: polls from this, doubling to the max.
GONE_POLL_SECONDS = 0.05
MAX_GONE_POLL_SECONDS = 1.0
# The mark and the start are conditional on the Job not having changed (a delete or a stop may
# come in between); each is tried this many times while the Job controller changes its status.
START_ATTEMPTS = 5
_EPOCH = datetime.min.replace(tzinfo=UTC)
# What the API server adds to a Job's pod template and selector; the replacement gets its own.
_GENERATED_LABELS = (
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
)
# The old Job's state, which is not the replacement's. A restart runs at once: a start time
# that held the job is not its replacement's, nor a give-up for waiting too long.
_DROPPED_ANNOTATIONS = (
    ANNOTATION_STOPPED_AT,
    ANNOTATION_STARTED_AT,
    ANNOTATION_COMMIT_DEADLINE,
    ANNOTATION_REPLACED_BY,
    ANNOTATION_START_AFTER,
    ANNOTATION_GAVE_UP_AT,
    ANNOTATION_GAVE_UP,
)
# Who marks an old Job, in its managedFields: the restart, apart from the scheduler's other writes.
MARK_FIELD_MANAGER = "job-scheduler-restart"
# The record's word that the old Job is marked (step 2); records made before marks count as
# marked, as their restarts deleted the old Job straight away.
MARKED_KEY = "marked"


# -- pure: the replacement and the record ---------------------------------------------------------


def record_name(job: str) -> str:
    return f"{RECORD_PREFIX}{job}"


def is_being_replaced(job: dict[str, Any]) -> bool:
    """A restart has taken hold of this Job (step 2): it is going, and the job lives on."""
    return ANNOTATION_REPLACED_BY in (job["metadata"].get("annotations") or {})


def replacement_job(old: dict[str, Any], previous: list[dict[str, Any]], now: datetime) -> Any:
    """The Job that runs `old` again: its spec, labels, annotations and owner (a batch's), born
    suspended, remembering `previous` attempts, the restart time and when the job was created."""
    metadata = old["metadata"]
    annotations = {
        key: value
        for key, value in without_kept(metadata.get("annotations") or {}).items()
        if key not in _DROPPED_ANNOTATIONS
    }
    annotations[ANNOTATION_CREATED_AT] = (
        annotations.get(ANNOTATION_CREATED_AT) or metadata.get("creationTimestamp") or ""
    )
    annotations[ANNOTATION_RESTARTED_AT] = rfc3339(now) or ""
    annotations[ANNOTATION_PREVIOUS_ATTEMPTS] = json.dumps(previous, separators=(",", ":"))
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != LABEL_PENDING}
    spec = copy.deepcopy(old["spec"])
    spec.pop("selector", None)
    spec["suspend"] = True
    # A job of a batch that never started was held (parallelism 0): its replacement runs.
    spec["parallelism"] = RUNNING_PODS
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    for label in _GENERATED_LABELS:
        template_labels.pop(label, None)
    replacement: dict[str, Any] = {"name": metadata["name"], "labels": labels}
    replacement["annotations"] = annotations
    if metadata.get("ownerReferences"):
        replacement["ownerReferences"] = copy.deepcopy(metadata["ownerReferences"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": replacement, "spec": spec}


@dataclass(frozen=True, slots=True)
class Restart:
    """A restart under way: the job, the Job it replaces, that Job's pods, the replacement, and
    whether the old Job is marked as this restart's."""

    name: str
    replaces: str  # the old Job's uid
    pods: tuple[tuple[str, str], ...]  # (name, uid) of the old pods
    job: dict[str, Any]
    marked: bool = False

    def record(self, identity: Identity, deadline: datetime) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": record_name(self.name),
                "labels": {**identity_labels(identity), LABEL_RESTART: "true"},
                "annotations": {ANNOTATION_COMMIT_DEADLINE: rfc3339(deadline) or ""},
            },
            "data": {
                "job": json.dumps(self.job, separators=(",", ":")),
                "replaces": self.replaces,
                "pods": json.dumps([list(pod) for pod in self.pods]),
                MARKED_KEY: "true" if self.marked else "false",
            },
        }

    @classmethod
    def of_record(cls, record: dict[str, Any]) -> Restart:
        """ValueError (or KeyError, TypeError) when the record is not one of ours."""
        data = record["data"]
        job = json.loads(data["job"])
        if not isinstance(job, dict):
            raise ValueError("the replacement Job is not an object")
        pods = tuple((str(name), str(uid)) for name, uid in json.loads(data["pods"]))
        marked = data.get(MARKED_KEY, "true") == "true"
        return cls(job["metadata"]["name"], str(data["replaces"]), pods, job, marked)


def _restarted_at(job: dict[str, Any]) -> Any:
    return (job["metadata"].get("annotations") or {}).get(ANNOTATION_RESTARTED_AT)


def _has_ended(job: dict[str, Any]) -> bool:
    record = job_record(job)
    if any(record.condition(kind) for kind in ("Complete", "SuccessCriteriaMet")):
        return True
    if any(record.condition(kind) for kind in ("Failed", "FailureTarget")):
        return True
    return record.stopped_at is not None and record.active == 0


def _payload_secret(job: dict[str, Any]) -> str | None:
    secret = payload_secret_name(job["metadata"]["name"])
    volumes = job["spec"]["template"]["spec"].get("volumes") or ()
    mounted = any((volume.get("secret") or {}).get("secretName") == secret for volume in volumes)
    return secret if mounted else None


def _has_service(job: dict[str, Any]) -> bool:
    containers = job["spec"]["template"]["spec"].get("containers") or ()
    return any(container.get("ports") for container in containers)


def _has_anchor(job: dict[str, Any]) -> bool:
    """A single job with a payload (in one Secret or in parts) or a Service
    (`manifests.has_anchor`, read off its Job)."""
    if LABEL_BATCH_NAME in (job["metadata"].get("labels") or {}):
        return False
    pod_spec = job["spec"]["template"]["spec"]
    return _payload_secret(job) is not None or has_parts(pod_spec) or _has_service(job)


def _restartable(name: str, uid: str, job: dict[str, Any] | None) -> dict[str, Any]:
    """The Job `uid` as read, unless it is gone, replaced or being replaced."""
    if job is None or job["metadata"].get("deletionTimestamp"):
        raise NotFoundError(f"job {name} not found")
    if job["metadata"].get("uid") != uid:
        raise ConflictError(f"job {name} was restarted meanwhile")
    if is_being_replaced(job):
        raise ConflictError(f"a restart of job {name} is already under way")
    return job


# -- the steps ------------------------------------------------------------------------------------


class Restarter:
    def __init__(
        self,
        api: KubeApi,
        identity: Identity,
        keeper: AttemptKeeper,
        *,
        grace_seconds: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._api = api
        self._identity = identity
        self._keeper = keeper
        self._grace = grace_seconds
        self._clock = clock

    async def restart(self, name: str, uid: str, now: datetime) -> JobRecord:
        old = _restartable(name, uid, await self._api.find(Resource.JOBS, name))
        if not _has_ended(old):
            raise BadRequestError(f"cannot restart the job {name}: it has not ended")
        pods = [pod async for pod in self._pods(name)]
        # Their logs and results are kept before their pods are deleted (step 6).
        await self._keeper.keep_all(name, pods)
        try:
            old = _restartable(name, uid, await self._api.find(Resource.JOBS, name))
        except NotFoundError:
            # Gone meanwhile: deleted, or taken by another restart (its record says so).
            if await self._api.find(Resource.CONFIGMAPS, record_name(name)) is not None:
                raise ConflictError(f"a restart of job {name} is already under way") from None
            raise
        record = job_record(old)
        earlier = list(record.previous_attempts)
        known = {attempt.name for attempt in earlier}
        # The attempts its record keeps, with what their pods, where still there, say now; in
        # the order the job's status shows them.
        latest = {attempt.name: attempt for attempt in record.kept_attempts}
        latest.update((pod.name, pod) for pod in map(pod_record, pods) if pod.name not in latest)
        ordered = sorted(
            (pod for pod in latest.values() if pod.name not in known),
            key=attempt_order,
        )
        attempts = [attempt_summary(attempt) for attempt in (*earlier, *ordered)]
        restart = Restart(
            name,
            uid,
            tuple((pod["metadata"]["name"], pod["metadata"]["uid"]) for pod in pods),
            replacement_job(old, attempts[-MAX_PREVIOUS_ATTEMPTS:], now),
        )
        deadline = self._clock() + timedelta(seconds=self._grace)
        try:
            await self._api.create(Resource.CONFIGMAPS, restart.record(self._identity, deadline))
        except ConflictError as exc:
            raise ConflictError(f"a restart of job {name} is already under way") from exc
        finished = await self._finish(restart, deadline)
        assert finished is not None, "a restart that may wait finishes or raises"
        return job_record(finished)

    async def settle(self, record: dict[str, Any]) -> int:
        """Finish the restart of an overdue record (one for the recovery sweep); 1 if it did."""
        name = record["metadata"]["name"]
        try:
            restart = Restart.of_record(record)
        except (ValueError, KeyError, TypeError, IndexError):
            log.error("removing a restart record that cannot be read", extra={"job_name": name})
            await self._delete(Resource.CONFIGMAPS, name)
            return 1
        try:
            finished = await self._finish(restart, None)
        except (NotFoundError, ConflictError) as exc:
            log.warning(
                "dropped a restart that a crash left half-done: %s",
                exc.message,
                extra={"job_name": restart.name},
            )
            return 1
        except SchedulerError as exc:
            # Not the sweep's end: what else it settles does not wait for this restart.
            log.warning(
                "could not finish a restart yet; the next sweep tries again",
                extra={"job_name": restart.name, "error": exc.message},
            )
            return 0
        if finished is None:
            return 0  # the old Job is still being deleted: the next sweep goes on
        log.warning(
            "finished the restart of a job that a crash left half-done",
            extra={"job_name": restart.name},
        )
        return 1

    async def _finish(self, restart: Restart, deadline: datetime | None) -> dict[str, Any] | None:
        """Steps 2-7. Without a `deadline` it does not wait for the old Job to go: None then.
        NotFoundError or ConflictError (the record dropped) when the job was deleted or
        restarted before this restart took hold of it."""
        name = restart.name
        current = await self._api.find(Resource.JOBS, name)
        if not restart.marked:
            current = await self._mark(restart, current)
        if current is not None and current["metadata"].get("uid") == restart.replaces:
            if not current["metadata"].get("deletionTimestamp"):
                await self._delete(Resource.JOBS, name, uid=restart.replaces, propagation="Orphan")
            current = await self._gone(restart, deadline)
            if current is not None and current["metadata"].get("uid") == restart.replaces:
                return None
        if current is None:
            current = await self._create(restart)
        elif _restarted_at(current) != _restarted_at(restart.job):
            # Not our replacement: the job was deleted and its name taken meanwhile.
            await self._delete(Resource.CONFIGMAPS, record_name(name))
            raise ConflictError(f"job {name} was replaced by another job of that name meanwhile")
        await self._hand_over(restart, current["metadata"]["uid"])
        await asyncio.gather(
            *(self._delete(Resource.PODS, pod, uid=uid) for pod, uid in restart.pods)
        )
        started = await self._start(name, current)
        await self._delete(Resource.CONFIGMAPS, record_name(name))
        return started

    async def _mark(self, restart: Restart, current: dict[str, Any] | None) -> dict[str, Any]:
        """Step 2: the old Job (`current`, as last read) marked as this restart's, on condition
        that it has not changed meanwhile, and the record told so. When the Job was deleted or
        replaced first, the record is dropped: NotFoundError or ConflictError."""
        name = restart.name
        token = _restarted_at(restart.job)
        for _ in range(START_ATTEMPTS):
            if current is None or current["metadata"].get("uid") != restart.replaces:
                await self._delete(Resource.CONFIGMAPS, record_name(name))
                if current is None:
                    raise NotFoundError(f"job {name} not found")
                raise ConflictError(f"job {name} was restarted meanwhile")
            metadata = current["metadata"]
            if (metadata.get("annotations") or {}).get(ANNOTATION_REPLACED_BY) == token:
                break  # marked already, by this restart before a crash
            if metadata.get("deletionTimestamp"):
                await self._delete(Resource.CONFIGMAPS, record_name(name))
                raise NotFoundError(f"job {name} not found")
            patch = {
                "metadata": {
                    "resourceVersion": metadata["resourceVersion"],
                    "annotations": {ANNOTATION_REPLACED_BY: token},
                }
            }
            try:
                current = await self._api.patch(
                    Resource.JOBS, name, patch, field_manager=MARK_FIELD_MANAGER
                )
                break
            except (ConflictError, NotFoundError):
                # Changed or gone meanwhile: look again.
                current = await self._api.find(Resource.JOBS, name)
        else:
            raise BackendUnavailableError(
                f"job {name} kept changing while it was restarted; the restart is finished in "
                "the background"
            )
        told = {"data": {MARKED_KEY: "true"}}
        try:
            await self._api.patch(Resource.CONFIGMAPS, record_name(name), told)
        except NotFoundError:
            raise BackendUnavailableError(
                f"the restart of job {name} was taken over; it is finished in the background"
            ) from None
        return current

    def _pods(self, name: str) -> AsyncIterator[dict[str, Any]]:
        return list_all(self._api, Resource.PODS, job_pods_selector(self._identity, name))

    async def _gone(self, restart: Restart, deadline: datetime | None) -> dict[str, Any] | None:
        """The Job of that name once the old one is gone (None when there is none); the old one
        still, when it is not gone by `deadline` (at once without one)."""
        delay = GONE_POLL_SECONDS
        while True:
            current = await self._api.find(Resource.JOBS, restart.name)
            if current is None or current["metadata"].get("uid") != restart.replaces:
                return current
            if deadline is None:
                return current
            if self._clock() >= deadline:
                raise BackendUnavailableError(
                    f"job {restart.name} is restarted once its old Job is deleted, which takes "
                    "longer than its grace time; the restart is finished in the background"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_GONE_POLL_SECONDS)

    async def _create(self, restart: Restart) -> dict[str, Any]:
        try:
            return await self._api.create(Resource.JOBS, restart.job)
        except ConflictError:
            # Made meanwhile by the recovery sweep or another replica.
            current = await self._api.find(Resource.JOBS, restart.name)
            if current is None:
                raise BackendUnavailableError(
                    f"the replacement Job of job {restart.name} came and went; the restart is "
                    "finished in the background"
                ) from None
            return current

    async def _hand_over(self, restart: Restart, uid: str) -> None:
        """The attempt record, and the anchor with the payload Secret and the Service, belong to
        the new Job (so they go with it)."""
        await self._keeper.hand_over(restart.name, uid)
        if not _has_anchor(restart.job):
            return  # nothing to hand over, or a batch's job: its batch record owns them
        owner = {"metadata": {"ownerReferences": [job_owner(restart.name, uid)]}}
        try:
            await self._api.patch(Resource.CONFIGMAPS, anchor_name(restart.name), owner)
        except NotFoundError:
            # Made before jobs had anchors: its Secret and Service stay, owned by nothing.
            log.warning("a restarted job has no anchor", extra={"job_name": restart.name})

    async def _start(self, name: str, job: dict[str, Any]) -> dict[str, Any]:
        for _ in range(START_ATTEMPTS):
            metadata = job["metadata"]
            stopped = ANNOTATION_STOPPED_AT in (metadata.get("annotations") or {})
            if stopped or not job["spec"].get("suspend"):
                return job  # started already, or stopped meanwhile: it stays stopped
            patch = {
                "metadata": {"resourceVersion": metadata["resourceVersion"]},
                "spec": {"suspend": False},
            }
            try:
                return await self._api.patch(Resource.JOBS, name, patch)
            except ConflictError:
                current = await self._api.find(Resource.JOBS, name)
                if current is None:
                    raise NotFoundError(f"job {name} not found") from None
                job = current
        raise BackendUnavailableError(
            f"job {name} kept changing while it was started; the restart is finished in the "
            "background"
        )

    async def _delete(
        self,
        resource: Resource,
        name: str,
        *,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> None:
        with contextlib.suppress(NotFoundError):  # done already
            await self._api.delete(resource, name, uid=uid, propagation=propagation)
