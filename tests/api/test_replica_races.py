"""Races between replicas (issue 19, point 5): two schedulers on one fake API server get stop,
restart and delete of the same job at the same moment, for many jobs at once, with the API
server's answers delayed at random to widen the windows between each request's reads and writes.
Each time one outcome results: no 5xx, no duplicate attempt, no job both stopped and running,
both replicas show the same job, and a deleted job leaves nothing behind.

What a loser answers, beyond "409 or the same answer as the winner":
- a delete that loses to a delete answers 200 too: the job is gone, as it asked;
- a stop or restart that loses to a delete answers 404, as every request after it does: the
  job it names is gone, and a 409 would tell the client to try again;
- a request whose replica had already seen the winner's outcome is no loser but comes after it,
  and gets the answer it would get alone: 400 for a stop of an ended job or a restart of a job
  that runs again, 404 for a job that is gone.
On the local backend two schedulers cannot share a state dir, so the race there is between
concurrent requests to one scheduler.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from scheduler.backends.kubernetes.manifests import anchor_name, payload_secret_name
from scheduler.backends.kubernetes.restarting import record_name
from tests.backends.kubernetes.test_crash_safety import Census
from tests.conftest import NAMESPACE, ClientFactory, post_job, wait_for_status, wait_until
from tests.factories import JSON, Client
from tests.fakekube import FakeKube

Answer = tuple[int, str]
# 6 pairs of 17 jobs: the hundred races, each pair's jobs raced all at once.
JOBS_PER_PAIR = 17
LOCAL_JOBS_PER_PAIR = 6
TIMEOUT_SECONDS = 30.0
# No job of the race is pruned from the history while it is judged.
SETTINGS = {"RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT": "1000"}
# The widest a random delay of one API call or of the second request's start gets.
MAX_DELAY_SECONDS = 0.08
RUNNING = "sleep 600"  # 30 s on the fake's clock: runs through the race
ENDED = "sleep 20; exit 0"  # 1 s: ended before the race, and its rerun runs through it
ENDED_STATUSES = ("Succeeded", "Failed", "Stopped")


@dataclass(frozen=True)
class Pair:
    first: str
    second: str
    script: str  # a job of the state both may act on
    # How much later the one may come than the other, at most: a stop only races a restart
    # once its replica shows the job run again.
    spread_seconds: float = MAX_DELAY_SECONDS

    @property
    def id(self) -> str:
        return f"{self.first}+{self.second}"


PAIRS = [
    Pair("stop", "stop", RUNNING),
    Pair("stop", "restart", ENDED, spread_seconds=0.5),
    Pair("stop", "delete", RUNNING),
    Pair("restart", "restart", ENDED),
    Pair("restart", "delete", ENDED),
    Pair("delete", "delete", ENDED),
]


async def act(client: Client, op: str, name: str) -> Answer:
    if op == "delete":
        response = await client.delete(f"/api/v1/jobs/{name}")
    else:
        response = await client.post(f"/api/v1/jobs/{name}/{op}")
    body = await response.json()
    assert body["code"] == response.status, body
    if response.status >= 400:
        assert body["reason"] == {400: "BadRequest", 404: "NotFound", 409: "Conflict"}.get(
            response.status
        ), body
    return response.status, body["message"]


def expected_answers(op: str, name: str) -> dict[Answer, str]:
    """Every answer `op` may give in a race, and what it means."""
    if op == "stop":
        return {
            (200, f"job {name} was successfully stopped"): "stopped",
            (404, f"job {name} not found"): "came after a delete",
            **{
                (400, f"cannot stop the job {name} with the status {status}"): "came too late"
                for status in ENDED_STATUSES
            },
        }
    if op == "restart":
        return {
            (200, f"job {name} was successfully restarted"): "restarted",
            (409, f"a restart of job {name} is already under way"): "lost to a restart",
            (409, f"job {name} was restarted meanwhile"): "lost to a restart",
            (404, f"job {name} not found"): "came after a delete",
            **{
                (400, f"cannot restart the job {name} with the status {status}"): "came too late"
                for status in ("Waiting", "Active", "Running", "Stopping")
            },
        }
    return {
        (200, f"job {name} successfully deleted"): "deleted",
        (409, f"a restart of job {name} is under way"): "lost to a restart",
        (409, f"job {name} was restarted meanwhile"): "lost to a restart",
        (404, f"job {name} not found"): "came after a delete",
    }


@dataclass
class Round:
    name: str
    pair: Pair
    answers: list[Answer] = field(default_factory=list)

    def meanings(self) -> list[str]:
        """What each answer means; an answer nobody expects fails here, with the round."""
        found = []
        for op, answer in zip((self.pair.first, self.pair.second), self.answers, strict=True):
            allowed = expected_answers(op, self.name)
            assert answer in allowed, f"{self.pair.id} on {self.name}: {op} answered {answer}"
            found.append(allowed[answer])
        return found

    def answered(self, op: str) -> list[int]:
        ops = (self.pair.first, self.pair.second)
        return [code for o, (code, _) in zip(ops, self.answers, strict=True) if o == op]


async def race(
    rng: random.Random,
    spread_seconds: float,
    first: Callable[[], Awaitable[Answer]],
    second: Callable[[], Awaitable[Answer]],
) -> list[Answer]:
    """Both at once, the one or the other a random moment later."""
    delays = [0.0, rng.uniform(0, spread_seconds)]
    rng.shuffle(delays)

    async def after(seconds: float, call: Callable[[], Awaitable[Answer]]) -> Answer:
        await asyncio.sleep(seconds)
        return await call()

    answers = await asyncio.gather(after(delays[0], first), after(delays[1], second))
    return list(answers)


async def shown(client: Client, name: str) -> tuple[int, JSON | None]:
    response = await client.get(f"/api/v1/jobs/{name}")
    return response.status, (await response.json()) if response.status == 200 else None


def is_settled(job: JSON | None) -> bool:
    """Gone, or ended with every attempt ended: nothing is left moving."""
    if job is None:
        return True
    pods = job["podStatuses"]
    live = any(pod["replicaStatus"]["status"] in ("Pending", "Running") for pod in pods)
    return job["status"] in ENDED_STATUSES and not live


def check_outcome(one: Round, final: JSON | None) -> None:
    """The one outcome the answers promise, as a user sees it."""
    meanings = one.meanings()
    where = f"{one.pair.id} on {one.name}: {one.answers} ended as {final and final['status']}"
    if "came after a delete" in meanings:
        # Never a 404 for a job that is there, or was not deleted.
        assert "deleted" in meanings, where
    if "deleted" in meanings:
        assert final is None, where
        return
    assert final is not None, where
    # No job both stopped and running: settled means no live attempt is left.
    assert is_settled(final), where
    attempts = len(final["podStatuses"])
    restarted = meanings.count("restarted")
    assert restarted <= 1, where  # never two restarts of one ended run
    if restarted:
        assert final.get("restart") is not None, where
        if "stopped" in meanings:
            # A stop of the rerun: stopped before or after its pod came, or too late to matter.
            assert final["status"] in ("Stopped", "Succeeded") and attempts in (1, 2), where
        else:
            # Exactly one new attempt: no duplicate.
            assert (final["status"], attempts) == ("Succeeded", 2), where
    elif "stopped" in meanings:
        # Its one attempt, or none where the stop's pod deletion took it (Kubernetes).
        assert (final["status"], final.get("restart")) == ("Stopped", None), where
        assert attempts <= 1, where
    else:
        raise AssertionError(f"no request took effect: {where}")


# -- on Kubernetes: two replicas ------------------------------------------------------------------


def remains(kube: FakeKube, name: str) -> list[str]:
    """What is left in the cluster of job `name`."""
    found = [
        f"{kind} {owned}"
        for kind, owned in (
            ("Job", name),
            ("Secret", payload_secret_name(name)),
            ("Service", name),
            ("ConfigMap", anchor_name(name)),
            ("ConfigMap", record_name(name)),
        )
        if kube.get(kind, NAMESPACE, owned) is not None
    ]
    found += [f"Pod {pod['metadata']['name']}" for pod in pods_of(kube, name)]
    return found


def pods_of(kube: FakeKube, name: str) -> list[JSON]:
    return list(kube.list("Pod", NAMESPACE, f"job-name={name}"))


def check_cluster(kube: FakeKube, name: str, final: JSON | None) -> None:
    if final is None:
        assert remains(kube, name) == [], name
        return
    job = kube.get("Job", NAMESPACE, name)
    assert job is not None, name
    uid = job["metadata"]["uid"]
    # The anchor (with the payload and the Service) belongs to the one Job of that name.
    anchor = kube.get("ConfigMap", NAMESPACE, anchor_name(name))
    assert anchor is not None, name
    assert [ref["uid"] for ref in anchor["metadata"]["ownerReferences"]] == [uid], name
    assert kube.get("ConfigMap", NAMESPACE, record_name(name)) is None, name
    owners = {
        ref["uid"] for pod in pods_of(kube, name) for ref in pod["metadata"]["ownerReferences"]
    }
    assert owners <= {uid}, f"{name}: pods of an old Job remain"
    if final["status"] == "Stopped":
        assert job["spec"]["suspend"] is True, name


async def unsettled(kube: FakeKube, a: Client, b: Client, rounds: list[Round]) -> str:
    """Why the race has not settled: each round the replicas disagree on or that still moves,
    and what the cluster holds that a user could trip over."""
    found = []
    for one in rounds:
        seen = [await shown(client, one.name) for client in (a, b)]
        if seen[0] != seen[1] or not is_settled(seen[0][1]):
            shows = [
                code if job is None else (job["status"], len(job["podStatuses"]))
                for code, job in seen
            ]
            found.append(f"{one.name} {one.answers}: a shows {shows[0]}, b {shows[1]}")
    found += Census.of(kube).incomplete()
    found += [
        f"record {record['metadata']['name']}"
        for record in kube.list("ConfigMap", NAMESPACE)
        if record["metadata"]["name"].startswith("restart-")
    ]
    return "\n".join(found)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair.id)
async def test_two_replicas_racing_on_one_job_agree_on_one_outcome(
    pair: Pair, kube: FakeKube, scheduler_factory: ClientFactory
) -> None:
    rng = random.Random(pair.id)
    a, b = await scheduler_factory(**SETTINGS), await scheduler_factory(**SETTINGS)
    names = [
        (await post_job(a, {"payload": "p", "command": ["sh", "-c", pair.script]}))["name"]
        for _ in range(JOBS_PER_PAIR)
    ]
    ready = "Running" if pair.script == RUNNING else "Succeeded"
    for name in names:
        for client in (a, b):
            await wait_for_status(client, name, ready, TIMEOUT_SECONDS)
    # Random delays on the job's own calls (its Job's reads, patches and deletes, its restart
    # record's) and on some creates of restart records and Jobs.
    for name in names:
        for method in ("GET", "PATCH", "DELETE"):
            for path in (rf"/jobs/{name}$", rf"/configmaps/{record_name(name)}$"):
                if rng.random() < 0.5:
                    seconds = rng.uniform(0, MAX_DELAY_SECONDS)
                    kube.faults.delay(method, path, seconds, rng.randint(1, 3))
    for path in (r"/configmaps$", r"/jobs$"):
        kube.faults.delay("POST", path, rng.uniform(0, MAX_DELAY_SECONDS), JOBS_PER_PAIR // 2)

    rounds = [Round(name, pair) for name in names]

    async def run(one: Round) -> None:
        one.answers = await race(
            rng,
            pair.spread_seconds,
            lambda: act(a, pair.first, one.name),
            lambda: act(b, pair.second, one.name),
        )

    await asyncio.gather(*(run(one) for one in rounds))
    kube.faults.clear()
    assert all(code < 500 for one in rounds for code, _ in one.answers), [
        one.answers for one in rounds
    ]

    most_live_pods: dict[str, int] = {}

    async def settled() -> bool:
        for name in names:
            live = [
                p for p in pods_of(kube, name) if p["status"].get("phase") in ("Pending", "Running")
            ]
            most_live_pods[name] = max(most_live_pods.get(name, 0), len(live))
        for one in rounds:
            seen = [await shown(client, one.name) for client in (a, b)]
            if seen[0] != seen[1] or not is_settled(seen[0][1]):
                return False
        return not Census.of(kube).incomplete() and not any(
            record["metadata"]["name"].startswith("restart-")
            for record in kube.list("ConfigMap", NAMESPACE)
        )

    try:
        await wait_until(settled, TIMEOUT_SECONDS)
    except AssertionError:
        raise AssertionError(await unsettled(kube, a, b, rounds)) from None
    for one in rounds:
        _, final = await shown(a, one.name)
        check_outcome(one, final)
        check_cluster(kube, one.name, final)
        assert most_live_pods.get(one.name, 0) <= 1, f"{one.name}: two attempts ran at once"


# -- on the local backend: concurrent requests to one scheduler -----------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair.id)
async def test_concurrent_requests_on_one_local_job_agree_on_one_outcome(
    pair: Pair, local_scheduler_factory: ClientFactory
) -> None:
    if sys.platform != "linux":
        pytest.skip("the local backend's tests read processes from /proc")
    rng = random.Random(pair.id)
    client = await local_scheduler_factory(
        **SETTINGS, SCHEDULER_MAX_PARALLEL=str(LOCAL_JOBS_PER_PAIR)
    )
    names = [
        (await post_job(client, {"payload": "p", "command": ["sh", "-c", pair.script]}))["name"]
        for _ in range(LOCAL_JOBS_PER_PAIR)
    ]
    ready = "Running" if pair.script == RUNNING else "Succeeded"
    for name in names:
        await wait_for_status(client, name, ready, TIMEOUT_SECONDS)
    rounds = [Round(name, pair) for name in names]

    async def run(one: Round) -> None:
        one.answers = await race(
            rng,
            pair.spread_seconds,
            lambda: act(client, pair.first, one.name),
            lambda: act(client, pair.second, one.name),
        )

    await asyncio.gather(*(run(one) for one in rounds))
    assert all(code < 500 for one in rounds for code, _ in one.answers)

    async def settled() -> bool:
        return all([is_settled((await shown(client, one.name))[1]) for one in rounds])

    await wait_until(settled, TIMEOUT_SECONDS)
    for one in rounds:
        check_outcome(one, (await shown(client, one.name))[1])
