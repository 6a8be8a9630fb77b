"""What the scheduler replaces: its API calls made directly with a plain asyncio HTTP client.

`RawKube` is an `aiohttp.ClientSession` toward the API server of a `kubernetes.aio`
Configuration (host, bearer token, CA, client certificate, `verify_ssl`), so it works against
the fake API server and against a real cluster. It sends the scheduler's own bodies
(`scheduler.backends.kubernetes.manifests`) as JSON, with no client models, and reads JSON.
It also lists and deletes what the benchmark created.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from kubernetes.aio import client as k8s

from scheduler.backends.base import BatchRequest, Identity, JobRequest
from scheduler.backends.kubernetes.client import CONNECTION_POOL_SIZE, MERGE_PATCH
from scheduler.backends.kubernetes.creating import GRACE_PER_BATCH_JOB_SECONDS
from scheduler.backends.kubernetes.manifests import (
    build_anchor,
    build_batch_record,
    build_job,
    build_payload_secret,
    build_service,
    commit_patch,
    configmap_owner,
    job_owner,
)
from scheduler.domain.jobs import build_request
from scheduler.models import JobScheduleDescription
from scheduler.radixconfig import JobDefinition
from scheduler.settings import DEFAULT_CREATE_GRACE_SECONDS

REQUEST_TIMEOUT_SECONDS = 30.0
CLEANUP_TIMEOUT_SECONDS = 300.0
# What one job's creation is made of: the triple, or the scheduler's own calls.
Calls = Literal["triple", "crash-safe"]
# Every object of the raw creates carries this label: the clean-up deletes by it.
BENCH_LABEL, BENCH_VALUE = "job-scheduler-bench", "raw"
BENCH_SELECTOR = f"{BENCH_LABEL}={BENCH_VALUE}"
# Collections the clean-up empties, in this order (a Job's deletion takes its pods along).
CLEANUP_PATHS = (
    ("jobs", "/apis/batch/v1/namespaces/{ns}/jobs"),
    ("secrets", "/api/v1/namespaces/{ns}/secrets"),
    ("services", "/api/v1/namespaces/{ns}/services"),
    ("configmaps", "/api/v1/namespaces/{ns}/configmaps"),
    ("pods", "/api/v1/namespaces/{ns}/pods"),
)


class RawError(Exception):
    """A raw call failed: an error answer or no answer."""


def _jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


def ssl_context(configuration: k8s.Configuration) -> ssl.SSLContext | None:
    """The TLS settings the `kubernetes` client would use (None for plain HTTP)."""
    if not str(configuration.host).startswith("https"):
        return None
    context = ssl.create_default_context(
        cafile=configuration.ssl_ca_cert, cadata=getattr(configuration, "ca_cert_data", None)
    )
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def auth_headers(configuration: k8s.Configuration) -> dict[str, str]:
    """`Authorization` from the configuration's `api_key` and `api_key_prefix` (a token the
    client refreshes, such as an exec plugin's, is refreshed by this call)."""
    settings = await configuration.auth_settings()
    bearer = settings.get("BearerToken")
    if bearer and bearer.get("value"):
        return {"Authorization": str(bearer["value"])}
    return {}


