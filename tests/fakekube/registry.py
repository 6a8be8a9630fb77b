"""API semantics over the store, like kube-apiserver's generic registry: metadata on create,
optimistic concurrency, no-op updates, status isolation, finalizers, graceful deletion.

Every write, from HTTP handlers and from the fake's controllers alike, goes through here.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from . import errors as e
from . import managedfields
from .clock import rfc3339
from .kinds import KINDS, NAMESPACE, Kind, kind_named
from .options import DeleteOptions, Deletion, Page, decode_continue, encode_continue
from .patching import apply_patch
from .selectors import FieldSelector, LabelSelector
from .storage import Record, Store
from .strategies import strategies

JSON = dict[str, Any]

# k8s.io/apiserver's generateName alphabet: no vowels (no accidental words), no 0/1/3.
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_GENERATE_NAME_PREFIX = 63 - 5
# Metadata Go's `omitempty` drops when empty, so a stored object never holds it empty.
OMITTED_WHEN_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences")
# Metadata only the server sets; a client's values are ignored on update.
SERVER_OWNED_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
    "generation",
    "selfLink",
)


class Registry:
    def __init__(self, store: Store, rng: random.Random | None = None) -> None:
        self.store = store
        self.rng = rng or random.Random()
        self.strategies = strategies()

    # reading

    def get(self, kind: Kind, namespace: str, name: str) -> Record:
        record = self.store.get(kind, namespace, name)
        if record is None:
            raise e.not_found(kind, name)
        return record

    def list(
        self,
        kind: Kind,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Page:
        resource_version = self.store.resource_version
        after: tuple[str, str] | None = None
        if continue_token:
            resource_version, after = decode_continue(continue_token)
        matching = [
            record
            for record in self.store.records(kind, namespace)
            if (after is None or (record.namespace, record.name) > after)
            and labels.matches(record.metadata.get("labels"))
            and fields.matches(record.obj)
        ]
        if not limit or len(matching) <= limit:
            return Page(matching, resource_version)
        page, last = matching[:limit], matching[limit - 1]
        token = encode_continue(resource_version, (last.namespace, last.name))
        return Page(page, resource_version, token, len(matching) - limit)

    # writing

    def create(
        self, kind: Kind, namespace: str, body: Any, *, dry_run: bool = False, manager: str = ""
    ) -> Record:
        """Store a new object; `manager` (a request's field manager) owns the fields it set."""
        obj = self._checked_body(kind, body)
        metadata = obj["metadata"]
        if kind.namespaced:
            if metadata.get("namespace") not in (None, "", namespace):
                raise e.bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = self._generate_name(kind, namespace, metadata["generateName"])
        for field in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            metadata.pop(field, None)
        metadata["uid"] = self._new_uid()
        metadata["creationTimestamp"] = rfc3339()
        if kind.has_generation:
            metadata["generation"] = 1
        else:
            metadata.pop("generation", None)
        _omit_empty(metadata)
        strategy = self.strategies[kind.name]
        # Decoding applies the defaults; the field manager records the request's fields (with
        # them) before the strategy and admission add theirs, which nobody owns.
        strategy.default(obj)
        managed = managedfields.created(
            kind.name, kind.api_version, managedfields.tracked_view(obj, None), manager
        )
        problems = strategy.prepare_for_create(obj)
        strategy.admit(obj, self._random_suffix)
        strategy.default(obj)
        problems += strategy.validate(obj)
        if problems:
            raise e.invalid(kind, str(metadata.get("name", "")), problems)
        if managed:
            metadata["managedFields"] = managed
        else:
            metadata.pop("managedFields", None)
        if self.store.get(kind, namespace if kind.namespaced else "", metadata["name"]):
            raise e.already_exists(kind, metadata["name"])
        if dry_run:
            return Record(kind, obj)
        return self.store.write(kind, obj)

    def replace(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str = "",
    ) -> Record:
        old = self.get(kind, namespace, name)
        obj = self._checked_body(kind, body)
        given = obj["metadata"].get("resourceVersion")
        if given and given != old.metadata["resourceVersion"]:
            raise e.conflict(kind, name)
        return self._commit_update(old, obj, subresource, dry_run, manager)

    def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str = "",
    ) -> Record:
        old = self.get(kind, namespace, name)
        patched = apply_patch(old.copy(), patch, content_type)
        obj = self._checked_body(kind, patched)
        if obj["metadata"].get("resourceVersion") not in (None, old.metadata["resourceVersion"]):
            raise e.conflict(kind, name)
        return self._commit_update(old, obj, subresource, dry_run, manager)

    def update(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        mutate: Callable[[JSON], None],
        *,
        manager: str,
        subresource: str | None = None,
    ) -> Record | None:
        """Read-modify-write for the fake's own controllers (`manager` names the component, as
        in managedFields); None when the object is gone. A `status` or `binding` write may
        change only status and `spec.nodeName` (the rest is shared with the stored version)."""
        old = self.store.get(kind, namespace, name)
        if old is None:
            return None
        obj = old.copy_status() if subresource in ("status", "binding") else old.copy()
        mutate(obj)
        return self._commit_update(old, obj, subresource, False, manager)

    def delete(self, kind: Kind, namespace: str, name: str, options: DeleteOptions) -> Deletion:
        record = self.get(kind, namespace, name)
        self._check_preconditions(record, options)
        strategy = self.strategies[kind.name]
        obj = record.copy()
        metadata = obj["metadata"]
        if metadata.get("deletionTimestamp"):
            return self._shorten_grace(record, options)
        policy = options.propagation_policy or kind.default_propagation
        if options.dry_run:
            return Deletion(record, removed=False)
        if kind is NAMESPACE:
            self._empty_namespace(name)
        if policy == "Orphan":
            self._orphan_dependents(record)
        finalizers = list(metadata.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
            metadata["finalizers"] = finalizers
        grace = strategy.grace_period(obj, options.grace_period_seconds)
        if finalizers or grace > 0:
            metadata["deletionTimestamp"] = rfc3339(time.time() + grace)
            metadata["deletionGracePeriodSeconds"] = grace
            if kind.has_generation:
                metadata["generation"] = metadata.get("generation", 0) + 1
            return Deletion(self.store.write(kind, obj), removed=False)
        return Deletion(self._remove(kind, obj), removed=True)

    def put(self, obj: JSON) -> Record:
        """Store an object as given (no validation, status and managedFields kept), filling what
        a stored object must have, the kind's defaults and what admission adds to Pods (but not
        a Job's generated selector and labels). For seeding tests; watchers see it like any
        other write."""
        kind = kind_named(str(obj.get("kind")))
        obj = json.loads(json.dumps(obj))
        metadata = obj.setdefault("metadata", {})
        if kind.namespaced:
            metadata.setdefault("namespace", "default")
        if not metadata.get("name"):
            prefix = metadata.get("generateName") or kind.name.lower() + "-"
            metadata["name"] = self._generate_name(kind, metadata.get("namespace", ""), prefix)
        existing = self.store.get(kind, metadata.get("namespace", ""), metadata["name"])
        metadata.setdefault("uid", existing.uid if existing else self._new_uid())
        metadata.setdefault("creationTimestamp", rfc3339())
        if kind.has_generation:
            metadata.setdefault("generation", 1)
        self.strategies[kind.name].default(obj)
        self.strategies[kind.name].admit(obj, self._random_suffix)
        return self.store.write(kind, obj)

    # helpers

    def _checked_body(self, kind: Kind, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise e.bad_request(f"the body of the request is not a {kind.name} object")
        if body.get("kind") not in (None, "", kind.name):
            raise e.bad_request(
                f"the kind of the object ({body['kind']}) does not match the "
                f"kind on the URL ({kind.name})"
            )
        if body.get("apiVersion") not in (None, "", kind.api_version):
            raise e.bad_request(
                f"the API version in the data ({body['apiVersion']}) does not "
                f"match the expected API version ({kind.api_version})"
            )
        if not isinstance(body.setdefault("metadata", {}), dict):
            raise e.bad_request("metadata must be an object")
        body.pop("kind", None)
        body.pop("apiVersion", None)
        return body

    def _new_uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _random_suffix(self) -> str:
        """Five characters as utilrand.String(5) gives them: generated names, volume names."""
        return "".join(self.rng.choice(NAME_ALPHABET) for _ in range(5))

    def _generate_name(self, kind: Kind, namespace: str, prefix: str) -> str:
        prefix = prefix[:MAX_GENERATE_NAME_PREFIX]
        while True:
            name = prefix + self._random_suffix()
            if self.store.get(kind, namespace if kind.namespaced else "", name) is None:
                return name

    def _commit_update(
        self, old: Record, obj: JSON, subresource: str | None, dry_run: bool, manager: str
    ) -> Record:
        kind, metadata = old.kind, obj["metadata"]
        if metadata.get("name", old.name) != old.name:
            raise e.bad_request(
                f"the name of the object ({metadata.get('name')}) does not match "
                f"the name on the URL ({old.name})"
            )
        if kind.namespaced and metadata.get("namespace", old.namespace) != old.namespace:
            raise e.bad_request(
                "the namespace of the provided object does not match the "
                "namespace sent on the request"
            )
        strategy = self.strategies[kind.name]
        obj = strategy.prepare_for_update(obj, old, subresource)
        metadata = obj["metadata"]
        for field in ("name", "namespace", *SERVER_OWNED_METADATA):
            if field in old.metadata:
                metadata[field] = old.metadata[field]
            else:
                metadata.pop(field, None)
        metadata["resourceVersion"] = old.metadata["resourceVersion"]
        _omit_empty(metadata)
        # A body's managedFields are ignored: the server keeps its own (the real one lets a
        # client replace them, which nothing here does).
        entries = old.metadata.get("managedFields")
        if entries is None:
            metadata.pop("managedFields", None)
        else:
            metadata["managedFields"] = entries
        strategy.default(obj)
        problems = strategy.validate(obj) + strategy.validate_update(obj, old.obj)
        if problems:
            raise e.invalid(kind, old.name, problems)
        if kind.has_generation and obj.get("spec") != old.obj.get("spec"):
            metadata["generation"] = old.metadata.get("generation", 0) + 1
        if obj == old.obj:
            # The real server skips writes that change nothing: no new version, no event.
            return Record(kind, obj) if dry_run else old
        if subresource != "binding":  # a binding is stored without the field manager
            self._track(old, obj, "status" if subresource == "status" else None, manager)
        if dry_run:
            return Record(kind, obj)
        finalized = not metadata.get("finalizers") and not metadata.get(
            "deletionGracePeriodSeconds"
        )
        if metadata.get("deletionTimestamp") and finalized:
            return self._remove(kind, obj)
        return self.store.write(kind, obj)

    @staticmethod
    def _track(old: Record, obj: JSON, subresource: str | None, manager: str) -> None:
        kind = old.kind
        entries = managedfields.updated(
            kind.name,
            kind.api_version,
            old.metadata.get("managedFields"),
            managedfields.tracked_view(old.obj, subresource),
            managedfields.tracked_view(obj, subresource),
            manager,
            subresource,
        )
        if entries is None:
            return
        if entries:
            obj["metadata"]["managedFields"] = entries
        else:
            obj["metadata"].pop("managedFields", None)

    def _remove(self, kind: Kind, obj: JSON) -> Record:
        self.strategies[kind.name].removed(obj)
        return self.store.remove(kind, obj)

    def _check_preconditions(self, record: Record, options: DeleteOptions) -> None:
        uid, rv = options.precondition_uid, options.precondition_resource_version
        if uid and uid != record.uid:
            raise e.conflict(
                record.kind,
                record.name,
                f"Precondition failed: UID in precondition:"
                f" {uid}, UID in object meta: {record.uid}",
            )
        current = record.metadata["resourceVersion"]
        if rv and rv != current:
            raise e.conflict(
                record.kind,
                record.name,
                "Precondition failed: ResourceVersion in "
                f"precondition: {rv}, ResourceVersion in object meta: {current}",
            )

    def _shorten_grace(self, record: Record, options: DeleteOptions) -> Deletion:
        """A second DELETE of a terminating object may only shorten its grace period."""
        obj = record.copy()
        metadata = obj["metadata"]
        grace = self.strategies[record.kind.name].grace_period(obj, options.grace_period_seconds)
        if options.dry_run or grace >= int(metadata.get("deletionGracePeriodSeconds") or 0):
            return Deletion(record, removed=False)
        metadata["deletionGracePeriodSeconds"] = grace
        metadata["deletionTimestamp"] = rfc3339(time.time() + grace)
        if grace == 0 and not metadata.get("finalizers"):
            return Deletion(self._remove(record.kind, obj), removed=True)
        return Deletion(self.store.write(record.kind, obj), removed=False)

    def _orphan_dependents(self, owner: Record) -> None:
        # The real server does this through the `orphan` finalizer and the garbage collector;
        # doing it before the owner goes is what a client can observe.
        for dependent in self.store.dependents(owner.uid):

            def drop_reference(obj: JSON) -> None:
                refs = obj["metadata"].get("ownerReferences") or []
                kept = [ref for ref in refs if ref.get("uid") != owner.uid]
                if kept:
                    obj["metadata"]["ownerReferences"] = kept
                else:
                    obj["metadata"].pop("ownerReferences", None)

            self.update(
                dependent.kind,
                dependent.namespace,
                dependent.name,
                drop_reference,
                manager=managedfields.CONTROLLER_MANAGER,
            )

    def _empty_namespace(self, namespace: str) -> None:
        for kind in KINDS.values():
            if not kind.namespaced:
                continue
            for record in self.store.records(kind, namespace):
                if not record.metadata.get("deletionTimestamp"):
                    self.delete(kind, namespace, record.name, DeleteOptions("Background", 0))


def _omit_empty(metadata: JSON) -> None:
    for field in OMITTED_WHEN_EMPTY:
        if field in metadata and metadata[field] in ([], {}, None):
            del metadata[field]
