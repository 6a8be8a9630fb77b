"""The one fake node: binds Pods to itself and runs them through Pending, Running and a
terminal phase, writing status as a kubelet does; finishes graceful deletions.

A container's behaviour comes from its command (see script.py); one whose command starts with
`python` runs for real (see processes.py). Init containers run first, in order; one that fails
fails the pod (restartPolicy Never) or runs again after a back-off. Pods already bound to another
node are left alone, so tests can seed frozen Pods with `spec.nodeName`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from typing import Any

from . import podstatus, processes, volumes
from .clock import Clock
from .errors import ApiError, bad_request
from .events import EventRecorder
from .kinds import POD, SECRET
from .managedfields import KUBELET, SCHEDULER
from .options import DeleteOptions
from .registry import Registry
from .script import Cat, Echo, Sha256, Size, Step, Write, container_script
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
        # The same of init containers, by pod uid and container name.
        self._init_logs: dict[str, dict[str, list[tuple[str, str]]]] = {}
        self._dirs = volumes.PodDirs()
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
        self._dirs.remove_all()

    def logs(
        self,
        pod: Record,
        container: str | None = None,
        timestamps: bool = False,
        since: str | None = None,
    ) -> str:
        """The container's log (the one container when none is named: init containers do not
        count); with `timestamps` each line after its RFC3339Nano time; with `since` (RFC 3339)
        only the lines timed then or later, as the kubelet's `sinceTime`."""
        spec, status = pod.obj["spec"], pod.obj.get("status", {})
        names = [c.get("name") for c in spec.get("containers") or []]
        inits = [c.get("name") for c in spec.get("initContainers") or []]
        name = container or (names[0] if names else "")
        if container is None and len(names) > 1:
            raise bad_request(
                f"a container name must be specified for pod {pod.name}, choose one of: "
                f"[{' '.join(map(str, names))}]"
            )
        if name not in names and name not in inits:
            raise bad_request(f"container {name} is not valid for pod {pod.name}")
        if name in inits:
            lines = self._init_logs.get(pod.uid, {}).get(name)
            statuses = status.get("initContainerStatuses") or []
        else:
            lines = self._logs.get(pod.uid)
            statuses = status.get("containerStatuses") or []
        if lines is None:
            current: JSON = next((s for s in statuses if s.get("name") == name), {})
            reason = current.get("state", {}).get("waiting", {}).get("reason", "Pending")
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
            self._init_logs.pop(uid, None)
            self._dirs.remove(uid)
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
        for index, init in enumerate(pod.obj["spec"].get("initContainers") or []):
            await self._pull(pod, str(init.get("image", "")), init=index)
            if not await self._run_init(pod, index):
                return  # it failed, and the pod with it
        container = pod.obj["spec"]["containers"][0]
        await self._pull(pod, str(container.get("image", "")))
        await self._wait_for_env_secrets(pod)
        await self._run_containers(namespace, name, uid)

    async def _pull(self, pod: Record, image: str, init: int | None = None) -> None:
        """Pull the image of the container, or of init container `init`."""
        self._event(pod, "Pulling", f'Pulling image "{image}"')
        if MISSING_IMAGE_MARKER in image:
            await self._fail_image_pull(pod, image, init)
        await self.clock.sleep_real(self.pending_seconds)
        self._event(pod, "Pulled", f'Successfully pulled image "{image}"')

    async def _run_init(self, pod: Record, index: int) -> bool:
        """Run init container `index` until it succeeds: True; False when it failed and the pod
        with it (restartPolicy Never)."""
        namespace, name, uid = pod.namespace, pod.name, pod.uid
        restarts = 0
        while True:
            pod = self._write(
                namespace, name, uid, lambda st, sp: podstatus.init_running(st, sp, index, uid)
            )
            spec = pod.obj["spec"]
            container = spec["initContainers"][index]
            self._event(pod, "Created", f"Created container: {container['name']}")
            self._event(pod, "Started", f"Started container {container['name']}")
            lines = self._init_logs.setdefault(uid, {}).setdefault(container["name"], [])
            code, message = await self._run(pod, container, lines)
            terminated = partial(
                podstatus.init_terminated, index=index, exit_code=code, message=message
            )
            if code == 0 or spec.get("restartPolicy", "Always") == "Never":
                self._write(namespace, name, uid, terminated)
                return code == 0
            back_off = min(RESTART_BACK_OFF_SECONDS * 2**restarts, MAX_RESTART_BACK_OFF_SECONDS)
            restarts += 1
            await self.clock.sleep(back_off)

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
            code, message = await self._run(pod, container, lines)
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
            terminated = partial(podstatus.terminated, exit_code=code, message=message)
            self._write(namespace, name, uid, terminated)
            return

    async def _run(
        self, pod: Record, container: JSON, lines: list[tuple[str, str]]
    ) -> tuple[int, str]:
        """Run one container to its end, its log lines into `lines`: its exit code and its
        termination message."""
        if processes.runs_for_real(container):
            spec = pod.obj["spec"]
            pod_dir = self._dirs.of(pod.uid)
            mounts = volumes.materialize(
                spec, container, lambda secret: self._secret_obj(pod, secret), pod_dir
            )
            outcome = await processes.run(container, mounts, pod_dir)
            lines.extend((_rfc3339_nano(), line) for line in outcome.output.splitlines())
            return outcome.exit_code, self._kept_message(outcome.message)
        script = container_script(container)
        termination_log = container.get("terminationMessagePath") or TERMINATION_LOG
        message = ""
        for step in script.steps:
            if isinstance(step, Echo):
                lines.append((_rfc3339_nano(), _HOSTNAME.sub(pod.name, step.text)))
            elif isinstance(step, Cat | Sha256 | Size):
                text = self._output(pod, container, step)
                lines.extend((_rfc3339_nano(), line) for line in text.splitlines())
            elif isinstance(step, Write):
                if step.path == termination_log:
                    text = self._output(pod, container, step.output)
                    message = message + text if step.append else text
            else:
                await self.clock.sleep(step.seconds)
        return script.exit_code, self._kept_message(message)

    @staticmethod
    def _kept_message(message: str) -> str:
        return message.encode()[-MAX_TERMINATION_MESSAGE_BYTES:].decode("utf-8", "replace")

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

    async def _fail_image_pull(self, pod: Record, image: str, init: int | None) -> None:
        namespace, name, uid = pod.namespace, pod.name, pod.uid
        message = (
            f"rpc error: code = NotFound desc = failed to pull and unpack image "
            f'"{image}": not found'
        )

        def waiting(reason: str, message: str) -> Callable[[JSON, JSON], None]:
            if init is None:
                return partial(podstatus.waiting, reason=reason, message=message)
            return partial(podstatus.init_waiting, index=init, reason=reason, message=message)

        pod = self._write(namespace, name, uid, waiting("ErrImagePull", message))
        self._event(pod, "Failed", f'Failed to pull image "{image}": {message}', warning=True)
        await self.clock.sleep_real(self.pending_seconds)
        # Since Kubernetes 1.32 the back-off names the last pull's error (kubernetes#127918).
        back_off = f'Back-off pulling image "{image}": ErrImagePull: {message}'
        pod = self._write(namespace, name, uid, waiting("ImagePullBackOff", back_off))
        self._event(pod, "BackOff", f'Back-off pulling image "{image}"', warning=True)
        await asyncio.Event().wait()  # pulls keep failing until the pod is deleted

    async def _wait_for_secret_volumes(self, pod: Record) -> None:
        """Stay in ContainerCreating while a mounted Secret is missing (kubelet's FailedMount),
        also one of a projected volume."""
        warned = False
        while True:
            added = self._secret_added
            missing = volumes.missing_secrets(
                pod.obj["spec"], lambda secret: self._secret_obj(pod, secret)
            )
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

    def _secret_obj(self, pod: Record, name: str) -> JSON | None:
        secret = self._secret(pod, name)
        return None if secret is None else secret.obj

    def _output(self, pod: Record, container: JSON, step: Step) -> str:
        """What `echo`, `cat`, `sha256sum` or `wc -c` prints (of a file of a mounted volume;
        else busybox's error)."""
        if isinstance(step, Echo):
            return _HOSTNAME.sub(pod.name, step.text) + ("\n" if step.newline else "")
        assert isinstance(step, Cat | Sha256 | Size), step
        content = volumes.read_file(
            pod.obj["spec"],
            container,
            step.path,
            lambda secret: self._secret_obj(pod, secret),
            self._dirs.existing(pod.uid),
        )
        if content is None:
            command = {Cat: "cat", Sha256: "sha256sum", Size: "wc"}[type(step)]
            return f"{command}: can't open '{step.path}': No such file or directory\n"
        if isinstance(step, Sha256):
            return f"{hashlib.sha256(content).hexdigest()}  {step.path}\n"
        if isinstance(step, Size):
            return f"{len(content)} {step.path}\n" if step.named else f"{len(content)}\n"
        return content.decode("utf-8", "replace")

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
