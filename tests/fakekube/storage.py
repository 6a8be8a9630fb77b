"""The versioned object store: one resourceVersion counter, per-kind watch history, listeners.

Stored objects are never mutated once stored (writers store a new dict), so readers, watch
history and cached JSON can share them without copying. Kind and apiVersion are not stored;
they are added when an object is served on its own.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .kinds import KINDS, Kind

JSON = dict[str, Any]
Key = tuple[str, str, str]  # kind name, namespace ("" when cluster-scoped), name
Listener = Callable[["Event"], None]

FIRST_RESOURCE_VERSION = 1


class Record:
    """One stored version of an object, with its JSON encodings cached."""

    __slots__ = ("_item", "kind", "obj")

    def __init__(self, kind: Kind, obj: JSON) -> None:
        self.kind = kind
        self.obj = obj
        self._item: bytes | None = None

    @property
    def metadata(self) -> JSON:
        metadata: JSON = self.obj["metadata"]
        return metadata

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def uid(self) -> str:
        return str(self.metadata["uid"])

    @property
    def rv(self) -> int:
        return int(self.metadata["resourceVersion"])

    @property
    def key(self) -> Key:
        return (self.kind.name, self.namespace, self.name)

    def item_json(self) -> bytes:
        """As a list item: the real server omits kind and apiVersion there."""
        if self._item is None:
            self._item = json.dumps(self.obj, separators=(",", ":")).encode()
        return self._item

    def full_json(self) -> bytes:
        """As a single object or a watch event's object: with kind and apiVersion."""
        head = f'{{"kind":"{self.kind.name}","apiVersion":"{self.kind.api_version}",'.encode()
        return head + self.item_json()[1:]

    def copy(self) -> JSON:
        """A deep copy with kind and apiVersion, cheaper through JSON than copy.deepcopy."""
        copied: JSON = json.loads(self.full_json())
        return copied

    def copy_stored(self) -> JSON:
        """A deep copy of the object as stored (without kind and apiVersion)."""
        copied: JSON = json.loads(self.item_json())
        return copied

    def copy_status(self) -> JSON:
        """The object as stored with its own status, metadata and spec dicts to change; what
        they hold (but status) is shared with this version, so must not be changed in place.
        For status writes, which only read the rest, at a fraction of a deep copy's cost."""
        copied = dict(self.obj)
        copied["metadata"] = dict(self.metadata)
        if isinstance(copied.get("spec"), dict):
            copied["spec"] = dict(copied["spec"])
        if "status" in copied:
            copied["status"] = json.loads(json.dumps(copied["status"]))
        return copied


@dataclass(frozen=True, slots=True)
class Event:
    type: str  # ADDED, MODIFIED, DELETED
    record: Record
    previous: Record | None = None  # the version before a MODIFIED/DELETED

    @property
    def rv(self) -> int:
        return self.record.rv


