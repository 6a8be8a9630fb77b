"""What registry calls take and give besides objects: delete options, deletion results, and
pages of a paginated list with their opaque continue tokens."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import errors as e
from .storage import Record

PROPAGATION_POLICIES = ("Foreground", "Background", "Orphan")


@dataclass(frozen=True, slots=True)
class DeleteOptions:
    propagation_policy: str | None = None
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False

    @classmethod
    def parse(cls, body: Any, query: Mapping[str, str]) -> DeleteOptions:
        """From a `DeleteOptions` body and/or query parameters (the query wins, as in Go)."""
        body = body if isinstance(body, dict) else {}
        preconditions = body.get("preconditions") or {}
        policy = query.get("propagationPolicy") or body.get("propagationPolicy")
        orphan = query.get("orphanDependents", body.get("orphanDependents"))
        if policy is None and orphan is not None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        if policy is not None and policy not in PROPAGATION_POLICIES:
            raise e.bad_request(
                f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                + ", ".join(f'"{p}"' for p in PROPAGATION_POLICIES)
            )
        grace = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        dry_run = query.get("dryRun") or body.get("dryRun")
        return cls(
            propagation_policy=policy,
            grace_period_seconds=int(grace) if grace is not None else None,
            precondition_uid=preconditions.get("uid"),
            precondition_resource_version=preconditions.get("resourceVersion"),
            dry_run=bool(dry_run),
        )


@dataclass(frozen=True, slots=True)
class Page:
    records: list[Record]
    resource_version: int
    continue_token: str | None = None
    remaining: int | None = None


@dataclass(frozen=True, slots=True)
class Deletion:
    record: Record
    removed: bool  # gone now, rather than waiting for finalizers or a grace period


def encode_continue(resource_version: int, after: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": list(after)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, name = data["start"]
        return int(data["rv"]), (str(namespace), str(name))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise e.bad_request(f"continue key is not valid: {exc}") from exc
