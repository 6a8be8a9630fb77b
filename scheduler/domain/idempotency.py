"""Safe retries: a create with an Idempotency-Key answers, while the key's claim lives, with the job
or batch the first such request made. The claim (in the backend's KeyStore, shared by replicas and
kept across restarts) is made before the job or batch, with the name that one will have.

A claim whose job or batch has not appeared after the create grace time was abandoned (its
creator crashed) and is taken over; so is one whose job or batch was deleted since.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel

from scheduler.backends.base import Claim, ClaimKind, KeyStore
from scheduler.clock import CLOCK_SKEW_SECONDS, utcnow
from scheduler.domain.batches import BatchService
from scheduler.domain.jobs import JobService
from scheduler.domain.view import JobView
from scheduler.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    NotReadyError,
    SchedulerError,
)
from scheduler.loops import forever
from scheduler.models import (
    BatchScheduleDescription,
    BatchStatus,
    JobScheduleDescription,
    JobStatus,
)
from scheduler.names import new_batch_name, new_job_name
from scheduler.settings import DEFAULT_CREATE_GRACE_SECONDS, DEFAULT_IDEMPOTENCY_TTL_SECONDS

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# How long a repeat waits for the first request's job to appear before answering 409.
IN_PROGRESS_WAIT_SECONDS = 10.0
IN_PROGRESS_POLL_SECONDS = 0.05
IN_PROGRESS = f"a request with this {HEADER} is in progress; retry"
# Claims taken over or expired between our reads are claimed again, this many times in all.
_ROUNDS = 3

Result = TypeVar("Result")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_hash(component: str, key: str) -> str:
    """Scoped to the job: another scheduler in the namespace may be sent the same key."""
    return _sha256(f"{component}\n{key}")


def body_hash(body: BaseModel, key: str) -> str:
    """Of the parsed request, so neither whitespace nor the order of keys matters.

    An HMAC keyed with the Idempotency-Key, which is stored only as a hash: whoever can read the
    stored claim cannot confirm a guess of the body (its payload, its variables) without the key.
    """
    canonical = json.dumps(
        body.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":")
    )
    return hmac.new(key.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def check_key(key: str) -> str:
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise InvalidError(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters, not only spaces")
    return key


class Idempotency:
    def __init__(
        self,
        keys: KeyStore,
        view: JobView,
        jobs: JobService,
        batches: BatchService,
        *,
        ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS,
        grace_seconds: float = DEFAULT_CREATE_GRACE_SECONDS,
        clock: Callable[[], datetime] = utcnow,
        wait_seconds: float = IN_PROGRESS_WAIT_SECONDS,
    ) -> None:
        self._keys = keys
        self._view = view
        self._jobs = jobs
        self._batches = batches
        self._ttl = timedelta(seconds=ttl_seconds)
        self._abandoned_after = timedelta(seconds=grace_seconds + CLOCK_SKEW_SECONDS)
        self._clock = clock
        self._wait_seconds = wait_seconds
        self._component = jobs.definition.name

    async def create_job(self, key: str, description: JobScheduleDescription) -> JobStatus:
        return await self._create(
            key,
            kind="job",
            body=description,
            create=lambda name: self._jobs.create(description, name=name),
            find=self._view.status,
            new_name=new_job_name,
        )

    async def create_batch(self, key: str, description: BatchScheduleDescription) -> BatchStatus:
        return await self._create(
            key,
            kind="batch",
            body=description,
            create=lambda name: self._batches.create(description, fixed_name=name),
            find=self._batches.find,
            new_name=new_batch_name,
        )

    async def expiring(self, interval_seconds: float) -> None:
        """Remove expired claims now and then (a repeat never honours one anyway)."""

        async def expire() -> None:
            await self._keys.expire_keys(self._clock() - self._ttl)

        await forever(
            f"removing expired {HEADER} claims", expire, log=log, interval_seconds=interval_seconds
        )

    async def _create(
        self,
        key: str,
        *,
        kind: ClaimKind,
        body: BaseModel,
        create: Callable[[str], Awaitable[Result]],
        find: Callable[[str], Result | None],
        new_name: Callable[[str], str],
    ) -> Result:
        check_key(key)
        hashed, body_hashed = key_hash(self._component, key), body_hash(body, key)
        for _ in range(_ROUNDS):
            now = self._clock()
            claim = await self._keys.claim_key(
                hashed, body_hash=body_hashed, kind=kind, name=new_name(self._component), now=now
            )
            if claim.new:
                return await self._create_claimed(hashed, claim, create)
            if now - claim.created >= self._ttl:
                await self._release(hashed, claim, "expired")
                continue
            if claim.kind != kind or claim.body_hash != body_hashed:
                used_for = f"{claim.kind} {claim.name}"
                raise InvalidError(
                    f"this {HEADER} was used before with a different request body (it created "
                    f"{used_for}); send a new key with a new request"
                )
            found = find(claim.name)
            if found is not None:
                return found
            if not self._view.is_synced:
                raise NotReadyError("the scheduler has not finished reading its jobs")
            if now - claim.created > self._abandoned_after:
                await self._release(hashed, claim, "abandoned: its job or batch never appeared")
                continue
            found = await self._waiting_for(find, claim.name)
            if found is not None:
                return found
            raise ConflictError(IN_PROGRESS)
        raise ConflictError(IN_PROGRESS)

    async def _create_claimed(
        self, hashed: str, claim: Claim, create: Callable[[str], Awaitable[Result]]
    ) -> Result:
        try:
            return await create(claim.name)
        except BaseException:
            # Nothing was made: a retry with this key may try again.
            await asyncio.shield(self._release(hashed, claim, "its create failed"))
            raise

    async def _release(self, hashed: str, claim: Claim, why: str) -> None:
        try:
            await self._keys.release_key(hashed, claim.version)
        except NotFoundError:
            return  # released or taken over by someone else meanwhile
        except SchedulerError as exc:
            log.warning("could not remove a claim of an %s (%s): %s", HEADER, why, exc.message)
            return
        log.info("removed a claim of an %s for %s %s: %s", HEADER, claim.kind, claim.name, why)

    async def _waiting_for(self, find: Callable[[str], Result | None], name: str) -> Result | None:
        """The first request is still creating it: wait a little for it to appear."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        while loop.time() < deadline:
            await asyncio.sleep(IN_PROGRESS_POLL_SECONDS)
            found = find(name)
            if found is not None:
                return found
        return None
