"""Core v1 Events about Pods and Jobs, as the kubelet, scheduler and Job controller record them."""

from __future__ import annotations

import logging
import time

from .clock import rfc3339
from .errors import ApiError
from .kinds import EVENT
from .managedfields import CONTROLLER_MANAGER, KUBELET, SCHEDULER
from .registry import Registry
from .storage import Record

log = logging.getLogger(__name__)

# The field manager of each reporting component's process.
MANAGERS = {
    "kubelet": KUBELET,
    "default-scheduler": SCHEDULER,
    "job-controller": CONTROLLER_MANAGER,
}


class EventRecorder:
    def __init__(self, registry: Registry, *, enabled: bool = True) -> None:
        self.registry = registry
        self.enabled = enabled
        self._last_nanos = 0

    def record(
        self,
        regarding: Record,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        component: str = "kubelet",
        host: str | None = None,
    ) -> None:
        if not self.enabled:
            return
        now = rfc3339()
        # The real recorder names events <object>.<unix nanos in hex>; never reusing a value
        # keeps two events of one clock tick apart.
        self._last_nanos = max(time.time_ns(), self._last_nanos + 1)
        suffix = f"{self._last_nanos:x}"
        source = {"component": component, **({"host": host} if host else {})}
        event = {
            "metadata": {
                "name": f"{regarding.name}.{suffix}",
                "namespace": regarding.namespace,
            },
            "involvedObject": {
                "kind": regarding.kind.name,
                "namespace": regarding.namespace,
                "name": regarding.name,
                "uid": regarding.uid,
                "apiVersion": regarding.kind.api_version,
                "resourceVersion": regarding.metadata["resourceVersion"],
            },
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": "Warning" if warning else "Normal",
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        try:
            manager = MANAGERS.get(component, component)
            self.registry.create(EVENT, regarding.namespace, event, manager=manager)
        except ApiError as exc:  # an event is best effort, as in client-go's recorder
            log.debug("event %s dropped: %s", reason, exc.message)
