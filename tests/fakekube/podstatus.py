"""Pod status as a kubelet writes it, one pure function per phase of a container's life."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .clock import rfc3339

JSON = dict[str, Any]

NODE_NAME = "fake-node"
HOST_IP = "172.18.0.2"


def set_condition(
    conditions: list[JSON], kind: str, status: bool, reason: str | None = None
) -> None:
    """Set one condition, keeping lastTransitionTime unless its status changes."""
    text = "True" if status else "False"
    for condition in conditions:
        if condition["type"] == kind:
            if condition["status"] != text:
                condition["lastTransitionTime"] = rfc3339()
            condition["status"] = text
            condition.pop("reason", None)
            if reason:
                condition["reason"] = reason
            return
    condition = {
        "type": kind,
        "status": text,
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(),
    }
    if reason:
        condition["reason"] = reason
    conditions.append(condition)


# The one node's allocatable resources: a pod that requests more of one than this fits no node
# and stays Pending, Unschedulable, as on a cluster whose nodes are all smaller than it asks.
# (Only cpu and memory are counted, and each pod on its own: the node never fills up.)
NODE_ALLOCATABLE = {"cpu": 8.0, "memory": 32.0 * 2**30}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][-+]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$")


def quantity(text: str) -> float:
    """A resource.Quantity's value ("500m" is 0.5, "1Gi" 2**30); 0 when it cannot be read."""
    found = _QUANTITY.match(str(text).strip())
    if found is None:
        return 0.0
    number, suffix = float(found.group(1)), found.group(2) or ""
    return number * _BINARY.get(suffix, _DECIMAL.get(suffix, 1.0))


def insufficient(spec: JSON) -> list[str]:
    """The resources the pod requests more of than the node has (its requests, or its limits
    where it has no requests, as the API server defaults them), in the scheduler's order."""
    wanted = dict.fromkeys(NODE_ALLOCATABLE, 0.0)
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name in wanted:
            if name in asked:
                wanted[name] += quantity(asked[name])
    return [name for name, amount in wanted.items() if amount > NODE_ALLOCATABLE[name]]