class TooOld(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class _History:
    """Recent events of one kind; `floor` is the newest version no longer covered."""

    def __init__(self, size: int) -> None:
        self.events: deque[Event] = deque(maxlen=size)
        self.floor = 0

    def append(self, event: Event) -> None:
        if self.events.maxlen is not None and len(self.events) == self.events.maxlen:
            self.floor = self.events[0].rv
        self.events.append(event)


class Store:
    def __init__(self, history_size: int = 1000) -> None:
        # Versions are etcd revisions on a real server, never 0: to a list or watch "0" means
        # "any version", so a watch from the version of an empty fake's list would start from
        # the current state instead of replaying what happened since.
        self._rv = FIRST_RESOURCE_VERSION
        self._objects: dict[str, dict[str, dict[str, Record]]] = {k: {} for k in KINDS}
        self._by_uid: dict[str, Key] = {}
        self._dependents: dict[str, set[Key]] = {}
        # The watch cache of a real server is per resource: a burst of Pod events does not
        # expire the versions a Job watcher holds.
        self._history = {name: _History(history_size) for name in KINDS}
        self._listeners: list[Listener] = []

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, kind: Kind, namespace: str, name: str) -> Record | None:
        return self._objects[kind.name].get(namespace, {}).get(name)

    def get_key(self, key: Key) -> Record | None:
        kind, namespace, name = key
        return self._objects[kind].get(namespace, {}).get(name)

    def by_uid(self, uid: str) -> Record | None:
        key = self._by_uid.get(uid)
        return self.get_key(key) if key else None

    def records(self, kind: Kind, namespace: str | None) -> list[Record]:
        """Stored objects in etcd's key order: by namespace, then name."""
        spaces = self._objects[kind.name]
        chosen = [namespace] if namespace is not None else sorted(spaces)
        return [space[name] for ns in chosen if (space := spaces.get(ns)) for name in sorted(space)]

    def namespaces_in_use(self) -> set[str]:
        return {ns for spaces in self._objects.values() for ns, space in spaces.items() if space}

    def dependents(self, owner_uid: str) -> list[Record]:
        found = (self.get_key(key) for key in self._dependents.get(owner_uid, ()))
        return [record for record in found if record is not None]

    def write(self, kind: Kind, obj: JSON) -> Record:
        """Store a new version (ADDED or MODIFIED); the store owns `obj` from now on."""
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        metadata = obj["metadata"]
        namespace = metadata.get("namespace", "") if kind.namespaced else ""
        previous = self.get(kind, namespace, metadata["name"])
        self._rv += 1
        metadata["resourceVersion"] = str(self._rv)
        record = Record(kind, obj)
        self._objects[kind.name].setdefault(namespace, {})[record.name] = record
        self._index(previous, record)
        self._emit(Event("MODIFIED" if previous else "ADDED", record, previous))
        return record

    def remove(self, kind: Kind, obj: JSON) -> Record:
        """Remove an object; its final state gets a new version, as etcd's delete revision."""
        metadata = obj["metadata"]
        namespace = metadata.get("namespace", "") if kind.namespaced else ""
        space = self._objects[kind.name].get(namespace, {})
        previous = space.pop(metadata["name"])
        if not space:
            self._objects[kind.name].pop(namespace, None)
        self._rv += 1
        metadata["resourceVersion"] = str(self._rv)
        record = Record(kind, obj)
        self._index(previous, None)
        self._emit(Event("DELETED", record, previous))
        return record

    def _index(self, old: Record | None, new: Record | None) -> None:
        def owners(record: Record | None) -> set[str]:
            refs = record.metadata.get("ownerReferences") or [] if record else []
            return {str(ref.get("uid")) for ref in refs}

        record = new or old
        assert record is not None
        if new is None:
            self._by_uid.pop(record.uid, None)
        else:
            self._by_uid[new.uid] = new.key
        before, after = owners(old), owners(new)
        for uid in before - after:
            keys = self._dependents.get(uid)
            if keys is not None:
                keys.discard(record.key)
                if not keys:
                    del self._dependents[uid]
        for uid in after - before:
            self._dependents.setdefault(uid, set()).add(record.key)

    def _emit(self, event: Event) -> None:
        self._history[event.record.kind.name].append(event)
        failure: BaseException | None = None
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as exc:  # every listener must see the event; report the first bug
                failure = failure or exc
        if failure is not None:
            raise failure

    def events_since(self, kind: Kind, resource_version: int) -> list[Event]:
        history = self._history[kind.name]
        if resource_version < history.floor:
            raise TooOld(resource_version, history.floor)
        return [event for event in history.events if event.rv > resource_version]

    def expire_history(self) -> None:
        for history in self._history.values():
            history.events.clear()
            history.floor = self._rv

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` synchronously for every event. Listeners must only queue work:
        writing from inside one would reorder events for the listeners after it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def all_records(self) -> Iterable[Record]:
        for spaces in self._objects.values():
            for space in spaces.values():
                yield from space.values()
