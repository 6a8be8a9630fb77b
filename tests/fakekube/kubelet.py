"""The one fake node: binds Pods to itself and runs them through Pending, Running and a
terminal phase, writing status as a kubelet does; finishes graceful deletions.

A container's behaviour comes from its command (see script.py). Pods already bound to another
node are left alone, so tests can seed frozen Pods with `spec.nodeName`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from typing import Any

from . import podstatus
from .clock import Clock
from .errors import ApiError, bad_request
from .events import EventRecorder
from .kinds import POD, SECRET
from .managedfields import KUBELET, SCHEDULER
from .options import DeleteOptions
from .registry import Registry
from .script import Cat, Echo, Write, container_script
from .storage import Event, Record

log = logging.getLogger(__name__)

JSON = dict[str, Any]

POD_STOP_SECONDS = 0.1  # simulated time a container takes to exit after SIGTERM
SIGTERM_EXIT_CODE = 143
RESTART_BACK_OFF_SECONDS = 10  # the kubelet's crash-loop back-off: 10 s doubling to 5 min
MAX_RESTART_BACK_OFF_SECONDS = 300
MISSING_IMAGE_MARKER = "does-not-exist"
TERMINATION_LOG = "/dev/termination-log"  # a container's terminationMessagePath by default
MAX_TERMINATION_MESSAGE_BYTES = 4096  # the kubelet keeps the file's last 4 KiB
# A container's shell expands $HOSTNAME to the pod's name, as in a real pod.
_HOSTNAME = re.compile(r"\$HOSTNAME\b|\$\{HOSTNAME\}")


class _Gone(Exception):
    """The Pod was deleted (or replaced by a namesake) while the node worked on it."""


class Kubelet:
    def __init__(
        self, registry: Registry, clock: Clock, recorder: EventRecorder, pending_seconds: float
    ) -> None:
        self.registry = registry
        self.store = registry.store
        self.clock = clock
        self.recorder = recorder
        self.pending_seconds = pending_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}  # by pod uid: running or stopping
        self._stopping: set[str] = set()
        self._logs: dict[str, list[tuple[str, str]]] = {}  # (time, line) by pod uid
        self._secret_added = asyncio.Event()
        self._next_ip = 0
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self.store.add_listener(self._on_event)
        for record in self.store.records(POD, None):
            self._on_event(Event("ADDED", record))

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def logs(
        self,
        pod: Record,
        container: str | None = None,
        timestamps: bool = False,
        since: str | None = None,
    ) -> str:
        """The container's log; with `timestamps` each line after its RFC3339Nano time; with
        `since` (RFC 3339) only the lines timed then or later, as the kubelet's `sinceTime`."""
        lines = self._logs.get(pod.uid)
        if lines is None:
            names = [c.get("name") for c in pod.obj["spec"].get("containers") or []]
            name = container or (names[0] if names else "")
            statuses = pod.obj.get("status", {}).get("containerStatuses") or [{}]
            reason = statuses[0].get("state", {}).get("waiting", {}).get("reason", "Pending")
            raise bad_request(
                f'container "{name}" in pod "{pod.name}" is waiting to start: {reason}'
            )
        if since is not None:
            lines = [(at, line) for at, line in lines if _time_key(at) >= _time_key(since)]
        if timestamps:
            return "".join(f"{at} {line}\n" for at, line in lines)
        return "".join(f"{line}\n" for _, line in lines)

    def logs_finished(self, pod: Record) -> bool:
        return pod.obj.get("status", {}).get("phase") in ("Succeeded", "Failed")

    # reacting to the store

    def _on_event(self, event: Event) -> None:
        record = event.record
        if record.kind is SECRET and event.type != "DELETED":
            self._secret_added.set()
            self._secret_added = asyncio.Event()
            return
        if record.kind is not POD:
            return
        uid = record.uid
        if event.type == "DELETED":
            self._cancel(uid)
            self._logs.pop(uid, None)
            self._stopping.discard(uid)
            return
        if record.obj["spec"].get("nodeName") not in (None, "", podstatus.NODE_NAME):
            return
        metadata = record.metadata
        if metadata.get("deletionTimestamp"):
            if uid not in self._stopping:
                self._stopping.add(uid)
                self._cancel(uid)
                if metadata.get("deletionGracePeriodSeconds"):
                    self._spawn(uid, self._stop_pod(record))
            return
        phase = record.obj.get("status", {}).get("phase")
        if uid not in self._tasks and phase not in ("Succeeded", "Failed"):
            self._spawn(uid, self._run_pod(record.namespace, record.name, uid))

    def _spawn(self, uid: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"fakekube-pod-{uid}")
        self._tasks[uid] = task
        task.add_done_callback(lambda done: self._forget(uid, done))

    def _forget(self, uid: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(uid) is task:
            del self._tasks[uid]
        if not task.cancelled() and task.exception() is not None:
            log.error("fake kubelet failed on pod %s", uid, exc_info=task.exception())

    def _cancel(self, uid: str) -> None:
        task = self._tasks.pop(uid, None)
        if task is not None:
            task.cancel()

    # running a pod

    def _write(
        self,
        namespace: str,
        name: str,
        uid: str,
        change: Callable[[JSON, JSON], None],
        subresource: str = "status",
        manager: str = KUBELET,
    ) -> Record:
        def mutate(obj: JSON) -> None:
            if obj["metadata"]["uid"] != uid:
                raise _Gone
            change(obj.setdefault("status", {}), obj["spec"])

        try:
            record = self.registry.update(
                POD, namespace, name, mutate, subresource=subresource, manager=manager
            )
        except ApiError as exc:
            raise _Gone from exc
        if record is None:
            raise _Gone
        return record

    async def _run_pod(self, namespace: str, name: str, uid: str) -> None:
        with contextlib.suppress(_Gone):
            await self._live(namespace, name, uid)

    async def _live(self, namespace: str, name: str, uid: str) -> None:
        await self._schedule(namespace, name, uid)

        def bind(status: JSON, spec: JSON) -> None:
            spec["nodeName"] = podstatus.NODE_NAME

        pod = self._write(namespace, name, uid, bind, subresource="binding")
        self.recorder.record(
            pod,
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {podstatus.NODE_NAME}",
            component="default-scheduler",
        )
        pod = self._write(namespace, name, uid, podstatus.scheduled)
        await self._wait_for_secret_volumes(pod)
        container = pod.obj["spec"]["containers"][0]
        image = str(container.get("image", ""))
        self._event(pod, "Pulling", f'Pulling image "{image}"')
        if MISSING_IMAGE_MARKER in image:
            await self._fail_image_pull(pod, image)
        await self.clock.sleep_real(self.pending_seconds)
        self._event(pod, "Pulled", f'Successfully pulled image "{image}"')
        await self._wait_for_env_secrets(pod)
        await self._run_containers(namespace, name, uid)

    async def _run_containers(self, namespace: str, name: str, uid: str) -> None:
        pod_ip = self._allocate_ip()
        restarts = 0
        while True:
            pod = self._write(
                namespace, name, uid, lambda st, sp: podstatus.running(st, sp, uid, pod_ip)
            )
            spec = pod.obj["spec"]
            container = spec["containers"][0]
            self._event(pod, "Created", f"Created container: {container['name']}")
            self._event(pod, "Started", f"Started container {container['name']}")
            lines = self._logs.setdefault(uid, [])
            script = container_script(container)
            termination_log = container.get("terminationMessagePath") or TERMINATION_LOG
            message = ""
            for step in script.steps:
                if isinstance(step, Echo):
                    lines.append((_rfc3339_nano(), _HOSTNAME.sub(name, step.text)))
                elif isinstance(step, Cat):
                    text = self._output(pod, step)
                    lines.extend((_rfc3339_nano(), line) for line in text.splitlines())
                elif isinstance(step, Write):
                    if step.path == termination_log:
                        text = self._output(pod, step.output)
                        message = message + text if step.append else text
                else:
                    await self.clock.sleep(step.seconds)
            code = script.exit_code
            policy = spec.get("restartPolicy", "Always")
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                back_off = min(RESTART_BACK_OFF_SECONDS * 2**restarts, MAX_RESTART_BACK_OFF_SECONDS)
                restarts += 1
                pod_ref = f"{name}_{namespace}({uid})"
                restart = partial(
                    podstatus.restarting, exit_code=code, back_off_seconds=back_off, pod_ref=pod_ref
                )
                self._write(namespace, name, uid, restart)
                self._event(
                    pod,
                    "BackOff",
                    f"Back-off restarting failed container {container['name']} in pod {pod_ref}",
                    warning=True,
                )
                await self.clock.sleep(back_off)
                continue
            kept = message.encode()[-MAX_TERMINATION_MESSAGE_BYTES:].decode("utf-8", "replace")
            terminated = partial(podstatus.terminated, exit_code=code, message=kept)
            self._write(namespace, name, uid, terminated)
            return

    async def _schedule(self, namespace: str, name: str, uid: str) -> None:
        """A pod that asks for more than the node has is never bound: it stays Pending, its
        PodScheduled condition False (Unschedulable), until it is deleted."""
        pod = self.store.get(POD, namespace, name)
        if pod is None or pod.uid != uid:
            raise _Gone
        short = podstatus.insufficient(pod.obj["spec"])
        if not short:
            return
        message = podstatus.unschedulable_message(short)
        pod = self._write(
            namespace,
            name,
            uid,
            lambda st, sp: podstatus.unschedulable(st, sp, message),
            manager=SCHEDULER,
        )
        self.recorder.record(
            pod, "FailedScheduling", message, warning=True, component="default-scheduler"
        )
        await asyncio.Event().wait()  # no node ever frees up: it waits until it is deleted

    async def _fail_image_pull(self, pod: Record, image: str) -> None:
        namespace, name, uid = pod.namespace, pod.name, pod.uid
        message = (
            f"rpc error: code = NotFound desc = failed to pull and unpack image "
            f'"{image}": not found'
        )
        pod = self._write(
            namespace, name, uid, lambda st, sp: podstatus.waiting(st, sp, "ErrImagePull", message)
        )
        self._event(pod, "Failed", f'Failed to pull image "{image}": {message}', warning=True)
        await self.clock.sleep_real(self.pending_seconds)
        # Since Kubernetes 1.32 the back-off names the last pull's error (kubernetes#127918).
        back_off = f'Back-off pulling image "{image}": ErrImagePull: {message}'
        pod = self._write(
            namespace,
            name,
            uid,
            lambda st, sp: podstatus.waiting(st, sp, "ImagePullBackOff", back_off),
        )
        self._event(pod, "BackOff", f'Back-off pulling image "{image}"', warning=True)
        await asyncio.Event().wait()  # pulls keep failing until the pod is deleted

    async def _wait_for_secret_volumes(self, pod: Record) -> None:
        """Stay in ContainerCreating while a mounted Secret is missing (kubelet's FailedMount)."""
        warned = False
        while True:
            added = self._secret_added
            missing = [
                (volume["name"], volume["secret"]["secretName"])
                for volume in pod.obj["spec"].get("volumes") or []
                if isinstance(volume.get("secret"), dict)
                and not volume["secret"].get("optional")
                and self.store.get(SECRET, pod.namespace, volume["secret"]["secretName"]) is None
            ]
            if not missing:
                return
            if not warned:
                volume, secret = missing[0]
                self._event(
                    pod,
                    "FailedMount",
                    f'MountVolume.SetUp failed for volume "{volume}" : secret "{secret}" not found',
                    warning=True,
                )
                warned = True
            await added.wait()

    def _env_secret_problem(self, pod: Record) -> str | None:
        for container in pod.obj["spec"]["containers"]:
            for source in container.get("envFrom") or []:
                ref = source.get("secretRef")
                if ref and not ref.get("optional") and self._secret(pod, ref["name"]) is None:
                    return f'secret "{ref["name"]}" not found'
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if not ref or ref.get("optional"):
                    continue
                secret = self._secret(pod, ref["name"])
                if secret is None:
                    return f'secret "{ref["name"]}" not found'
                if ref["key"] not in (secret.obj.get("data") or {}):
                    return f"couldn't find key {ref['key']} in Secret {pod.namespace}/{ref['name']}"
        return None

    async def _wait_for_env_secrets(self, pod: Record) -> None:
        """A missing env Secret is CreateContainerConfigError until it appears."""
        while True:
            added = self._secret_added
            problem = self._env_secret_problem(pod)
            if problem is None:
                return
            config_error = partial(
                podstatus.waiting, reason="CreateContainerConfigError", message=problem
            )
            pod = self._write(pod.namespace, pod.name, pod.uid, config_error)
            self._event(pod, "Failed", f"Error: {problem}", warning=True)
            await added.wait()

    def _secret(self, pod: Record, name: str) -> Record | None:
        return self.store.get(SECRET, pod.namespace, name)

    def _output(self, pod: Record, step: Echo | Cat) -> str:
        """What `echo` or `cat` prints (`cat` of a file in a mounted Secret; else an error)."""
        if isinstance(step, Echo):
            return _HOSTNAME.sub(pod.name, step.text) + ("\n" if step.newline else "")
        text = self._mounted_file(pod, step.path)
        return (
            f"cat: can't open '{step.path}': No such file or directory\n" if text is None else text
        )

    def _mounted_file(self, pod: Record, path: str) -> str | None:
        spec = pod.obj["spec"]
        volumes = {volume.get("name"): volume for volume in spec.get("volumes") or []}
        for mount in spec["containers"][0].get("volumeMounts") or []:
            prefix = str(mount.get("mountPath", "")).rstrip("/") + "/"
            source = (volumes.get(mount.get("name")) or {}).get("secret")
            if not path.startswith(prefix) or not isinstance(source, dict):
                continue
            relative = path.removeprefix(prefix)
            items = source.get("items")
            keys = {item["path"]: item["key"] for item in items} if items else None
            key = keys.get(relative) if keys is not None else relative
            secret = self._secret(pod, str(source.get("secretName")))
            data = (secret.obj.get("data") or {}) if secret is not None else {}
            if key in data:
                return base64.b64decode(data[key]).decode("utf-8", "replace")
        return None

    async def _stop_pod(self, pod: Record) -> None:
        """Graceful deletion: the container exits on SIGTERM, then the pod object goes."""
        grace = float(pod.metadata.get("deletionGracePeriodSeconds") or 0)
        await self.clock.sleep(min(grace, POD_STOP_SECONDS))
        current = self.store.get(POD, pod.namespace, pod.name)
        if current is None or current.uid != pod.uid:
            return
        phase = current.obj.get("status", {}).get("phase")
        with contextlib.suppress(_Gone):
            if phase == "Running":
                self._event(
                    pod, "Killing", f"Stopping container {pod.obj['spec']['containers'][0]['name']}"
                )
                self._write(
                    pod.namespace,
                    pod.name,
                    pod.uid,
                    lambda st, sp: podstatus.terminated(st, sp, SIGTERM_EXIT_CODE),
                )
        options = DeleteOptions(grace_period_seconds=0, precondition_uid=pod.uid)
        with contextlib.suppress(ApiError):
            self.registry.delete(POD, pod.namespace, pod.name, options)

    def _event(self, pod: Record, reason: str, message: str, *, warning: bool = False) -> None:
        self.recorder.record(pod, reason, message, warning=warning, host=podstatus.NODE_NAME)

    def _allocate_ip(self) -> str:
        self._next_ip += 1
        return f"10.244.{self._next_ip // 250}.{self._next_ip % 250 + 2}"


def _time_key(stamp: str) -> tuple[str, str]:
    """An RFC 3339 UTC time, in any precision, as a key that sorts by time."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return whole, fraction.ljust(9, "0")


def _rfc3339_nano() -> str:
    """Now as Go's RFC3339Nano (`2024-05-01T12:00:00.123456789Z`, trailing zeros trimmed), the
    time the kubelet puts before each line of a log read with `timestamps=true`."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{nanos:09d}".rstrip("0")
    return f"{moment}.{digits}Z" if digits else f"{moment}Z"