def unschedulable_message(resources: list[str]) -> str:
    """kube-scheduler's words for a pod that fits the one node nowhere."""
    why = ", ".join(f"1 Insufficient {name}" for name in resources)
    return (
        f"0/1 nodes are available: {why}. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )


def unschedulable(status: JSON, spec: JSON, message: str) -> None:
    """Not bound: the scheduler found no node for it (PodScheduled False, Unschedulable)."""
    status["phase"] = "Pending"
    conditions = status.setdefault("conditions", [])
    set_condition(conditions, "PodScheduled", False, "Unschedulable")
    for condition in conditions:
        if condition["type"] == "PodScheduled":
            condition["message"] = message


def _image_id(image: str) -> str:
    digest = hashlib.sha256(image.encode()).hexdigest()
    name = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"docker.io/library/{name}@sha256:{digest}"


def _container_id(pod_uid: str, name: str, restarts: int) -> str:
    return "containerd://" + hashlib.sha256(f"{pod_uid}/{name}/{restarts}".encode()).hexdigest()


def _container_status(container: JSON, state: JSON, **fields: Any) -> JSON:
    status: JSON = {
        "name": container["name"],
        "state": state,
        "lastState": fields.pop("lastState", {}),
        "ready": False,
        "restartCount": 0,
        "image": container.get("image", ""),
        "imageID": "",
        "started": False,
    }
    status.update(fields)
    return status


def scheduled(status: JSON, spec: JSON) -> None:
    """Bound to the node (the binding set PodScheduled), containers being created. With init
    containers, every container waits in PodInitializing (`kubectl get` says `Init:0/1`)."""
    status["phase"] = "Pending"
    conditions = status.setdefault("conditions", [])
    inits = spec.get("initContainers") or []
    set_condition(conditions, "PodReadyToStartContainers", False)
    set_condition(
        conditions, "Initialized", not inits, "ContainersNotInitialized" if inits else None
    )
    set_condition(conditions, "Ready", False, "ContainersNotReady")
    set_condition(conditions, "ContainersReady", False, "ContainersNotReady")
    status["hostIP"] = HOST_IP
    status["hostIPs"] = [{"ip": HOST_IP}]
    status.setdefault("startTime", rfc3339())
    if inits:
        state = {"waiting": {"reason": "PodInitializing"}}
        status["initContainerStatuses"] = [_container_status(c, dict(state)) for c in inits]
        waiting(status, spec, "PodInitializing")
    else:
        waiting(status, spec, "ContainerCreating")


def init_waiting(status: JSON, spec: JSON, index: int, reason: str, message: str) -> None:
    """Init container `index` cannot start (its image cannot be pulled)."""
    current = status["initContainerStatuses"][index]
    current["state"] = {"waiting": {"reason": reason, "message": message}}


def init_running(status: JSON, spec: JSON, index: int, pod_uid: str) -> None:
    """Init container `index` runs (the pod is still Pending)."""
    set_condition(status.setdefault("conditions", []), "PodReadyToStartContainers", True)
    container = spec["initContainers"][index]
    status["initContainerStatuses"][index] = _container_status(
        container,
        {"running": {"startedAt": rfc3339()}},
        started=True,
        imageID=_image_id(container.get("image", "")),
        containerID=_container_id(pod_uid, container["name"], 0),
    )


def init_terminated(
    status: JSON, spec: JSON, index: int, exit_code: int, message: str | None = None
) -> None:
    """Init container `index` exited: done (ready) with 0, else the pod failed (restartPolicy
    Never), its containers never started."""
    container = spec["initContainers"][index]
    current = status["initContainerStatuses"][index]
    current["state"] = terminated_state(current, exit_code, exit_reason(container, exit_code))
    if message:
        current["state"]["terminated"]["message"] = message
    current["started"] = False
    current["ready"] = exit_code == 0
    conditions = status.setdefault("conditions", [])
    if exit_code != 0:
        status["phase"] = "Failed"
        set_condition(conditions, "PodReadyToStartContainers", False)
        set_condition(conditions, "Ready", False, "PodFailed")
        set_condition(conditions, "ContainersReady", False, "PodFailed")
    elif all(s.get("ready") for s in status["initContainerStatuses"]):
        set_condition(conditions, "Initialized", True)


def waiting(status: JSON, spec: JSON, reason: str, message: str | None = None) -> None:
    state: JSON = {"waiting": {"reason": reason}}
    if message:
        state["waiting"]["message"] = message
    previous = {s["name"]: s for s in status.get("containerStatuses") or []}
    status["containerStatuses"] = [
        _container_status(
            c,
            state,
            restartCount=previous.get(c["name"], {}).get("restartCount", 0),
            lastState=previous.get(c["name"], {}).get("lastState", {}),
        )
        for c in spec["containers"]
    ]


def running(status: JSON, spec: JSON, pod_uid: str, pod_ip: str) -> None:
    status["phase"] = "Running"
    conditions = status.setdefault("conditions", [])
    for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"):
        set_condition(conditions, kind, True)
    status["podIP"] = pod_ip
    status["podIPs"] = [{"ip": pod_ip}]
    previous = {s["name"]: s for s in status.get("containerStatuses") or []}
    now = rfc3339()
    statuses = []
    for c in spec["containers"]:
        restarts = previous.get(c["name"], {}).get("restartCount", 0)
        statuses.append(
            _container_status(
                c,
                {"running": {"startedAt": now}},
                ready=True,
                started=True,
                restartCount=restarts,
                lastState=previous.get(c["name"], {}).get("lastState", {}),
                imageID=_image_id(c.get("image", "")),
                containerID=_container_id(pod_uid, c["name"], restarts),
            )
        )
    status["containerStatuses"] = statuses


def terminated_state(container_status: JSON, exit_code: int, reason: str) -> JSON:
    started = container_status.get("state", {}).get("running", {}).get("startedAt", rfc3339())
    state: JSON = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": rfc3339(),
    }
    if "containerID" in container_status:
        state["containerID"] = container_status["containerID"]
    return {"terminated": state}


def exit_reason(container: JSON, exit_code: int) -> str:
    limits = (container.get("resources") or {}).get("limits") or {}
    if exit_code == 137 and "memory" in limits:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


def terminated(status: JSON, spec: JSON, exit_code: int, message: str | None = None) -> None:
    """All containers exited; the first container's exit code decides the phase. `message`: what
    the first container wrote to its termination log."""
    succeeded = exit_code == 0
    status["phase"] = "Succeeded" if succeeded else "Failed"
    reason = "PodCompleted" if succeeded else "PodFailed"
    conditions = status.setdefault("conditions", [])
    set_condition(conditions, "PodReadyToStartContainers", False)
    set_condition(conditions, "Ready", False, reason)
    set_condition(conditions, "ContainersReady", False, reason)
    statuses = status.get("containerStatuses") or []
    for index, (container, current) in enumerate(zip(spec["containers"], statuses, strict=False)):
        code = exit_code if index == 0 else 0
        current["state"] = terminated_state(current, code, exit_reason(container, code))
        if index == 0 and message:
            current["state"]["terminated"]["message"] = message
        current["ready"] = False
        current["started"] = False


def restarting(
    status: JSON, spec: JSON, exit_code: int, back_off_seconds: float, pod_ref: str
) -> None:
    """The container exited and will be restarted in place (restartPolicy OnFailure/Always)."""
    conditions = status.setdefault("conditions", [])
    set_condition(conditions, "Ready", False, "ContainersNotReady")
    set_condition(conditions, "ContainersReady", False, "ContainersNotReady")
    for container, current in zip(
        spec["containers"], status.get("containerStatuses") or [], strict=False
    ):
        current["lastState"] = terminated_state(
            current, exit_code, exit_reason(container, exit_code)
        )
        current["restartCount"] = current.get("restartCount", 0) + 1
        current["ready"] = False
        current["started"] = False
        current["state"] = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {int(back_off_seconds)}s restarting failed "
                f"container={container['name']} pod={pod_ref}",
            }
        }
