"""Idempotency-Key claims on the local backend: rows of the store's `idempotency_keys` table, each
claim one transaction, so they outlive a restart as the jobs do."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime

from scheduler.backends.base import Claim, ClaimKind
from scheduler.backends.local.codec import from_text, to_text
from scheduler.backends.local.store import LocalStore
from scheduler.errors import NotFoundError


def _claim(row: sqlite3.Row, new: bool) -> Claim:
    kind: ClaimKind = "batch" if row["kind"] == "batch" else "job"
    return Claim(
        body_hash=row["body_hash"],
        kind=kind,
        name=row["name"],
        created=from_text(row["created"]),
        version=row["version"],
        new=new,
    )


class LocalKeys:
    """The KeyStore port on the local store."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store

    async def claim_key(
        self, key_hash: str, *, body_hash: str, kind: ClaimKind, name: str, now: datetime
    ) -> Claim:
        def claiming(conn: sqlite3.Connection) -> Claim:
            sql = "SELECT * FROM idempotency_keys WHERE key_hash = ?"
            existing = conn.execute(sql, (key_hash,)).fetchall()
            if existing:
                return _claim(existing[0], new=False)
            row = conn.execute(
                "INSERT INTO idempotency_keys (key_hash, body_hash, kind, name, created, version)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                (key_hash, body_hash, kind, name, to_text(now), uuid.uuid4().hex),
            ).fetchall()[0]
            return _claim(row, new=True)

        return await self._store.write(claiming)

    async def release_key(self, key_hash: str, version: str | None = None) -> None:
        def releasing(conn: sqlite3.Connection) -> None:
            sql = "DELETE FROM idempotency_keys WHERE key_hash = ? AND (? IS NULL OR version = ?)"
            if conn.execute(sql, (key_hash, version, version)).rowcount == 0:
                raise NotFoundError("no such claim of an Idempotency-Key")

        await self._store.write(releasing)

    async def expire_keys(self, before: datetime) -> int:
        def expiring(conn: sqlite3.Connection) -> int:
            sql = "DELETE FROM idempotency_keys WHERE created < ?"
            return conn.execute(sql, (to_text(before),)).rowcount

        return await self._store.write(expiring)
