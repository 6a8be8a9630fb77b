"""The fake's Jobs, Pods and watch events are as large and as shaped as a real API server's,
compared with what kube-apiserver and kube-controller-manager 1.24 sent for the same jobs
(tests/fakekube/reference/, recorded from the scheduler's own Job).

Where current Kubernetes adds to what 1.24 sent, the fake follows current Kubernetes, and these
tests compare what a 1.24 client would have seen (`as_in_1_24`): a Job's
`spec.podReplacementPolicy`, `status.ready` and `status.terminating` (and the write when only
`ready` changed), the interim SuccessCriteriaMet/FailureTarget conditions and the
`batch.kubernetes.io/` pod labels; a Pod's `status.hostIPs` and PodReadyToStartContainers
condition. The reference's pods ran on a stand-in kubelet, which wrote pod status as
"Python-urllib" where a kubelet writes as "kubelet". Durations are simulated seconds at
time_scale 0.02.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.fakekube.testing import (
    Kube,
    condition,
    has_condition,
    job_manifest,
    recorded_watch,
    reference,
    reference_events,
    running_kube,
)

NS = "repro"
# The recorded job's name and namespace: names are a good part of an event's bytes.
NAME = "compute-20261202051544-hbabvqal"
SIZE_TOLERANCE = 0.25
NEWER_FIELDS = {"spec": {"podReplacementPolicy"}, "status": {"ready", "terminating", "hostIPs"}}
NEWER_CONDITIONS = {"SuccessCriteriaMet", "FailureTarget", "PodReadyToStartContainers"}
NEWER_LABELS = {"batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name"}
NEWER_FIELD_PATHS = {
    "f:podReplacementPolicy",
    "f:ready",
    "f:terminating",
    "f:hostIPs",
    'k:{"type":"PodReadyToStartContainers"}',
    *(f"f:{label}" for label in NEWER_LABELS),
}
STAND_IN_KUBELET = "Python-urllib"
UID = re.compile(r'"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"')
IP = re.compile(r'"\d+\.\d+\.\d+\.\d+"')
JSON = dict[str, Any]


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.02) as kube:
        yield kube


def scheduler_job(name: str, script: str) -> JSON:
    """A Job as scheduler.backends.kubernetes.manifests.build_job makes one, as recorded: its
    labels, job-id annotation, environment and security settings."""
    labels = {
        "radix-app": "reproapp",
        "radix-component": "compute",
        "radix-job-name": name,
        "radix-job-type": "job-scheduler",
    }
    env = {
        "RADIX_JOB_NAME": name,
        "RADIX_APP": "reproapp",
        "RADIX_ENVIRONMENT": "dev",
        "RADIX_COMPONENT": "compute",
    }
    container = {
        "name": "compute",
        "imagePullPolicy": "Always",
        "env": [{"name": key, "value": value} for key, value in env.items()],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod_spec = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
    }
    return job_manifest(
        name,
        script,
        labels=labels,
        annotations={"radix.equinor.com/job-id": "sample"},
        container=container,
        pod_spec=pod_spec,
        backoffLimit=0,
        activeDeadlineSeconds=43200,
    )


def kubectl_job(name: str, script: str, **spec: Any) -> JSON:
    """A Job as the reference's failing samples were applied with kubectl."""
    container = {"name": "c", "command": ["sh", "-c"], "args": [script]}
    return job_manifest(name, image="busybox", container=container, backoffLimit=0, **spec)


# what a 1.24 client would have seen


def as_in_1_24(obj: JSON) -> JSON:
    """An object without what Kubernetes added after 1.24 (see the module's docstring)."""
    view = {**obj, "metadata": dict(obj["metadata"])}
    for part, fields in NEWER_FIELDS.items():
        if isinstance(obj.get(part), dict):
            view[part] = {key: value for key, value in obj[part].items() if key not in fields}
    if isinstance(view.get("status"), dict):
        conditions = [
            c for c in view["status"].get("conditions") or [] if c["type"] not in NEWER_CONDITIONS
        ]
        view["status"].pop("conditions", None)
        if conditions:
            view["status"]["conditions"] = conditions
    labels = view["metadata"].get("labels") or {}
    view["metadata"]["labels"] = {k: v for k, v in labels.items() if k not in NEWER_LABELS}
    return view


def events_as_in_1_24(lines: list[bytes]) -> list[tuple[bytes, JSON]]:
    """(line, event) of the events a 1.24 server would have sent, objects as in 1.24: a write
    that changed only what 1.24 lacks sent nothing there."""
    kept: list[tuple[bytes, JSON]] = []
    previous: JSON | None = None
    for line in lines:
        event = json.loads(line)
        event["object"] = as_in_1_24(event["object"])
        metadata = event["object"]["metadata"]
        unversioned = {
            **event["object"],
            "metadata": {
                k: v for k, v in metadata.items() if k not in ("resourceVersion", "managedFields")
            },
        }
        if event["type"] == "MODIFIED" and unversioned == previous:
            continue
        previous = unversioned
        kept.append((line, event))
    return kept


