"""`metadata.managedFields` as kube-apiserver keeps them for `Update` operations (not for
server-side apply, which the fake does not serve).

Every create, update, patch and status write records which manager set which fields: one entry
per (manager, operation, apiVersion, subresource), whose `fieldsV1` is a tree of `f:<key>` for
fields, `k:{"name":"x"}` for items of lists keyed by a field, `v:"x"` for items of set lists and
`".": {}` on a node that is itself a member with children; leaves are `{}`. An update gives the
writer the fields it added or changed (taking them from other managers, as a forced Update does),
drops removed fields from every entry, drops entries left empty, and moves the writer's `time`
only when it changed something, as the real field manager does.

The shape (which lists are keyed by what, which nodes carry ".") follows what a real 1.24
server records for Jobs and Pods (tests/fakekube/reference/); the rules are approximate for other
kinds, and the trees are not computed with the real server's OpenAPI schema.

Trees stored in an object are never mutated: every operation returns new dicts and shares the
subtrees it did not change, so stored versions can share them.
"""

from __future__ import annotations

import json
from typing import Any

from .clock import rfc3339

JSON = dict[str, Any]
Fields = dict[str, Any]  # a FieldsV1 tree

# The managers of the fake's own components, as the real ones name themselves.
CONTROLLER_MANAGER = "kube-controller-manager"  # the Job controller and the garbage collector
KUBELET = "kubelet"
SCHEDULER = "kube-scheduler"

# Metadata the field manager tracks; the rest (name, uid, resourceVersion...) it strips.
TRACKED_METADATA = ("generateName", "labels", "annotations", "finalizers", "ownerReferences")
# Required (non-pointer) structs and lists get no "." entry of their own in real FieldsV1.
_NO_DOT = frozenset(
    {
        "metadata",
        "spec",
        "status",
        "template",
        "containers",
        "initContainers",
        "ephemeralContainers",
        "conditions",
        "resources",
    }
)
_SET = ("",)  # a list of scalars that is a set: its items are `v:<json>`
# Lists whose items are identified by fields (x-kubernetes-list-map-keys); any other list is
# atomic (one leaf). `ports` is keyed by what its items have (containerPort or port).
_LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "resourceClaims": ("name",),
    "ports": ("containerPort", "port", "protocol"),
    "conditions": ("type",),
    "podIPs": ("ip",),
    "hostIPs": ("ip",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "ownerReferences": ("uid",),
    "finalizers": _SET,
    "succeeded": _SET,  # a Job's uncountedTerminatedPods
    "failed": _SET,
}
# A Job's status conditions are an atomic list (a Pod's are keyed by type).
_JOB_LIST_KEYS = {**_LIST_KEYS, "conditions": ()}
# Items recorded as a bare `{}`, without their fields.
_OPAQUE_ITEMS = frozenset({"ownerReferences"})
_SKIPPED = "creationTimestamp"  # `null` in pod templates; never tracked

_MISSING = object()
_LEAF: Fields = {}  # shared by every tree: trees are never mutated


def _tracked(fields: Fields) -> bool:
    """Whether a tree from fields_of names anything: a leaf does, and so does a node with
    children; a fresh empty dict is a required struct that held only untracked fields."""
    return fields is _LEAF or bool(fields)


def _quote(value: Any) -> str:
    """JSON of a list item's key value; plain names without json.dumps, which is slower."""
    if type(value) is str and value.isascii() and value.isprintable():
        if '"' not in value and "\\" not in value:
            return '"' + value + '"'
    elif type(value) is int:
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def manager_from(field_manager: str | None, user_agent: str | None) -> str:
    """The request's manager: `fieldManager`, else the User-Agent up to its first "/" (printable
    characters, at most 128), as kube-apiserver derives it (`OpenAPI-Generator/31.0.0/python`
    is `OpenAPI-Generator`)."""
    if field_manager:
        return field_manager
    prefix = (user_agent or "").split("/", 1)[0]
    return "".join(c for c in prefix if c.isprintable())[:128]


def list_keys(kind_name: str) -> dict[str, tuple[str, ...]]:
    return _JOB_LIST_KEYS if kind_name == "Job" else _LIST_KEYS


# building trees


