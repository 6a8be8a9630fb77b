"""The registry's per-kind hooks, after kube-apiserver's `RESTCreateStrategy` and
`RESTUpdateStrategy`: defaults, validation, and what an update may change."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .errors import FieldError
from .kinds import Kind
from .storage import Record
from .validation import metadata_errors

JSON = dict[str, Any]


class Strategy:
    """Defaults to a kind with no rules beyond metadata; subclasses add theirs."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind

    def prepare_for_create(self, obj: JSON) -> list[FieldError]:
        """Reset what a client may not set on create (mostly status); default and check."""
        return []

    def default(self, obj: JSON) -> None:
        """Fill defaults; runs on every write, as decoding does in the real server."""

    def admit(self, obj: JSON, random_suffix: Callable[[], str]) -> None:
        """What admission plugins add on create (after the field manager, so nobody owns it)."""

    def validate(self, obj: JSON) -> list[FieldError]:
        return metadata_errors(self.kind, obj.setdefault("metadata", {}))

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return []

    def prepare_for_update(self, new: JSON, old: Record, subresource: str | None) -> JSON:
        """The object to store: the main resource keeps the old status, `status` only status.
        A status write shares the old version's other fields (defaults, which run on every
        write, leave an object they already ran on unchanged)."""
        if not self.kind.status_subresource:
            return new
        if subresource == "status":
            merged = dict(old.obj)
            merged["metadata"] = dict(old.metadata)
            merged["status"] = new.get("status") or {}
            return merged
        if "status" in old.obj:
            new["status"] = copy.deepcopy(old.obj["status"])
        else:
            new.pop("status", None)
        return new

    def removed(self, obj: JSON) -> None:
        """Release what the object held (a Service's cluster IP)."""

    def grace_period(self, obj: JSON, requested: int | None) -> int:
        """Seconds a deletion waits for the object to stop; only running Pods wait."""
        return 0