def recorded(name: str) -> list[tuple[bytes, JSON]]:
    return [(line, json.loads(line)) for line in reference_events(name)]


def shapes(events: list[tuple[bytes, JSON]]) -> list[tuple[Any, ...]]:
    """Each event's type and the keys of its object, metadata, spec and status."""
    return [
        (
            event["type"],
            sorted(event["object"]),
            sorted(event["object"]["metadata"]),
            sorted(event["object"].get("spec") or {}),
            sorted(event["object"].get("status") or {}),
        )
        for _, event in events
    ]


def conditions(events: list[tuple[bytes, JSON]], *fields: str) -> list[list[tuple[Any, ...]]]:
    return [
        [tuple(c.get(f) for f in fields) for c in event["object"]["status"].get("conditions") or []]
        for _, event in events
    ]


def sizes(
    fake: list[tuple[bytes, JSON]], real: list[tuple[bytes, JSON]]
) -> list[tuple[int, int, bool]]:
    """(fake bytes, real bytes, within the tolerance) of each pair of events."""
    return [
        (len(mine), len(theirs), abs(len(mine) / len(theirs) - 1) <= SIZE_TOLERANCE)
        for (mine, _), (theirs, _) in zip(fake, real, strict=True)
    ]


def field_paths(entry: JSON) -> set[tuple[str, ...]]:
    """The paths of a managedFields entry, uids and IPs as placeholders, without what
    Kubernetes added after 1.24."""

    def walk(tree: JSON, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for key, sub in tree.items():
            if key not in NEWER_FIELD_PATHS:
                here = (*path, IP.sub('"<ip>"', UID.sub('"<uid>"', key)))
                yield here
                yield from walk(sub, here)

    return set(walk(entry["fieldsV1"], ()))


def managed(obj: JSON) -> dict[tuple[str, str | None], set[tuple[str, ...]]]:
    """An object's managedFields: the paths of each (manager, subresource), all Updates."""
    entries = obj["metadata"]["managedFields"]
    assert {entry["operation"] for entry in entries} == {"Update"}
    return {
        ("kubelet" if e["manager"] == STAND_IN_KUBELET else e["manager"], e.get("subresource")): (
            field_paths(e)
        )
        for e in entries
    }


# running jobs


async def until_recorded(lines: list[bytes], obj: JSON | None, timeout: float = 5) -> None:
    """Wait until a watch has sent `obj`'s current version."""
    assert obj is not None
    version = obj["metadata"]["resourceVersion"]
    deadline = time.monotonic() + timeout
    while not lines or json.loads(lines[-1])["object"]["metadata"]["resourceVersion"] != version:
        assert time.monotonic() < deadline, f"version {version} never came"
        await asyncio.sleep(0.01)


async def run_reference_job(kube: Kube) -> tuple[list[bytes], list[bytes]]:
    """The recorded job's life (`sleep 20; exit 0`): the lines its Job and Pod watches sent."""
    async with (
        recorded_watch(kube.batch.list_namespaced_job_without_preload_content, NS) as jobs,
        recorded_watch(kube.core.list_namespaced_pod_without_preload_content, NS) as pods,
    ):
        await kube.batch.create_namespaced_job(NS, scheduler_job(NAME, "sleep 20; exit 0"))
        job = await kube.fake.wait_for("Job", NS, NAME, lambda j: has_condition(j, "Complete"))
        [pod] = kube.fake.list("Pod", NS)
        await until_recorded(jobs, job)
        await until_recorded(pods, pod)
    return jobs, pods


def reason(condition: JSON) -> tuple[Any, ...]:
    return (condition["type"], condition["status"], condition["reason"], condition["message"])


async def run_to_failure(kube: Kube, manifest: JSON) -> JSON:
    await kube.batch.create_namespaced_job(NS, manifest)
    name = manifest["metadata"]["name"]
    job = await kube.fake.wait_for("Job", NS, name, lambda j: has_condition(j, "Failed"))
    assert job is not None
    return job


# the recorded job


async def test_a_job_sends_the_job_watch_events_a_real_server_sends(kube: Kube) -> None:
    jobs, pods = await run_reference_job(kube)
    mine, real = events_as_in_1_24(jobs), recorded("watch-jobs-succeeded.jsonl")

    assert shapes(mine) == shapes(real)
    assert conditions(mine, "type", "status") == conditions(real, "type", "status")
    assert all(within for *_, within in sizes(mine, real)), sizes(mine, real)
    # Running, then the finished pod recorded as uncounted (no longer active), then counted.
    statuses = [event["object"]["status"] for _, event in mine]
    pod = json.loads(pods[-1])["object"]
    assert statuses[1]["active"] == 1
    assert statuses[2]["uncountedTerminatedPods"] == {"succeeded": [pod["metadata"]["uid"]]}
    assert (statuses[3]["succeeded"], statuses[3]["uncountedTerminatedPods"]) == (1, {})


async def test_its_pod_sends_the_pod_watch_events_a_real_server_sends(kube: Kube) -> None:
    _, pods = await run_reference_job(kube)
    mine, real = events_as_in_1_24(pods), recorded("watch-pods-succeeded.jsonl")

    assert shapes(mine) == shapes(real)
    assert conditions(mine, "type", "status", "reason") == conditions(
        real, "type", "status", "reason"
    )
    assert all(within for *_, within in sizes(mine, real)), sizes(mine, real)
    phases = [event["object"]["status"]["phase"] for _, event in mine]
    assert phases == [event["object"]["status"]["phase"] for _, event in real]
    waiting = mine[2][1]["object"]["status"]["containerStatuses"][0]["state"]
    assert waiting == {"waiting": {"reason": "ContainerCreating"}}


async def test_the_pods_finalizer_goes_between_the_jobs_two_counting_writes(kube: Kube) -> None:
    jobs, pods = await run_reference_job(kube)

    def version(line: bytes) -> int:
        return int(json.loads(line)["object"]["metadata"]["resourceVersion"])

    *_, uncounted, counted = [line for line, _ in events_as_in_1_24(jobs)]
    released = pods[-1]
    assert "finalizers" not in json.loads(released)["object"]["metadata"]
    assert version(uncounted) < version(released) < version(counted)


async def test_the_job_and_pod_carry_the_managed_fields_a_real_server_records(kube: Kube) -> None:
    jobs, pods = await run_reference_job(kube)
    real_job = json.loads(reference_events("watch-jobs-succeeded.jsonl")[-1])["object"]
    real_pod = json.loads(reference_events("watch-pods-succeeded.jsonl")[-1])["object"]
    job, pod = (json.loads(lines[-1])["object"] for lines in (jobs, pods))

    assert managed(job) == managed(real_job)
    assert managed(pod) == managed(real_pod)
    assert job == kube.fake.get("Job", NS, NAME)  # as stored
    assert pod == kube.fake.get("Pod", NS, pod["metadata"]["name"])
    assert set(managed(job)) == set(managed(reference("job-succeeded.json")))
    assert set(managed(pod)) == set(managed(reference("pod-succeeded.json")))


# failures


async def test_a_job_whose_pod_fails_ends_as_on_a_real_server(kube: Kube) -> None:
    job = await run_to_failure(kube, kubectl_job("sample-failed", "sleep 1; exit 3"))
    real = reference("job-failed.json")
    [pod] = kube.fake.list("Pod", NS)
    [real_pod] = reference("pods-failed.json")["items"]

    mine = as_in_1_24(job)
    assert sorted(mine["status"]) == sorted(real["status"])
    assert [reason(c) for c in mine["status"]["conditions"]] == [
        reason(c) for c in real["status"]["conditions"]
    ]
    assert (mine["status"]["failed"], mine["status"]["uncountedTerminatedPods"]) == (1, {})
    # kubectl created the reference (its fields: kubectl's annotation, no labels) and the
    # Python client this one; the controller wrote the same status fields.
    counted_by = ("kube-controller-manager", "status")
    assert managed(job)[counted_by] == managed(real)[counted_by]
    creator = {
        p for p in managed(real)[("kubectl-client-side-apply", None)] if "f:metadata" not in p
    }
    assert managed(job)[("OpenAPI-Generator", None)] == creator
    assert sorted(as_in_1_24(pod)["status"]) == sorted(real_pod["status"])
    [state] = [s["state"] for s in pod["status"]["containerStatuses"]]
    [real_state] = [s["state"] for s in real_pod["status"]["containerStatuses"]]
    assert sorted(state["terminated"]) == sorted(real_state["terminated"])
    assert (state["terminated"]["exitCode"], state["terminated"]["reason"]) == (3, "Error")
    assert [(c["type"], c["status"]) for c in as_in_1_24(pod)["status"]["conditions"]] == [
        (c["type"], c["status"]) for c in real_pod["status"]["conditions"]
    ]
    assert managed(pod) == managed(real_pod)


async def test_a_job_past_its_deadline_ends_as_on_a_real_server(kube: Kube) -> None:
    job = await run_to_failure(
        kube, kubectl_job("sample-deadline", "sleep 30", activeDeadlineSeconds=2)
    )
    real = reference("job-deadline.json")

    mine = as_in_1_24(job)
    assert sorted(mine["status"]) == sorted(real["status"])
    failed = condition(mine, "Failed")
    assert failed is not None
    assert (failed["reason"], failed["message"]) == (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    assert mine["status"]["failed"] == real["status"]["failed"] == 1
    # Its pod was stopped and counted before the Job failed, and is gone, as on the real server.
    assert kube.fake.list("Pod", NS) == reference("pods-deadline.json")["items"] == []


# pods


async def test_a_pod_that_may_mount_its_token_gets_the_volume_a_real_server_adds(
    kube: Kube,
) -> None:
    await run_to_failure(kube, kubectl_job("sample-failed", "sleep 1; exit 3"))
    [pod] = kube.fake.list("Pod", NS)
    [real] = reference("pods-failed.json")["items"]

    assert sorted(pod["spec"]) == sorted(real["spec"])
    [volume], [real_volume] = pod["spec"]["volumes"], real["spec"]["volumes"]
    assert re.fullmatch(r"kube-api-access-[a-z0-9]{5}", volume["name"])
    assert volume["projected"] == real_volume["projected"]
    [mount] = pod["spec"]["containers"][0]["volumeMounts"]
    assert mount == {**real["spec"]["containers"][0]["volumeMounts"][0], "name": volume["name"]}
    assert pod["spec"]["tolerations"] == real["spec"]["tolerations"]
    assert [pod["spec"][k] for k in ("serviceAccountName", "priority", "enableServiceLinks")] == [
        real["spec"][k] for k in ("serviceAccountName", "priority", "enableServiceLinks")
    ]


async def test_a_pod_that_may_not_mount_its_token_gets_no_token_volume(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, scheduler_job("quiet", "sleep 1"))
    await kube.fake.wait_for("Job", NS, "quiet", lambda j: has_condition(j, "Complete"))
    [pod] = kube.fake.list("Pod", NS)

    assert "volumes" not in pod["spec"]
    assert "volumeMounts" not in pod["spec"]["containers"][0]
    assert pod["metadata"]["annotations"]["seccomp.security.alpha.kubernetes.io/pod"] == (
        "runtime/default"
    )


# field managers


async def patch_labels(
    kube: Kube, name: str, labels: JSON, *, user_agent: str = "", field_manager: str = ""
) -> JSON:
    """A merge patch of a Job's labels over plain HTTP, as another client would send it."""
    query = {"fieldManager": field_manager} if field_manager else {}
    headers = {"Content-Type": "application/merge-patch+json"}
    if user_agent:
        headers["User-Agent"] = user_agent
    url = f"{kube.fake.url}/apis/batch/v1/namespaces/{NS}/jobs/{name}"
    async with aiohttp.ClientSession() as session:
        body = json.dumps({"metadata": {"labels": labels}})
        async with session.patch(url, data=body, headers=headers, params=query) as response:
            assert response.status == 200, await response.text()
            patched: JSON = await response.json()
    return patched


def entry_of(obj: JSON, manager: str) -> JSON:
    entries: list[JSON] = obj["metadata"]["managedFields"]
    [entry] = [e for e in entries if e.get("manager") == manager]
    return entry


async def test_a_writes_manager_is_its_user_agents_product_or_its_field_manager(
    kube: Kube,
) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("x", "sleep 600", labels={"a": "1"}))

    by_agent = await patch_labels(kube, "x", {"b": "2"}, user_agent="my-tool/1.2 (linux)")
    by_name = await patch_labels(kube, "x", {"c": "3"}, field_manager="deployer")

    assert entry_of(by_agent, "my-tool")["fieldsV1"] == {"f:metadata": {"f:labels": {"f:b": {}}}}
    assert entry_of(by_name, "deployer")["fieldsV1"] == {"f:metadata": {"f:labels": {"f:c": {}}}}
    creator = entry_of(by_name, "OpenAPI-Generator")
    assert creator["fieldsV1"]["f:metadata"]["f:labels"] == {".": {}, "f:a": {}}
    assert "subresource" not in creator and creator["operation"] == "Update"


async def test_a_write_takes_the_fields_it_changes_and_drops_those_it_removes(
    kube: Kube,
) -> None:
    await kube.batch.create_namespaced_job(
        NS, job_manifest("x", "sleep 600", labels={"a": "1", "b": "2"})
    )

    after = await patch_labels(kube, "x", {"a": "changed", "b": None}, field_manager="editor")

    creator = entry_of(after, "OpenAPI-Generator")
    assert creator["fieldsV1"]["f:metadata"]["f:labels"] == {}  # the map it set, no keys left
    assert entry_of(after, "editor")["fieldsV1"] == {"f:metadata": {"f:labels": {"f:a": {}}}}
    # A write that changes nothing changes no managedFields either (and stores nothing).
    unchanged = await patch_labels(kube, "x", {"a": "changed"}, field_manager="other")
    assert unchanged["metadata"]["managedFields"] == after["metadata"]["managedFields"]
    assert unchanged["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
