"""Pod spec defaults and QoS class, shared by Pods and the pod templates of Jobs, and what
admission adds to a new Pod."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]

SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION_SECONDS = 3607  # the ServiceAccount plugin's bound token, an hour and 7 s
DEFAULT_TOLERATION_SECONDS = 300
_NOT_READY_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
_SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"


def _image_pull_policy(image: str) -> str:
    # The API server defaults Always for `:latest` or untagged images, IfNotPresent otherwise.
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def pod_defaults(spec: JSON, *, template: bool) -> None:
    """Fill a pod spec's defaults in place, as SetDefaults_PodSpec does."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    if not template:
        spec.setdefault("enableServiceLinks", True)  # SetDefaults_Pod: Pods only
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        container.setdefault("imagePullPolicy", _image_pull_policy(str(container.get("image", ""))))
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
    for volume in spec.get("volumes") or []:
        for source in ("secret", "projected"):
            if isinstance(volume, dict) and isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 420)


def pod_qos_class(spec: JSON) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"


def token_volume(name: str) -> JSON:
    """The projected volume the ServiceAccount admission plugin mounts into every container."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {
                    "serviceAccountToken": {
                        "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                        "path": "token",
                    }
                },
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
            "defaultMode": 420,
        },
    }


def _seccomp_annotation(profile: Any) -> str | None:
    if not isinstance(profile, dict):
        return None
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return "runtime/default"
    if kind == "Unconfined":
        return "unconfined"
    if kind == "Localhost" and profile.get("localhostProfile"):
        return f"localhost/{profile['localhostProfile']}"
    return None


def admit_pod(pod: JSON, random_suffix: Callable[[], str]) -> None:
    """What a new Pod gets from admission (ServiceAccount, Priority, DefaultTolerationSeconds)
    and, as in 1.24, the seccomp annotations mirroring its seccompProfile fields. Idempotent."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    init_containers = [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    mounted = any(
        isinstance(mount, dict) and mount.get("mountPath") == SERVICE_ACCOUNT_MOUNT
        for container in containers + init_containers
        for mount in container.get("volumeMounts") or []
    )
    if spec.get("automountServiceAccountToken") is not False and not mounted:
        name = TOKEN_VOLUME_PREFIX + random_suffix()
        spec["volumes"] = [*(spec.get("volumes") or []), token_volume(name)]
        mount = {"name": name, "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT}
        for container in containers + init_containers:
            container["volumeMounts"] = [*(container.get("volumeMounts") or []), dict(mount)]
    tolerations = list(spec.get("tolerations") or [])
    for key in _NOT_READY_TAINTS:
        if not any(
            isinstance(t, dict)
            and t.get("key") in (key, None, "")
            and t.get("effect") in ("NoExecute", None, "")
            for t in tolerations
        ):
            tolerations.append(
                {
                    "key": key,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
                }
            )
    spec["tolerations"] = tolerations
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    metadata = pod.setdefault("metadata", {})
    wanted = {}
    pod_profile = _seccomp_annotation((spec.get("securityContext") or {}).get("seccompProfile"))
    if pod_profile:
        wanted[_SECCOMP_POD] = pod_profile
    for container in containers:
        security = container.get("securityContext")
        profile = _seccomp_annotation((security or {}).get("seccompProfile"))
        if profile:
            wanted[_SECCOMP_CONTAINER + str(container.get("name"))] = profile
    annotations = metadata.get("annotations")
    if wanted and (annotations is None or isinstance(annotations, dict)):
        metadata["annotations"] = {**wanted, **(annotations or {})}
