"""Idempotency-Key claims on Kubernetes: a ConfigMap `idem-<key hash>` per key, created before the
job or batch it names. A second replica's create of the same key gets AlreadyExists and reads the
first one's claim instead, so the API server decides who creates.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from scheduler.backends.base import Claim, ClaimKind, Identity
from scheduler.backends.kubernetes.client import KubeApi, Resource
from scheduler.backends.kubernetes.manifests import (
    LABEL_IDEMPOTENCY_KEY,
    identity_labels,
    label_selector,
)
from scheduler.backends.kubernetes.recovering import list_all
from scheduler.errors import BackendUnavailableError, ConflictError, NotFoundError

log = logging.getLogger(__name__)

CLAIM_PREFIX = "idem-"
# 128 bits of the key's hash name its claim (and fit a label value).
CLAIM_HASH_CHARS = 32
# A claim released between our create and our read is claimed again, this many times in all.
CLAIM_ATTEMPTS = 3
_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


def claim_name(key_hash: str) -> str:
    return f"{CLAIM_PREFIX}{key_hash[:CLAIM_HASH_CHARS]}"


def build_claim(
    identity: Identity, key_hash: str, *, body_hash: str, kind: ClaimKind, name: str, now: datetime
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": claim_name(key_hash),
            "labels": {
                **identity_labels(identity),
                LABEL_IDEMPOTENCY_KEY: key_hash[:CLAIM_HASH_CHARS],
            },
        },
        "data": {
            "bodyHash": body_hash,
            "kind": kind,
            "name": name,
            "created": now.astimezone(UTC).isoformat(timespec="microseconds"),
        },
    }


def _created(text: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(text))
    except ValueError:
        return _LONG_AGO  # unreadable: as good as expired
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def claim_of(obj: dict[str, Any], new: bool) -> Claim:
    data = obj.get("data") or {}
    metadata = obj.get("metadata") or {}
    kind: ClaimKind = "batch" if data.get("kind") == "batch" else "job"
    return Claim(
        body_hash=str(data.get("bodyHash", "")),
        kind=kind,
        name=str(data.get("name", "")),
        created=_created(data.get("created")),
        version=str(metadata.get("resourceVersion", "")),
        new=new,
    )


def _is_ours(obj: dict[str, Any], identity: Identity) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    expected = identity_labels(identity)
    return LABEL_IDEMPOTENCY_KEY in labels and all(labels.get(k) == v for k, v in expected.items())


class KubernetesKeys:
    """The KeyStore port on ConfigMaps (create, get, delete; list for expiry)."""

    def __init__(self, api: KubeApi, identity: Identity) -> None:
        self._api = api
        self._identity = identity

    async def claim_key(
        self, key_hash: str, *, body_hash: str, kind: ClaimKind, name: str, now: datetime
    ) -> Claim:
        body = build_claim(
            self._identity, key_hash, body_hash=body_hash, kind=kind, name=name, now=now
        )
        for _ in range(CLAIM_ATTEMPTS):
            try:
                return claim_of(await self._api.create(Resource.CONFIGMAPS, body), new=True)
            except ConflictError:
                pass  # claimed already: read whose claim it is
            try:
                existing = await self._api.get(Resource.CONFIGMAPS, claim_name(key_hash))
            except NotFoundError:
                continue  # released or expired meanwhile: claim it again
            if not _is_ours(existing, self._identity):
                raise ConflictError(
                    f"ConfigMap {claim_name(key_hash)} exists and is not an Idempotency-Key "
                    "claim of this scheduler"
                )
            return claim_of(existing, new=False)
        raise BackendUnavailableError(
            "the claim of this Idempotency-Key kept changing while it was read; retry"
        )

    async def release_key(self, key_hash: str, version: str | None = None) -> None:
        await self._api.delete(
            Resource.CONFIGMAPS, claim_name(key_hash), resource_version=version or None
        )

    async def expire_keys(self, before: datetime) -> int:
        selector = f"{label_selector(self._identity)},{LABEL_IDEMPOTENCY_KEY}"
        expired = 0
        async for item in list_all(self._api, Resource.CONFIGMAPS, selector):
            claim = claim_of(item, new=False)
            if claim.created >= before:
                continue
            try:
                # Only that claim: a key claimed anew meanwhile keeps its new claim.
                await self._api.delete(
                    Resource.CONFIGMAPS, item["metadata"]["name"], resource_version=claim.version
                )
            except NotFoundError:
                continue
            expired += 1
        if expired:
            log.info("removed %d expired Idempotency-Key claim(s)", expired)
        return expired
