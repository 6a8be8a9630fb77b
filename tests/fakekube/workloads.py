"""Registry rules of Jobs and Pods: defaults, validation and immutability as in batch/v1 and
core/v1 (generated selectors and labels, restart policies, pod failure policies)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from . import errors as e
from . import podstatus
from .errors import FieldError
from .podspec import admit_pod, pod_defaults, pod_qos_class
from .storage import Record
from .strategy import Strategy
from .validation import labels_errors, pod_spec_errors

JSON = dict[str, Any]

JOB_RESTART_POLICIES = ("OnFailure", "Never")
# Set on every new Job since the Job controller tracks pods with finalizers (1.22 to 1.26).
JOB_TRACKING_ANNOTATION = "batch.kubernetes.io/job-tracking"
POD_RESTART_POLICIES = ("Always", "OnFailure", "Never")
POD_FAILURE_ACTIONS = ("FailJob", "FailIndex", "Ignore", "Count")


def _non_negative(spec: JSON, field: str, path: str) -> list[FieldError]:
    value = spec.get(field)
    if value is not None and (not isinstance(value, int) or value < 0):
        return [e.invalid_value(f"{path}.{field}", value, "must be greater than or equal to 0")]
    return []


class JobStrategy(Strategy):
    def prepare_for_create(self, obj: JSON) -> list[FieldError]:
        obj["status"] = {}
        annotations = obj["metadata"].get("annotations")
        if annotations is None or isinstance(annotations, dict):  # else validation says why
            obj["metadata"]["annotations"] = {**(annotations or {}), JOB_TRACKING_ANNOTATION: ""}
        spec = obj.setdefault("spec", {})
        if spec.get("manualSelector"):
            return []
        uid = obj["metadata"]["uid"]
        name = obj["metadata"].get("name", "")
        generated = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        if spec.get("selector") not in (None, generated):
            return [
                e.invalid_value(
                    "spec.selector", spec["selector"], "`selector` will be auto-generated"
                )
            ]
        spec["selector"] = generated
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        return []

    def default(self, obj: JSON) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        if spec.get("backoffLimitPerIndex") is None:
            spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        replacement = "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
        spec.setdefault("podReplacementPolicy", replacement)
        template = spec.setdefault("template", {})
        template_metadata = template.setdefault("metadata", {})
        if isinstance(template_metadata, dict):
            # A template's ObjectMeta serializes its zero creationTimestamp as null, and drops
            # empty maps as any ObjectMeta does.
            template_metadata.setdefault("creationTimestamp", None)
            for field in ("labels", "annotations"):
                if template_metadata.get(field) == {}:
                    del template_metadata[field]
        if isinstance(template.get("spec"), dict):
            pod_defaults(template["spec"], template=True)

    def validate(self, obj: JSON) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec") or {}
        for field in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
            errors += _non_negative(spec, field, "spec")
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and (not isinstance(deadline, int) or deadline <= 0):
            errors.append(
                e.invalid_value("spec.activeDeadlineSeconds", deadline, "must be greater than 0")
            )
        template = spec.get("template") or {}
        template_labels = (template.get("metadata") or {}).get("labels")
        errors += labels_errors(template_labels, "spec.template.labels")
        pod_spec = template.get("spec")
        errors += pod_spec_errors(pod_spec, "spec.template.spec")
        policy = (pod_spec or {}).get("restartPolicy") if isinstance(pod_spec, dict) else None
        if isinstance(pod_spec, dict) and policy not in JOB_RESTART_POLICIES:
            errors.append(
                e.not_supported("spec.template.spec.restartPolicy", policy, JOB_RESTART_POLICIES)
            )
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = template_labels or {}
        if selector and any(labels.get(k) != v for k, v in selector.items()):
            errors.append(
                e.invalid_value(
                    "spec.template.metadata.labels",
                    labels,
                    "`selector` does not match template `labels`",
                )
            )
        errors += self._pod_failure_policy_errors(spec, policy)
        return errors

    @staticmethod
    def _pod_failure_policy_errors(spec: JSON, restart_policy: Any) -> list[FieldError]:
        policy = spec.get("podFailurePolicy")
        if policy is None:
            return []
        errors: list[FieldError] = []
        if restart_policy != "Never":
            errors.append(
                e.invalid_value(
                    "spec.template.spec.restartPolicy",
                    restart_policy,
                    'only "Never" is supported when podFailurePolicy is specified',
                )
            )
        for i, rule in enumerate(policy.get("rules") or []):
            path = f"spec.podFailurePolicy.rules[{i}]"
            if rule.get("action") not in POD_FAILURE_ACTIONS:
                errors.append(
                    e.not_supported(f"{path}.action", rule.get("action"), POD_FAILURE_ACTIONS)
                )
            codes = rule.get("onExitCodes")
            if codes is not None and codes.get("operator") not in ("In", "NotIn"):
                errors.append(
                    e.not_supported(
                        f"{path}.onExitCodes.operator", codes.get("operator"), ("In", "NotIn")
                    )
                )
            if codes is None and not rule.get("onPodConditions"):
                errors.append(
                    e.required(
                        path, "specify one of: `onExitCodes` and `onPodConditions`, but got none"
                    )
                )
        return errors

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        errors: list[FieldError] = []
        for field in ("selector", "template", "completionMode", "podFailurePolicy", "completions"):
            before, after = old["spec"].get(field), new["spec"].get(field)
            if before != after:
                errors.append(e.immutable(f"spec.{field}", after))
        return errors


class PodStrategy(Strategy):
    def prepare_for_create(self, obj: JSON) -> list[FieldError]:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(spec or {})}
        return []

    def default(self, obj: JSON) -> None:
        if isinstance(obj.get("spec"), dict):
            pod_defaults(obj["spec"], template=False)

    def admit(self, obj: JSON, random_suffix: Callable[[], str]) -> None:
        admit_pod(obj, random_suffix)

    def validate(self, obj: JSON) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj.get("spec")
        errors += pod_spec_errors(spec, "spec")
        if isinstance(spec, dict) and spec.get("restartPolicy") not in POD_RESTART_POLICIES:
            errors.append(
                e.not_supported(
                    "spec.restartPolicy", spec.get("restartPolicy"), POD_RESTART_POLICIES
                )
            )
        return errors

    def prepare_for_update(self, new: JSON, old: Record, subresource: str | None) -> JSON:
        if subresource == "binding":
            # The binding sets the node and the PodScheduled condition in one write.
            bound = old.copy_status()
            bound["spec"]["nodeName"] = new["spec"].get("nodeName")
            conditions = bound.setdefault("status", {}).setdefault("conditions", [])
            podstatus.set_condition(conditions, "PodScheduled", True)
            return bound
        return super().prepare_for_update(new, old, subresource)

    def grace_period(self, obj: JSON, requested: int | None) -> int:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        # An unscheduled or finished pod has nothing to stop: it goes at once.
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        seconds = requested if requested is not None else spec.get("terminationGracePeriodSeconds")
        return max(int(seconds if seconds is not None else 30), 0)

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        def mutable_stripped(spec: JSON) -> JSON:
            stripped = copy.deepcopy(spec)
            for container in stripped.get("containers") or []:
                container.pop("image", None)
            for field in ("activeDeadlineSeconds", "tolerations"):
                stripped.pop(field, None)
            return stripped

        if new["spec"] == old["spec"]:
            return []
        if old["spec"].get("nodeName") is None and new["spec"].get("nodeName"):
            return []  # the binding
        if mutable_stripped(new["spec"]) != mutable_stripped(old["spec"]):
            return [
                e.forbidden(
                    "spec",
                    "pod updates may not change fields other than "
                    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
                    "additions to existing tolerations),"
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                    "if it was previously negative)",
                )
            ]
        return []