def _item_path(item: Any, name: str, keys: tuple[str, ...]) -> str | None:
    if keys is _SET:
        return "v:" + _quote(item)
    if not isinstance(item, dict):
        return None
    present = [f'"{key}":{_quote(item[key])}' for key in keys if key in item]
    if not present:
        return None
    return "k:{" + ",".join(present) + "}"


def _items(value: list[Any], name: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """A keyed or set list as {path: item}; None when an item has no key (treated as atomic)."""
    found: dict[str, Any] = {}
    for item in value:
        path = _item_path(item, name, keys)
        if path is None:
            return None
        found[path] = item
    return found


def _item_fields(item: Any, name: str, lists: dict[str, tuple[str, ...]]) -> Fields:
    if name in _OPAQUE_ITEMS or not isinstance(item, dict):
        return _LEAF
    return fields_of(item, None, lists)


def fields_of(value: Any, name: str | None, lists: dict[str, tuple[str, ...]]) -> Fields:
    """The tree of every field set in `value` (the value of field `name`); see _tracked."""
    if isinstance(value, dict):
        if not value:
            return _LEAF
        out: Fields = {} if name in _NO_DOT else {".": _LEAF}
        for key, item in value.items():
            if type(item) is dict or type(item) is list:
                sub = fields_of(item, key, lists)
                if _tracked(sub):
                    out["f:" + key] = sub
            elif key != _SKIPPED:
                out["f:" + key] = _LEAF
        return out
    if isinstance(value, list) and value and name is not None:
        keys = lists.get(name)
        if not keys:
            return _LEAF
        items = _items(value, name, keys)
        if items is None:
            return _LEAF
        out = {} if name in _NO_DOT else {".": _LEAF}
        for path, item in items.items():
            out[path] = _item_fields(item, name, lists)
        return out
    return _LEAF


def _diff(
    old: Any, new: Any, name: str | None, lists: dict[str, tuple[str, ...]]
) -> tuple[Fields | None, Fields | None]:
    """(fields added or changed, fields removed) between two different values of one field.
    In the removed tree, None stands for a whole subtree."""
    if isinstance(old, dict) and isinstance(new, dict):
        return _diff_maps(old, new, "f:", lists)
    if isinstance(old, list) and isinstance(new, list) and name is not None:
        keys = lists.get(name)
        if keys:
            before, after = _items(old, name, keys), _items(new, name, keys)
            if before is not None and after is not None:
                return _diff_items(before, after, name, lists)
    replaced = fields_of(new, name, lists)  # replaced whole: a scalar or an atomic list
    return (replaced if _tracked(replaced) else None), None


def _diff_maps(
    old: JSON, new: JSON, prefix: str, lists: dict[str, tuple[str, ...]]
) -> tuple[Fields | None, Fields | None]:
    changed: Fields = {}
    removed: Fields = {}
    for key, value in new.items():
        if key == _SKIPPED:
            continue
        before = old.get(key, _MISSING)
        if before is _MISSING:
            fields = fields_of(value, key, lists)
            if _tracked(fields):
                changed[prefix + key] = fields
        elif before is not value and before != value:
            added, gone = _diff(before, value, key, lists)
            if added is not None:
                changed[prefix + key] = added
            if gone is not None:
                removed[prefix + key] = gone
    for key in old:
        if key not in new and key != _SKIPPED:
            removed[prefix + key] = None
    return changed or None, removed or None


def _diff_items(
    old: dict[str, Any], new: dict[str, Any], name: str, lists: dict[str, tuple[str, ...]]
) -> tuple[Fields | None, Fields | None]:
    changed: Fields = {}
    removed: Fields = {}
    for path, item in new.items():
        before = old.get(path, _MISSING)
        if before is _MISSING:
            changed[path] = _item_fields(item, name, lists)
        elif before != item:
            if name in _OPAQUE_ITEMS or not isinstance(item, dict) or not isinstance(before, dict):
                changed[path] = _LEAF
                continue
            added, gone = _diff_maps(before, item, "f:", lists)
            if added is not None:
                changed[path] = added
            if gone is not None:
                removed[path] = gone
    for path in old:
        if path not in new:
            removed[path] = None
    return changed or None, removed or None


# combining trees


def _union(a: Fields, b: Fields) -> Fields:
    if a is b:
        return a
    if not a:  # a member leaf: it stays a member, with b's children
        return b if not b or "." in b else {".": _LEAF, **b}
    if not b:
        return a if "." in a else {".": _LEAF, **a}
    out = dict(a)
    for key, value in b.items():
        out[key] = _union(out[key], value) if key in out else value
    return out


def _without(a: Fields, b: Fields) -> Fields | None:
    """`a` without the paths of `b`, where an empty (or None) node of `b` takes the whole
    subtree; None when nothing is left."""
    out: Fields | None = None
    for key, sub in b.items():
        if key == "." or key not in a:
            continue
        if out is None:
            out = dict(a)
        if not sub:
            del out[key]
            continue
        rest = _without(out[key], sub)
        if rest is None:
            del out[key]
        else:
            out[key] = rest
    if out is None:
        return a
    if len(out) == 1 and "." in out:
        return _LEAF  # a member whose children are gone is a leaf
    return out or None


# entries


def _entry(manager: str, api_version: str, time: str, fields: Fields, sub: str | None) -> JSON:
    entry: JSON = {}
    if manager:
        entry["manager"] = manager
    entry.update(
        {
            "operation": "Update",
            "apiVersion": api_version,
            "time": time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
    )
    if sub:
        entry["subresource"] = sub
    return entry


def _order(entry: JSON) -> tuple[str, str, str, str, str]:
    # sortEncodedManagedFields: operation, then time (seconds), manager, apiVersion, subresource.
    return (
        str(entry.get("operation", "")),
        str(entry.get("time", "")),
        str(entry.get("manager", "")),
        str(entry.get("apiVersion", "")),
        str(entry.get("subresource", "")),
    )


def tracked_view(obj: JSON, subresource: str | None) -> JSON:
    """The part of an object a write to `subresource` manages: status for `status`, everything
    else (the tracked metadata only) for the main resource."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    view = {
        key: value
        for key, value in obj.items()
        if key not in ("metadata", "status", "kind", "apiVersion")
    }
    metadata = obj.get("metadata") or {}
    tracked = {key: metadata[key] for key in TRACKED_METADATA if key in metadata}
    if tracked:
        view["metadata"] = tracked
    return view


def created(kind_name: str, api_version: str, view: JSON, manager: str) -> list[JSON]:
    """managedFields of a new object whose creator set the fields of `view`."""
    lists = list_keys(kind_name)
    fields = {
        "f:" + key: sub
        for key, value in view.items()
        if _tracked(sub := fields_of(value, key, lists))
    }
    if not fields:
        return []
    return [_entry(manager, api_version, rfc3339(), fields, None)]


def updated(
    kind_name: str,
    api_version: str,
    entries: list[JSON] | None,
    old_view: JSON,
    new_view: JSON,
    manager: str,
    subresource: str | None,
) -> list[JSON] | None:
    """managedFields after `manager` wrote `new_view` over `old_view`; None when unchanged."""
    changed, removed = _diff_maps(old_view, new_view, "f:", list_keys(kind_name))
    if changed is None and removed is None:
        return None
    now = rfc3339()
    result: list[JSON] = []
    mine = False
    for entry in entries or []:
        if not isinstance(entry, dict):
            continue  # a seeded object's odd entry: dropped, as the real server rejects it
        fields: Fields | None = entry.get("fieldsV1") or {}
        same = (
            entry.get("manager", "") == manager
            and entry.get("operation") == "Update"
            and entry.get("apiVersion") == api_version
            and (entry.get("subresource") or None) == subresource
        )
        if same:
            mine = True
            if changed is not None:
                fields = _union(fields or {}, changed)
            if removed is not None and fields is not None:
                fields = _without(fields, removed)
        else:
            if changed is not None and fields is not None:
                fields = _without(fields, changed)
            if removed is not None and fields is not None:
                fields = _without(fields, removed)
        if not fields:
            continue
        if same and changed is not None:
            result.append(_entry(manager, api_version, now, fields, subresource))
        elif fields is not entry.get("fieldsV1"):
            result.append({**entry, "fieldsV1": fields})
        else:
            result.append(entry)
    if not mine and changed is not None:
        result.append(_entry(manager, api_version, now, changed, subresource))
    result.sort(key=_order)
    return result
