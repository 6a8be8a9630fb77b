"""The Job controller: creates each Job's Pods, counts their outcomes into the Job's status
exactly once (through the `batch.kubernetes.io/job-tracking` finalizer, as the real one does)
and decides completion and failure: backoffLimit, activeDeadlineSeconds, podFailurePolicy,
suspend, ttlSecondsAfterFinished. Durations are simulated seconds (see Clock).

Counting takes two status writes, as in the real controller: finished pods are first recorded
in `status.uncountedTerminatedPods` (with the interim SuccessCriteriaMet/FailureTarget
condition), then their finalizers go, then they move into `succeeded`/`failed` in the write
that also sets Complete/Failed when the Job is done.
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any

from . import jobstatus as js
from .clock import Clock, rfc3339
from .errors import ApiError
from .events import EventRecorder
from .kinds import JOB, POD
from .managedfields import CONTROLLER_MANAGER
from .options import DeleteOptions
from .registry import Registry
from .storage import Event, Key, Record
from .workqueue import Controller

JSON = dict[str, Any]

POD_BACK_OFF_SECONDS = 10.0  # the real controller's back-off after a failed pod, doubling
MAX_POD_BACK_OFF_SECONDS = 360.0
COMPONENT = "job-controller"


def _controller_uid(pod: Record) -> str | None:
    for ref in pod.metadata.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return str(ref.get("uid"))
    return None


class JobController(Controller):
    def __init__(self, registry: Registry, clock: Clock, recorder: EventRecorder) -> None:
        super().__init__(registry.store, "fakekube-job-controller")
        self.registry = registry
        self.clock = clock
        self.recorder = recorder
        # In-memory state of the controller, keyed by Job uid.
        self._started_at: dict[str, float] = {}
        self._finished_at: dict[str, float] = {}
        self._retry_at: dict[str, float] = {}

    def start(self) -> None:
        super().start()
        for record in self.store.records(JOB, None):
            self.queue.add(record.key)

    def on_event(self, event: Event) -> None:
        record = event.record
        if record.kind is JOB:
            if event.type == "DELETED":
                for state in (self._started_at, self._finished_at, self._retry_at):
                    state.pop(record.uid, None)
                self.queue.forget(record.key)
            else:
                self.queue.add(record.key)
        elif record.kind is POD:
            owner_uid = _controller_uid(record)
            owner = self.store.by_uid(owner_uid) if owner_uid else None
            if owner is not None and owner.kind is JOB:
                self.queue.add(owner.key)
            elif event.type != "DELETED" and js.TRACKING_FINALIZER in (
                record.metadata.get("finalizers") or []
            ):
                self.queue.add(record.key)  # an orphan still holding our finalizer

    def process(self, key: Key) -> None:
        if key[0] == JOB.name:
            self._sync(key)
        else:
            self._release_orphan(key)

    # pods

    def _release(self, pod: Record) -> None:
        def drop(obj: JSON) -> None:
            finalizers = obj["metadata"].get("finalizers") or []
            obj["metadata"]["finalizers"] = [f for f in finalizers if f != js.TRACKING_FINALIZER]

        if js.TRACKING_FINALIZER in (pod.metadata.get("finalizers") or []):
            self.registry.update(POD, pod.namespace, pod.name, drop, manager=CONTROLLER_MANAGER)

    def _release_orphan(self, key: Key) -> None:
        pod = self.store.get_key(key)
        if pod is None:
            return
        owner_uid = _controller_uid(pod)
        owner = self.store.by_uid(owner_uid) if owner_uid else None
        if owner is None or owner.kind is not JOB:
            self._release(pod)

    def _create_pod(self, job: Record) -> bool:
        template = job.obj["spec"].get("template") or {}
        template_metadata = template.get("metadata") or {}
        pod = {
            "metadata": {
                "generateName": f"{job.name}-",
                "labels": copy.deepcopy(template_metadata.get("labels") or {}),
                "annotations": copy.deepcopy(template_metadata.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": JOB.api_version,
                        "kind": JOB.name,
                        "name": job.name,
                        "uid": job.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "finalizers": [js.TRACKING_FINALIZER],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        try:
            created = self.registry.create(POD, job.namespace, pod, manager=CONTROLLER_MANAGER)
        except ApiError as exc:
            self._event(job, "FailedCreate", f"Error creating: {exc.message}", warning=True)
            return False
        self._event(job, "SuccessfulCreate", f"Created pod: {created.name}")
        return True

    def _delete_pods(self, job: Record, pods: list[Record], *, counted: bool) -> None:
        """Delete pods; uncounted ones lose the tracking finalizer first, as the real
        controller's deleteJobPods does, so their end is never counted as a failure."""
        for pod in pods:
            if not counted:
                self._release(pod)
            with contextlib.suppress(ApiError):
                options = DeleteOptions(precondition_uid=pod.uid)
                self.registry.delete(POD, pod.namespace, pod.name, options)
                self._event(job, "SuccessfulDelete", f"Deleted pod: {pod.name}")

    # jobs

    def _sync(self, key: Key) -> None:
        job = self.store.get_key(key)
        if job is None:
            return
        pods = [
            p
            for p in self.store.dependents(job.uid)
            if p.kind is POD and _controller_uid(p) == job.uid
        ]
        if job.metadata.get("deletionTimestamp"):
            for pod in pods:  # let the garbage collector take them
                self._release(pod)
            return
        status: JSON = copy.deepcopy(job.obj.get("status") or {})
        if js.is_finished(status):
            self._after_finish(job, pods)
            return
        spec: JSON = job.obj["spec"]
        now = time.monotonic()
        failure, finished = self._count(job, spec, status, pods, now)
        failure_target = js.condition(status, "FailureTarget")
        if failure is None and failure_target is not None:
            failure = (str(failure_target.get("reason")), str(failure_target.get("message")))
        failure = failure or self._limits_exceeded(job, spec, status, pods, now)

        active = [p for p in pods if not js.is_terminal(p) and not js.is_deleting(p)]
        terminating = [p for p in pods if js.is_deleting(p) and not js.is_terminal(p)]
        if failure is not None:
            self._fail(job, status, failure, active, terminating)
        elif self._succeeded(spec, status, active):
            self._complete(job, status, active, terminating)
        elif spec.get("suspend"):
            self._suspend(job, status, active, terminating)
        else:
            self._resume_and_run(job, spec, status, active, terminating, now)
        self._flush(job, status, finished)

    def _count(
        self, job: Record, spec: JSON, status: JSON, pods: list[Record], now: float
    ) -> tuple[tuple[str, str] | None, list[Record]]:
        """Record newly finished pods in status.uncountedTerminatedPods; return a FailJob
        decision and the finished pods, whose finalizers may go once that is stored."""
        finished: list[Record] = []
        wait_for_terminal = spec.get("podReplacementPolicy") == "Failed"
        failure: tuple[str, str] | None = None
        uncounted: JSON = status.setdefault("uncountedTerminatedPods", {})
        recorded = {*uncounted.get("succeeded", ()), *uncounted.get("failed", ())}
        for pod in pods:
            if js.TRACKING_FINALIZER not in (pod.metadata.get("finalizers") or []):
                continue
            result = js.outcome(pod, wait_for_terminal)
            if result is None:
                continue
            finished.append(pod)
            if pod.uid in recorded:  # recorded before its finalizer could go
                continue
            if result == "succeeded":
                uncounted.setdefault("succeeded", []).append(pod.uid)
                continue
            rule = js.failure_rule(spec, pod)
            if rule is not None and rule[0] == "Ignore":
                continue
            uncounted.setdefault("failed", []).append(pod.uid)
            self._retry_at[job.uid] = now + self._back_off(js.total(status, "failed"))
            if rule is not None and rule[0] in ("FailJob", "FailIndex"):
                failure = failure or ("PodFailurePolicy", rule[1])
        return failure, finished

    def _flush(self, job: Record, status: JSON, finished: list[Record]) -> None:
        """Store the status; with pods recorded as uncounted, in two writes around the removal
        of their finalizers, so no pod is counted twice or lost."""
        uncounted: JSON = status.get("uncountedTerminatedPods") or {}
        if not any(uncounted.values()):
            self._write_status(job, status)
            for pod in finished:
                self._release(pod)
            return
        interim = copy.deepcopy(status)
        js.withhold_finish(interim)
        self._write_status(job, interim)
        for pod in finished:
            self._release(pod)
        held = {
            pod.uid
            for pod in self.store.dependents(job.uid)
            if js.TRACKING_FINALIZER in (pod.metadata.get("finalizers") or [])
        }
        for field in ("succeeded", "failed"):
            uids = uncounted.pop(field, None) or []
            left = [uid for uid in uids if uid in held]
            if len(left) < len(uids):
                status[field] = status.get(field, 0) + len(uids) - len(left)
            if left:
                uncounted[field] = left
        if any(uncounted.values()):  # a finalizer stayed: finish once it is counted
            js.withhold_finish(status)
            self.queue.add_after(job.key, 0.1)
        self._write_status(job, status)

    def _back_off(self, failures: int) -> float:
        simulated = min(POD_BACK_OFF_SECONDS * 2 ** (failures - 1), MAX_POD_BACK_OFF_SECONDS)
        return self.clock.seconds(simulated)

    def _limits_exceeded(
        self, job: Record, spec: JSON, status: JSON, pods: list[Record], now: float
    ) -> tuple[str, str] | None:
        failures = js.total(status, "failed")
        if spec["template"].get("spec", {}).get("restartPolicy") == "OnFailure":
            failures += js.restarts([p for p in pods if not js.is_terminal(p)])
        if failures > spec.get("backoffLimit", 6):
            return js.BACKOFF_LIMIT_EXCEEDED
        deadline = spec.get("activeDeadlineSeconds")
        started = self._started_at.get(job.uid)
        if deadline is not None and started is not None and not spec.get("suspend"):
            remaining = started + self.clock.seconds(deadline) - now
            if remaining <= 0:
                return js.DEADLINE_EXCEEDED
            self.queue.add_after(job.key, remaining)
        return None

    def _succeeded(self, spec: JSON, status: JSON, active: list[Record]) -> bool:
        if js.is_true(status, "SuccessCriteriaMet"):
            return True
        succeeded = js.total(status, "succeeded")
        completions = spec.get("completions")
        if completions is None:  # a work queue: done when one succeeded and the rest stopped
            return succeeded > 0 and not active
        return bool(succeeded >= completions)

    def _fail(
        self,
        job: Record,
        status: JSON,
        failure: tuple[str, str],
        active: list[Record],
        terminating: list[Record],
    ) -> None:
        reason, message = failure
        js.set_condition(status, "FailureTarget", True, reason, message)
        self._delete_pods(job, active, counted=True)
        if not active and not terminating:
            js.set_condition(status, "Failed", True, reason, message)
            self._finished_at[job.uid] = time.monotonic()
            self._event(job, reason, message, warning=True)
        js.counts(status, 0, 0, len(active) + len(terminating))

    def _complete(
        self, job: Record, status: JSON, active: list[Record], terminating: list[Record]
    ) -> None:
        reason, message = js.COMPLETIONS_REACHED
        js.set_condition(status, "SuccessCriteriaMet", True, reason, message)
        self._delete_pods(job, active, counted=False)
        if not active and not terminating:
            js.set_condition(status, "Complete", True, reason, message)
            status["completionTime"] = rfc3339()
            self._finished_at[job.uid] = time.monotonic()
            self._event(job, "Completed", "Job completed")
        js.counts(status, 0, 0, len(active) + len(terminating))

    def _suspend(
        self, job: Record, status: JSON, active: list[Record], terminating: list[Record]
    ) -> None:
        """Stop the active pods (gracefully); the deadline stops with them."""
        self._delete_pods(job, active, counted=False)
        if not js.is_true(status, "Suspended"):
            js.set_condition(status, "Suspended", True, "JobSuspended", "Job suspended")
            self._event(job, "Suspended", "Job suspended")
            # Since Kubernetes 1.36 (MutableSchedulingDirectivesForSuspendedJobs, on by
            # default) a suspension clears startTime; until then it stayed until the resumption.
            status.pop("startTime", None)
        self._started_at.pop(job.uid, None)
        js.counts(status, 0, 0, len(active) + len(terminating))

    def _resume_and_run(
        self,
        job: Record,
        spec: JSON,
        status: JSON,
        active: list[Record],
        terminating: list[Record],
        now: float,
    ) -> None:
        if js.is_true(status, "Suspended"):
            js.set_condition(status, "Suspended", False, "JobResumed", "Job resumed")
            self._event(job, "Resumed", "Job resumed")
            status.pop("startTime", None)  # the deadline counts again from the resumption
        if "startTime" not in status or job.uid not in self._started_at:
            status.setdefault("startTime", rfc3339())
            self._started_at[job.uid] = now
            if spec.get("activeDeadlineSeconds") is not None:
                self.queue.add_after(job.key, self.clock.seconds(spec["activeDeadlineSeconds"]))
        completions = spec.get("completions")
        wanted = spec.get("parallelism", 1)
        if completions is not None:
            wanted = min(wanted, completions - js.total(status, "succeeded"))
        busy = len(active)
        if spec.get("podReplacementPolicy") == "Failed":
            busy += len(terminating)  # replacements wait until the old pods are gone
        created = 0
        retry_at = self._retry_at.get(job.uid, 0.0)
        if wanted > busy and now < retry_at:
            self.queue.add_after(job.key, retry_at - now)
        elif wanted > busy:
            for _ in range(wanted - busy):
                created += self._create_pod(job)
        ready = sum(1 for pod in active if js.is_ready(pod))
        js.counts(status, len(active) + created, ready, len(terminating))

    def _after_finish(self, job: Record, pods: list[Record]) -> None:
        for pod in pods:
            self._release(pod)
        ttl = job.obj["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished = self._finished_at.setdefault(job.uid, time.monotonic())
        remaining = finished + self.clock.seconds(ttl) - time.monotonic()
        if remaining > 0:
            self.queue.add_after(job.key, remaining)
            return
        # The TTL-after-finished controller deletes with Foreground propagation.
        options = DeleteOptions("Foreground", precondition_uid=job.uid)
        with contextlib.suppress(ApiError):
            self.registry.delete(JOB, job.namespace, job.name, options)

    def _write_status(self, job: Record, status: JSON) -> None:
        def apply(obj: JSON) -> None:
            obj["status"] = status

        self.registry.update(
            JOB, job.namespace, job.name, apply, subresource="status", manager=CONTROLLER_MANAGER
        )

    def _event(self, job: Record, reason: str, message: str, *, warning: bool = False) -> None:
        self.recorder.record(job, reason, message, warning=warning, component=COMPONENT)
