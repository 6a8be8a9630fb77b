"""Crash safety of creation: a real `python -m scheduler` killed with SIGKILL at any step of a
create (single or batch) leaves, once a restarted scheduler has swept, the create complete or
nothing of it: no Secret, Service or anchor that outlives its job. The fake holds the chosen
request, so the kill lands exactly at that step."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from scheduler.backends.kubernetes.manifests import (
    ANNOTATION_STOPPED_AT,
    LABEL_ANCHOR,
    LABEL_BATCH_NAME,
    LABEL_PENDING,
    payload_secret_name,
)
from tests.conftest import NAMESPACE, TEST_CONFIG, wait_until
from tests.factories import JSON, free_port
from tests.fakekube import FakeKube

REPO = Path(__file__).parents[3]
SELECTOR = "radix-app=myapp,radix-component=compute,radix-job-type=job-scheduler"
CREATE_GRACE_SECONDS = 2
BATCH_JOBS = 3
BURST_JOBS = 20
READY_SECONDS = 40.0
ARRIVAL_SECONDS = 120.0
RECOVERY_SECONDS = 60.0


# -- the scheduler as a real process --------------------------------------------------------------


class SchedulerProcess:
    """One `python -m scheduler` against the fake; what it logs goes to a file, for failures."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc, self.log = proc, log
        self.url = f"http://127.0.0.1:{port}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_SECONDS
        while True:
            if self.proc.returncode is not None:
                raise AssertionError(f"the scheduler exited early:\n{self.log_tail()}")
            try:
                async with http.get(f"{self.url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass  # not listening yet
            if loop.time() > deadline:
                raise AssertionError(f"the scheduler never became ready:\n{self.log_tail()}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no cleanup, no rollback
        await self.proc.wait()


# Extra settings of the scheduler, as environment variables.
Launch = Callable[..., Awaitable[SchedulerProcess]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def launch(
    kube: FakeKube, http: aiohttp.ClientSession, tmp_path: Path
) -> AsyncIterator[Launch]:
    """Start a ready scheduler process (with extra settings as keywords); every one started is
    killed at the end."""
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
    started: list[SchedulerProcess] = []

    async def start(**settings: str) -> SchedulerProcess:
        port = free_port()
        env = {
            **os.environ,
            "RADIX_CONFIG_FILE": str(TEST_CONFIG),
            "RADIX_COMPONENT": "compute",
            "RADIX_ENVIRONMENT": "dev",
            "SCHEDULER_NAMESPACE": NAMESPACE,
            "SCHEDULER_HOST": "127.0.0.1",
            "SCHEDULER_PORT": str(port),
            "KUBECONFIG": str(kubeconfig),
            "SCHEDULER_CREATE_GRACE_SECONDS": str(CREATE_GRACE_SECONDS),
            **settings,
        }
        log = tmp_path / f"scheduler-{len(started)}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "scheduler",
                cwd=REPO,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        process = SchedulerProcess(proc, port, log)
        started.append(process)
        await process.wait_ready(http)
        return process

    yield start
    for process in started:
        if process.proc.returncode is None:
            await process.kill()


# -- what the fake holds --------------------------------------------------------------------------


def _labels(obj: JSON) -> dict[str, str]:
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels


def _is_pending(obj: JSON) -> bool:
    return _labels(obj).get(LABEL_PENDING) == "true"


def _is_held(job: JSON) -> bool:
    """Suspended, or held before its commit (parallelism 0): it runs no pod."""
    return bool(job["spec"].get("suspend")) or job["spec"].get("parallelism") == 0


def _has_run(job: JSON) -> bool:
    return bool((job.get("status") or {}).get("startTime"))


def _owner_uids(obj: JSON) -> set[str]:
    return {ref["uid"] for ref in obj["metadata"].get("ownerReferences") or ()}


@dataclass(frozen=True)
class Census:
    """This scheduler's objects in the fake at one moment."""

    jobs: list[JSON]
    secrets: list[JSON]
    services: list[JSON]
    batches: list[JSON]  # their ConfigMaps
    anchors: list[JSON]  # single jobs' ConfigMaps, owning their Secrets and Services

    @classmethod
    def of(cls, kube: FakeKube) -> Census:
        def listed(kind: str, selector: str = SELECTOR) -> list[JSON]:
            return kube.list(kind, NAMESPACE, selector)

        batches = listed("ConfigMap", f"{SELECTOR},{LABEL_BATCH_NAME}")
        anchors = listed("ConfigMap", f"{SELECTOR},{LABEL_ANCHOR}")
        return cls(listed("Job"), listed("Secret"), listed("Service"), batches, anchors)

    def counts(self) -> tuple[int, int, int]:
        return len(self.jobs), len(self.secrets), len(self.services)

    def started(self) -> list[JSON]:
        return [job for job in self.jobs if not _is_held(job)]

    def incomplete(self) -> list[str]:
        """Whatever a user could trip over: half-made or leftover objects."""
        found = []
        secrets = {secret["metadata"]["name"] for secret in self.secrets}
        services = {service["metadata"]["name"] for service in self.services}
        job_uids = {job["metadata"]["uid"] for job in self.jobs}
        for job in self.jobs:
            name = job["metadata"]["name"]
            stopped = ANNOTATION_STOPPED_AT in (job["metadata"].get("annotations") or {})
            if _is_pending(job):
                found.append(f"job {name} is pending")
            if _is_held(job) and not stopped:
                found.append(f"job {name} is held or suspended but was never stopped")
            pod = job["spec"]["template"]["spec"]
            has_payload = any("secret" in volume for volume in pod.get("volumes") or ())
            if has_payload and payload_secret_name(name) not in secrets:
                found.append(f"job {name} has no payload secret")
            # A large payload's parts: every one there.
            found += [
                f"job {name} has no payload part {source['secret']['name']}"
                for volume in pod.get("volumes") or ()
                for source in (volume.get("projected") or {}).get("sources") or ()
                if source["secret"]["name"] not in secrets
            ]
            if pod["containers"][0].get("ports") and name not in services:
                found.append(f"job {name} has no service")
        # Each Secret and Service hangs from a live Job through its anchor, or from its batch.
        anchor_uids = set()
        for anchor in self.anchors:
            if _owner_uids(anchor) & job_uids:
                anchor_uids.add(anchor["metadata"]["uid"])
            else:
                found.append(f"anchor {anchor['metadata']['name']} outlives its job")
        batch_uids = {record["metadata"]["uid"] for record in self.batches}
        for owned in [*self.secrets, *self.services]:
            if not _owner_uids(owned) & (anchor_uids | batch_uids):
                found.append(f"{owned['kind']} {owned['metadata']['name']} outlives its job")
        found += [
            f"batch {record['metadata']['name']} is pending"
            for record in self.batches
            if _is_pending(record)
        ]
        return found

    def remains(self) -> list[str]:
        everything = [*self.jobs, *self.secrets, *self.services, *self.batches, *self.anchors]
        return [f"{obj['kind']} {obj['metadata']['name']} remains" for obj in everything]

    def single_job_runs(self) -> list[str]:
        if len(self.jobs) != 1:
            return [f"{len(self.jobs)} jobs instead of the one created"]
        return [] if _has_run(self.jobs[0]) else ["the job has not run"]

    def whole_batch_runs(self) -> list[str]:
        if len(self.batches) != 1:
            return [f"{len(self.batches)} batches instead of the one created"]
        batch = self.batches[0]["metadata"]["name"]
        members = [job for job in self.jobs if _labels(job).get(LABEL_BATCH_NAME) == batch]
        if len(members) != BATCH_JOBS:
            return [f"batch {batch} has {len(members)} of its {BATCH_JOBS} jobs"]
        return [f"job {j['metadata']['name']} has not run" for j in members if not _has_run(j)]


async def settle(kube: FakeKube, unmet: Callable[[Census], list[str]], what: str) -> Census:
    """Poll the fake until `unmet` finds nothing; fail with what is still unmet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY_SECONDS
    while True:
        census = Census.of(kube)
        problems = unmet(census)
        if not problems:
            return census
        if loop.time() > deadline:
            raise AssertionError(f"{what} within {RECOVERY_SECONDS:.0f}s: {problems}")
        await asyncio.sleep(0.05)


# -- a kill at each step --------------------------------------------------------------------------


def _anything(census: Census) -> bool:
    return True


@dataclass(frozen=True)
class Step:
    id: str
    batch: bool
    # The request the fake holds when the scheduler is killed.
    method: str
    path: str
    # What else of the create has landed at the moment of the kill.
    at_kill: Callable[[Census], bool]
    # The held request, released after the kill, has landed; None: it is lost (never arrives).
    landed: Callable[[Census], bool] | None
    # After recovery the create is complete (it was committed), else nothing of it is left.
    committed: bool


STEPS = [
    # A single job: the Job (pending, held), then its anchor, then its Secret and Service
    # together (owned by the anchor), then the commit.
    Step(
        "job-post",
        False,
        "POST",
        r"/jobs$",
        at_kill=_anything,
        landed=lambda c: len(c.jobs) == 1,
        committed=False,
    ),
    Step(
        "job-anchor-post",
        False,
        "POST",
        r"/configmaps$",
        at_kill=lambda c: len(c.jobs) == 1,
        landed=lambda c: len(c.anchors) == 1,
        committed=False,
    ),
    Step(
        "job-secret-post",
        False,
        "POST",
        r"/secrets$",
        at_kill=lambda c: len(c.services) == 1,
        landed=lambda c: len(c.secrets) == 1,
        committed=False,
    ),
    Step(
        "job-service-post",
        False,
        "POST",
        r"/services$",
        at_kill=lambda c: len(c.secrets) == 1,
        landed=lambda c: len(c.services) == 1,
        committed=False,
    ),
    Step(
        # The commit reaches the API server after its sender died: the job is complete.
        "job-commit-patch",
        False,
        "PATCH",
        r"/jobs/[^/]+$",
        at_kill=_anything,
        landed=lambda c: not any(map(_is_pending, c.jobs)),
        committed=True,
    ),
    # A batch of three: its ConfigMap, then its Jobs, Secrets and Services together (all owned
    # by the ConfigMap), then the ConfigMap's commit, then each Job's start.
    Step(
        "batch-job-post",  # one Job on its way while the rest is made
        True,
        "POST",
        r"/jobs$",
        at_kill=lambda c: c.counts() == (2, 3, 3),
        landed=lambda c: len(c.jobs) == 3,
        committed=False,
    ),
    Step(
        "batch-secret-post",
        True,
        "POST",
        r"/secrets$",
        at_kill=lambda c: c.counts() == (3, 2, 3),
        landed=lambda c: len(c.secrets) == 3,
        committed=False,
    ),
    Step(
        "batch-service-post",
        True,
        "POST",
        r"/services$",
        at_kill=lambda c: c.counts() == (3, 3, 2),
        landed=lambda c: len(c.services) == 3,
        committed=False,
    ),
    Step(
        # The commit lands after the crash: the restarted scheduler starts the batch's jobs.
        "batch-commit-patch",
        True,
        "PATCH",
        r"/configmaps/[^/]+$",
        at_kill=_anything,
        landed=lambda c: not any(map(_is_pending, c.batches)),
        committed=True,
    ),
    Step(
        # The first start is lost (released, it would just land): the restarted scheduler
        # starts that job of the committed batch.
        "batch-job-start-patch",
        True,
        "PATCH",
        r"/jobs/[^/]+$",
        at_kill=lambda c: len(c.started()) >= 2,
        landed=None,
        committed=True,
    ),
]


def _request(step: Step) -> tuple[str, JSON]:
    if step.batch:
        jobs = [{"payload": f"payload {i}"} for i in range(BATCH_JOBS)]
        return "/api/v1/batches", {"jobScheduleDescriptions": jobs}
    return "/api/v1/jobs", {"payload": "payload"}


async def _wait_for(kube: FakeKube, condition: Callable[[Census], bool], what: str) -> None:
    await settle(kube, lambda census: [] if condition(census) else [what], what)


async def _post(http: aiohttp.ClientSession, url: str, body: JSON) -> JSON:
    async with http.post(url, data=json.dumps(body)) as response:
        assert response.status == 200, await response.text()
        result: JSON = await response.json()
        return result


@pytest.mark.timeout(240)
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.id)
async def test_a_kill_at_any_step_of_a_create_leaves_it_complete_or_gone(
    step: Step, kube: FakeKube, launch: Launch, http: aiohttp.ClientSession
) -> None:
    first = await launch()
    hold = kube.faults.hold(step.method, step.path)
    path, body = _request(step)
    posting = asyncio.create_task(_post(http, first.url + path, body))
    await hold.wait_arrived(ARRIVAL_SECONDS)
    await _wait_for(kube, step.at_kill, f"the state at the kill of step {step.id}")

    await first.kill()
    with pytest.raises(aiohttp.ClientError):
        await posting  # the client never got an answer
    if step.landed is None:
        hold.drop()
    else:
        hold.release()  # the request goes on to the API server, though its sender is dead
        await _wait_for(kube, step.landed, "the held request landing after the kill")

    second = await launch()

    def unmet(census: Census) -> list[str]:
        if step.committed:
            done = census.whole_batch_runs() if step.batch else census.single_job_runs()
        else:
            done = census.remains()
        return census.incomplete() + done

    what = "a complete create" if step.committed else "nothing left of the create"
    try:
        census = await settle(kube, unmet, what)
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nthe restarted scheduler logged:\n{second.log_tail()}"
        ) from None
    if step.committed:
        # The restarted scheduler shows what was committed, whole.
        if step.batch:
            url = f"{second.url}/api/v1/batches/{census.batches[0]['metadata']['name']}"
        else:
            url = f"{second.url}/api/v1/jobs/{census.jobs[0]['metadata']['name']}"

        async def shown() -> bool:
            async with http.get(url) as response:
                if response.status == 404:
                    return False  # not yet seen by its watch
                assert response.status == 200, await response.text()
                status = await response.json()
                return not step.batch or len(status["jobStatuses"]) == BATCH_JOBS

        await wait_until(shown, RECOVERY_SECONDS)


@pytest.mark.timeout(240)
async def test_a_burst_of_creates_killed_midway_leaves_every_job_with_its_secret(
    kube: FakeKube, launch: Launch, http: aiohttp.ClientSession
) -> None:
    first = await launch()
    # Secrets are slow to create, and those in flight at the kill never arrive: the window in
    # which a crash used to leave Jobs without their Secret.
    slow = kube.faults.delay("POST", r"/secrets$", seconds=0.5, times=None)
    posts = [
        asyncio.create_task(_post(http, f"{first.url}/api/v1/jobs", {"payload": f"p{i}"}))
        for i in range(BURST_JOBS)
    ]
    await slow.wait_arrived(ARRIVAL_SECONDS, count=BURST_JOBS // 2)
    await first.kill()
    slow.drop()
    kube.faults.clear()
    results = await asyncio.gather(*posts, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, aiohttp.ClientError):
            raise result
    acknowledged = {result["name"] for result in results if isinstance(result, dict)}
    assert len(acknowledged) < BURST_JOBS, "the kill came after the burst had finished"
    assert kube.list("Job", NAMESPACE, SELECTOR), "the kill came before any job was created"
    second = await launch()

    def unmet(census: Census) -> list[str]:
        names = {job["metadata"]["name"] for job in census.jobs}
        lost = [f"job {name} was acknowledged and is gone" for name in acknowledged - names]
        return census.incomplete() + lost

    try:
        await settle(kube, unmet, "every job complete")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\nthe restarted scheduler logged:\n{second.log_tail()}"
        ) from None
