"""The garbage collector: deletes dependents whose owners are gone (Background deletion) and
finishes Foreground deletion once an owner's blocking dependents are gone.

Like kube-controller-manager's, it works asynchronously off the store's events, so a client sees
dependents disappear shortly after their owner, not in the same request.
"""

from __future__ import annotations

from typing import Any

from .managedfields import CONTROLLER_MANAGER
from .options import DeleteOptions
from .registry import Registry
from .storage import Event, Key, Record
from .workqueue import Controller

JSON = dict[str, Any]
FOREGROUND = "foregroundDeletion"


def _deleting_in_foreground(record: Record) -> bool:
    metadata = record.metadata
    return bool(metadata.get("deletionTimestamp")) and FOREGROUND in (
        metadata.get("finalizers") or []
    )


class GarbageCollector(Controller):
    def __init__(self, registry: Registry) -> None:
        super().__init__(registry.store, "fakekube-gc")
        self.registry = registry

    def start(self) -> None:
        super().start()
        for record in self.store.all_records():  # objects seeded before the start
            if record.metadata.get("ownerReferences"):
                self.queue.add(record.key)

    def on_event(self, event: Event) -> None:
        record = event.record
        if event.type == "DELETED":
            for dependent in self.store.dependents(record.uid):
                self.queue.add(dependent.key)
        elif _deleting_in_foreground(record):
            self.queue.add(record.key)
        refs = record.metadata.get("ownerReferences") or []
        for ref in refs:
            owner = self._owner(record, ref)
            if owner is None:
                self.queue.add(record.key)  # a dangling reference
            elif _deleting_in_foreground(owner):
                self.queue.add(owner.key)  # the owner may be waiting for this dependent

    def process(self, key: Key) -> None:
        record = self.store.get_key(key)
        if record is None:
            return
        if _deleting_in_foreground(record):
            self._finish_foreground(record)
            return
        if record.metadata.get("deletionTimestamp"):
            return
        refs = record.metadata.get("ownerReferences") or []
        if not refs:
            return
        solid, dangling, waiting = [], [], []
        for ref in refs:
            owner = self._owner(record, ref)
            if owner is None:
                dangling.append(ref)
            elif _deleting_in_foreground(owner):
                waiting.append(ref)
            else:
                solid.append(ref)
        if solid:
            if dangling or waiting:
                self._keep_references(record, solid)
            return
        # Every owner is gone or going: the dependent goes too.
        has_dependents = bool(self.store.dependents(record.uid))
        policy = "Foreground" if waiting and has_dependents else "Background"
        self.registry.delete(record.kind, record.namespace, record.name, DeleteOptions(policy))

    def _owner(self, dependent: Record, ref: JSON) -> Record | None:
        """The live owner a reference names: its uid, kind and name, and for a namespaced owner
        the dependent's namespace (the real collector looks owners up there, so a reference to
        another namespace's object counts as absent)."""
        owner = self.store.by_uid(str(ref.get("uid")))
        if owner is None or owner.name != ref.get("name") or owner.kind.name != ref.get("kind"):
            return None
        if owner.kind.namespaced and owner.namespace != dependent.namespace:
            return None
        return owner

    def _keep_references(self, record: Record, refs: list[JSON]) -> None:
        def keep(obj: JSON) -> None:
            obj["metadata"]["ownerReferences"] = refs

        self.registry.update(
            record.kind, record.namespace, record.name, keep, manager=CONTROLLER_MANAGER
        )

    def _finish_foreground(self, owner: Record) -> None:
        blocking = False
        for dependent in self.store.dependents(owner.uid):
            refs = dependent.metadata.get("ownerReferences") or []
            ref: JSON = next((r for r in refs if r.get("uid") == owner.uid), {})
            if not dependent.metadata.get("deletionTimestamp"):
                self.queue.add(dependent.key)
            # The owner waits only for dependents that block its deletion, as the real GC does.
            blocking = blocking or bool(ref.get("blockOwnerDeletion"))
        if blocking:
            return

        def drop_finalizer(obj: JSON) -> None:
            finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != FOREGROUND]
            obj["metadata"]["finalizers"] = finalizers

        self.registry.update(
            owner.kind, owner.namespace, owner.name, drop_finalizer, manager=CONTROLLER_MANAGER
        )