class RawKube:
    def __init__(
        self, configuration: k8s.Configuration, definition: JobDefinition, identity: Identity
    ) -> None:
        self._configuration = configuration
        self._definition = definition
        self._identity = identity  # the raw namespace's: the scheduler does not see its objects
        self._server_hostname = getattr(configuration, "tls_server_name", None)
        self._session: aiohttp.ClientSession | None = None

    @property
    def host(self) -> str:
        return str(self._configuration.host)

    async def __aenter__(self) -> RawKube:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        headers.update(await auth_headers(self._configuration))
        self._session = aiohttp.ClientSession(
            self.host.rstrip("/"),
            headers=headers,
            connector=aiohttp.TCPConnector(
                limit=CONNECTION_POOL_SIZE, ssl=ssl_context(self._configuration) or False
            ),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str | None = None,
        timeout_seconds: float | None = None,
    ) -> tuple[int, bytes]:
        assert self._session is not None, "RawKube is entered"
        data = None if body is None else json.dumps(body)
        extra: dict[str, Any] = {}
        if timeout_seconds is not None:
            extra["timeout"] = aiohttp.ClientTimeout(total=timeout_seconds)
        if self._server_hostname:
            extra["server_hostname"] = self._server_hostname
        if content_type is not None:
            extra["headers"] = {"Content-Type": content_type}
        try:
            async with self._session.request(method, path, data=data, **extra) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RawError(f"{method} {path}: no answer: {exc!r}") from exc

    async def _json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        status, answer = await self._call(method, path, body, content_type)
        if status >= 300:
            raise RawError(f"{method} {path}: {status} {answer[:300]!r}")
        result: dict[str, Any] = json.loads(answer)
        return result

    # -- what the scheduler's calls cost ------------------------------------------------------

    async def create_triple(self, name: str, payload: str) -> None:
        """What one `POST /api/v1/jobs` asks of the API server: the Job, then its payload
        Secret, then its Service, one after the other (owned by the Job)."""
        request = build_request(self._definition, JobScheduleDescription(payload=payload), name)
        namespace = self._identity.namespace
        created = await self._json("POST", _jobs_path(namespace), self._job(request, None))
        secret, service = self._owned(request, job_owner(name, created["metadata"]["uid"]))
        await self._json("POST", f"/api/v1/namespaces/{namespace}/secrets", secret)
        await self._json("POST", f"/api/v1/namespaces/{namespace}/services", service)

    async def create_crash_safe(self, name: str, payload: str) -> None:
        """The calls a `POST /api/v1/jobs` makes, in its order: the Job, held and pending; its
        anchor (a ConfigMap the Job owns); its Secret and Service together, owned by the anchor;
        the patch that commits the Job and lets it start."""
        request = build_request(self._definition, JobScheduleDescription(payload=payload), name)
        namespace = self._identity.namespace
        deadline = datetime.now(UTC) + timedelta(seconds=DEFAULT_CREATE_GRACE_SECONDS)
        created = await self._json("POST", _jobs_path(namespace), self._job(request, deadline))
        anchor = await self._json(
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            _labelled(build_anchor(self._identity, request, created["metadata"]["uid"])),
        )
        owner = configmap_owner(anchor["metadata"]["name"], anchor["metadata"]["uid"])
        secret, service = self._owned(request, owner)
        await asyncio.gather(
            self._json("POST", f"/api/v1/namespaces/{namespace}/secrets", secret),
            self._json("POST", f"/api/v1/namespaces/{namespace}/services", service),
        )
        await self._json(
            "PATCH", f"{_jobs_path(namespace)}/{name}", commit_patch(), content_type=MERGE_PATCH
        )

    async def create_batch(self, name: str, count: int, payload: str) -> Burst:
        """The calls a `POST /api/v1/batches` of `count` jobs makes, in its order and as many at
        once (`Creator.create_batch`: all the jobs' calls at once, the pool of
        CONNECTION_POOL_SIZE connections the bound): the batch's record, a pending ConfigMap;
        each job's Job (held, pending) with its Secret and Service, all owned by the record; the
        patch that commits the record; one patch per Job that starts it. A job is an error when
        any of its calls fails (the record's or its commit's failure fails them all)."""
        names = [f"{name}-{index:05d}" for index in range(count)]
        description = JobScheduleDescription(payload=payload)
        requests = [
            build_request(self._definition, description, job, batch_name=name, batch_index=index)
            for index, job in enumerate(names)
        ]
        batch = Burst(count, CONNECTION_POOL_SIZE)
        start = time.perf_counter()
        try:
            await self._batch_calls(BatchRequest(name, None, tuple(requests)), batch)
        except (RawError, KeyError, ValueError) as exc:
            batch.errors, batch.samples = 0, []
            for _ in range(count):
                batch.failed(str(exc))
        batch.seconds = time.perf_counter() - start
        return batch

    async def _batch_calls(self, batch: BatchRequest, burst: Burst) -> None:
        namespace = self._identity.namespace
        deadline = datetime.now(UTC) + timedelta(
            seconds=DEFAULT_CREATE_GRACE_SECONDS + GRACE_PER_BATCH_JOB_SECONDS * len(batch.jobs)
        )
        record = await self._json(
            "POST",
            f"/api/v1/namespaces/{namespace}/configmaps",
            _labelled(build_batch_record(self._identity, batch, deadline)),
        )
        owner = configmap_owner(batch.name, record["metadata"]["uid"])

        async def create(request: JobRequest) -> None:
            secret, service = self._owned(request, owner)
            await asyncio.gather(
                self._json("POST", _jobs_path(namespace), self._job(request, deadline, owner)),
                self._json("POST", f"/api/v1/namespaces/{namespace}/secrets", secret),
                self._json("POST", f"/api/v1/namespaces/{namespace}/services", service),
            )

        created = await asyncio.gather(
            *(create(request) for request in batch.jobs), return_exceptions=True
        )
        await self._json(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/{batch.name}",
            commit_patch(start=False),
            content_type=MERGE_PATCH,
        )
        start = commit_patch()
        started = await asyncio.gather(
            *(
                self._json("PATCH", f"{_jobs_path(namespace)}/{job.name}", start, MERGE_PATCH)
                for job, failure in zip(batch.jobs, created, strict=True)
                if failure is None
            ),
            return_exceptions=True,
        )
        for failure in [*created, *started]:
            if isinstance(failure, BaseException):
                burst.failed(str(failure))

    def _job(
        self, request: JobRequest, deadline: datetime | None, owner: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        job = _labelled(build_job(self._identity, request, deadline=deadline, owner=owner))
        job["spec"]["template"]["metadata"]["labels"][BENCH_LABEL] = BENCH_VALUE
        return job

    def _owned(
        self, request: JobRequest, owner: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        secret = build_payload_secret(self._identity, request, owner)
        service = build_service(self._identity, request, owner)
        assert secret is not None and service is not None, "the bench job has payload and ports"
        return _labelled(secret), _labelled(service)

    async def list_jobs(self, namespace: str, selector: str) -> int:
        """A raw LIST of the Jobs a `GET /api/v1/jobs` shows: their JSON, parsed."""
        answer = await self._json("GET", f"{_jobs_path(namespace)}?labelSelector={quote(selector)}")
        return len(answer.get("items") or [])

    async def burst(
        self, count: int, concurrency: int, prefix: str, payload: str, calls: Calls = "triple"
    ) -> Burst:
        """`count` jobs' creates (triples, or the scheduler's crash-safe calls), at most
        `concurrency` at once."""
        gate = asyncio.Semaphore(concurrency)
        burst = Burst(count, concurrency)
        create = self.create_triple if calls == "triple" else self.create_crash_safe

        async def one(index: int) -> None:
            async with gate:
                try:
                    await create(f"{prefix}-{index:05d}", payload)
                except (RawError, KeyError, ValueError) as exc:
                    burst.failed(str(exc))

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        burst.seconds = time.perf_counter() - start
        return burst

    # -- before and after ---------------------------------------------------------------------

    async def count(self, namespace: str, selector: str) -> dict[str, int]:
        """How many objects of each kind the clean-up would delete."""
        counts = {}
        for kind, path in CLEANUP_PATHS:
            answer = await self._json(
                "GET", f"{path.format(ns=namespace)}?labelSelector={quote(selector)}"
            )
            counts[kind] = len(answer.get("items") or [])
        return counts

    async def delete_all(self, namespace: str, selector: str) -> dict[str, int]:
        """Delete every object of the clean-up's kinds that `selector` selects in `namespace`;
        how many of each were deleted."""
        deleted = {}
        async with asyncio.timeout(CLEANUP_TIMEOUT_SECONDS):
            for kind, path in CLEANUP_PATHS:
                deleted[kind] = await self._delete_collection(
                    path.format(ns=namespace), quote(selector)
                )
        return deleted

    async def _delete_collection(self, path: str, selector: str) -> int:
        query = f"labelSelector={selector}&propagationPolicy=Background"
        # Deleting thousands of objects at once may take the fake API server minutes (its garbage
        # collector shares its one thread), all the more once the attempt records' copies are in.
        status, answer = await self._call(
            "DELETE", f"{path}?{query}", timeout_seconds=CLEANUP_TIMEOUT_SECONDS
        )
        if status < 300:
            return len(json.loads(answer).get("items") or [])
        if status not in (403, 404, 405):
            raise RawError(f"DELETE {path}: {status} {answer[:300]!r}")
        # No deletecollection for this kind on this server, or not for this user: one by one.
        listed = await self._json("GET", f"{path}?labelSelector={selector}")
        names = [item["metadata"]["name"] for item in listed.get("items") or []]
        for name in names:
            status, answer = await self._call(
                "DELETE", f"{path}/{name}?propagationPolicy=Background"
            )
            if status >= 300 and status != 404:
                raise RawError(f"DELETE {path}/{name}: {status} {answer[:300]!r}")
        return len(names)


class Burst:
    """Many creates at once: how long they took and which failed."""

    def __init__(self, requests: int, concurrency: int) -> None:
        self.requests, self.concurrency = requests, concurrency
        self.seconds = 0.0
        self.errors = 0
        self.samples: list[str] = []  # the first few errors
        # CPU seconds each process measured spent during the burst, by name.
        self.cpu_seconds: dict[str, float] = {}

    def failed(self, message: str) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(message[:300])

    @property
    def rate(self) -> float:
        """Created jobs per second."""
        return (self.requests - self.errors) / self.seconds if self.seconds else 0.0

    def cpu_ms_per_job(self) -> dict[str, float]:
        return {name: 1000 * spent / self.requests for name, spent in self.cpu_seconds.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "errors": self.errors,
            "jobs_per_second": self.rate,
            "error_samples": self.samples,
            "cpu_ms_per_job": self.cpu_ms_per_job(),
        }


def _labelled(body: dict[str, Any]) -> dict[str, Any]:
    body["metadata"].setdefault("labels", {})[BENCH_LABEL] = BENCH_VALUE
    return body
