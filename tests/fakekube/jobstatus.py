"""Pure rules of the Job controller: a Pod's outcome, pod failure policies, Job conditions."""

from __future__ import annotations

from typing import Any

from .clock import rfc3339
from .storage import Record

JSON = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
FINISHED_TYPES = ("Complete", "Failed")

BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


def phase(pod: Record) -> str:
    return str(pod.obj.get("status", {}).get("phase", "Pending"))


def is_terminal(pod: Record) -> bool:
    return phase(pod) in ("Succeeded", "Failed")


def is_deleting(pod: Record) -> bool:
    return bool(pod.metadata.get("deletionTimestamp"))


def is_ready(pod: Record) -> bool:
    conditions = pod.obj.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def outcome(pod: Record, wait_for_terminal: bool) -> str | None:
    """ "succeeded", "failed" or None while the pod still runs.

    A deleted pod that did not succeed counts as failed; with podReplacementPolicy Failed the
    controller waits until it is terminal, as the real one does.
    """
    if phase(pod) == "Succeeded":
        return "succeeded"
    if phase(pod) == "Failed":
        return "failed"
    if is_deleting(pod) and not wait_for_terminal:
        return "failed"
    return None


def failure_rule(spec: JSON, pod: Record) -> tuple[str, str] | None:
    """The (action, message) of the first podFailurePolicy rule matching a failed pod."""
    policy = spec.get("podFailurePolicy") or {}
    status = pod.obj.get("status", {})
    for index, rule in enumerate(policy.get("rules") or []):
        action = str(rule.get("action"))
        codes = rule.get("onExitCodes")
        if codes:
            wanted = {int(v) for v in codes.get("values") or []}
            for container in status.get("containerStatuses") or []:
                if codes.get("containerName") not in (None, container.get("name")):
                    continue
                code = (container.get("state", {}).get("terminated") or {}).get("exitCode")
                if code in (None, 0):
                    continue  # only failed containers match, as in the real controller
                if (code in wanted) == (codes.get("operator") == "In"):
                    message = (
                        f"Container {container.get('name')} for pod {pod.namespace}/"
                        f"{pod.name} failed with exit code {code} matching {action} rule "
                        f"at index {index}"
                    )
                    return action, message
        for pattern in rule.get("onPodConditions") or []:
            for condition in status.get("conditions") or []:
                if condition.get("type") == pattern.get("type") and condition.get(
                    "status"
                ) == pattern.get("status", "True"):
                    message = (
                        f"Pod {pod.namespace}/{pod.name} has condition "
                        f"{condition['type']} matching {action} rule at index {index}"
                    )
                    return action, message
    return None


def condition(status: JSON, kind: str) -> JSON | None:
    for item in status.get("conditions") or []:
        if item.get("type") == kind:
            found: JSON = item
            return found
    return None


def is_true(status: JSON, kind: str) -> bool:
    found = condition(status, kind)
    return found is not None and found.get("status") == "True"


def is_finished(status: JSON) -> bool:
    return any(is_true(status, kind) for kind in FINISHED_TYPES)


def set_condition(status: JSON, kind: str, value: bool, reason: str, message: str) -> None:
    """Set a Job condition; lastTransitionTime moves only when the status flips."""
    text = "True" if value else "False"
    now = rfc3339()
    conditions = status.setdefault("conditions", [])
    found = condition(status, kind)
    if found is None:
        conditions.append(
            {
                "type": kind,
                "status": text,
                "lastProbeTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            }
        )
        return
    if (found["status"], found.get("reason"), found.get("message")) == (text, reason, message):
        return  # unchanged: no write, no watch event, no resync loop
    if found["status"] != text:
        found["lastTransitionTime"] = now
    found.update({"status": text, "lastProbeTime": now, "reason": reason, "message": message})


def total(status: JSON, field: str) -> int:
    """Pods "succeeded" or "failed": those counted and those recorded as uncounted."""
    uncounted = status.get("uncountedTerminatedPods") or {}
    return int(status.get(field) or 0) + len(uncounted.get(field) or ())


def withhold_finish(status: JSON) -> None:
    """Status without its Complete/Failed condition and completionTime: what is stored while
    finished pods are still uncounted."""
    conditions = [c for c in status.get("conditions") or [] if c.get("type") not in FINISHED_TYPES]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    status.pop("completionTime", None)


def restarts(pods: list[Record]) -> int:
    """Container restarts count against backoffLimit when restartPolicy is OnFailure."""
    return sum(
        int(container.get("restartCount", 0))
        for pod in pods
        for container in pod.obj.get("status", {}).get("containerStatuses") or []
    )


def counts(status: JSON, active: int, ready: int, terminating: int) -> None:
    """Write the counters; like the Go struct, active/succeeded/failed are omitted when 0."""
    for field, value in (("active", active),):
        if value:
            status[field] = value
        else:
            status.pop(field, None)
    for field in ("succeeded", "failed"):
        if not status.get(field):
            status.pop(field, None)
    status["ready"] = ready
    status["terminating"] = terminating
    status.setdefault("uncountedTerminatedPods", {})
