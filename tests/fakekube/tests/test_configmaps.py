"""ConfigMaps through the official client: CRUD, patches, preconditions, selectors, watches, the
real server's data rules, and ConfigMaps as owners in garbage collection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes.aio.client.exceptions import ApiException

from tests.fakekube.testing import (
    Kube,
    configmap_manifest,
    job_manifest,
    owner_reference,
    phase,
    running_kube,
    secret_manifest,
    status_body,
)

NS = "default"
JSON = dict[str, Any]


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        yield kube


async def create(kube: Kube, name: str, data: dict[str, str] | None = None, **fields: Any) -> Any:
    return await kube.core.create_namespaced_config_map(
        NS, configmap_manifest(name, data, **fields)
    )


async def rejected(kube: Kube, manifest: JSON) -> ApiException:
    with pytest.raises(ApiException) as exc:
        await kube.core.create_namespaced_config_map(NS, manifest)
    assert kube.fake.get("ConfigMap", NS, manifest["metadata"]["name"]) is None
    return exc.value


async def post_raw(kube: Kube, manifest: JSON) -> tuple[int, JSON]:
    """POST a body the typed client would refuse to send; the status code and answer."""
    url = f"{kube.fake.url}/api/v1/namespaces/{NS}/configmaps"
    async with aiohttp.ClientSession() as session, session.post(url, json=manifest) as response:
        answer: JSON = await response.json()
        return response.status, answer


# the API


async def test_a_config_map_is_created_read_and_listed_by_label(kube: Kube) -> None:
    created = await create(kube, "settings", {"mode": "fast"})
    labelled = configmap_manifest("team", {"a": "1"})
    labelled["metadata"]["labels"] = {"team": "blue"}
    await kube.core.create_namespaced_config_map(NS, labelled)

    read = await kube.core.read_namespaced_config_map("settings", NS)
    listed = await kube.core.list_namespaced_config_map(NS, label_selector="team=blue")

    assert (created.kind, created.api_version) == ("ConfigMap", "v1")
    assert created.metadata.uid and created.metadata.resource_version
    assert read.data == {"mode": "fast"}
    assert [c.metadata.name for c in listed.items] == ["team"]


async def test_merge_strategic_and_json_patches_change_data(kube: Kube) -> None:
    await create(kube, "c", {"a": "1", "b": "2"})

    merged = await kube.core.patch_namespaced_config_map(
        "c", NS, {"data": {"a": None, "c": "3"}}, _content_type="application/merge-patch+json"
    )
    strategic = await kube.core.patch_namespaced_config_map(
        "c", NS, {"data": {"d": "4"}}, _content_type="application/strategic-merge-patch+json"
    )
    patched = await kube.core.patch_namespaced_config_map(
        "c", NS, [{"op": "replace", "path": "/data/b", "value": "two"}]
    )

    assert merged.data == {"b": "2", "c": "3"}
    assert strategic.data == {"b": "2", "c": "3", "d": "4"}
    assert patched.data == {"b": "two", "c": "3", "d": "4"}


async def test_a_watch_from_a_version_sees_a_config_map_added_changed_and_deleted(
    kube: Kube,
) -> None:
    since = (await kube.core.list_namespaced_config_map(NS)).metadata.resource_version
    await create(kube, "c", {"a": "1"})
    await kube.core.patch_namespaced_config_map("c", NS, {"data": {"a": "2"}})
    await kube.core.delete_namespaced_config_map("c", NS)

    response = await kube.core.list_namespaced_config_map_without_preload_content(
        NS, watch=True, resource_version=since
    )
    lines = [await response.content.readline() for _ in range(3)]
    response.close()

    events = [json.loads(line) for line in lines]
    assert [(e["type"], e["object"]["data"]["a"]) for e in events] == [
        ("ADDED", "1"),
        ("MODIFIED", "2"),
        ("DELETED", "2"),
    ]
    assert events[0]["object"]["kind"] == "ConfigMap"


async def test_delete_checks_uid_and_resource_version_preconditions(kube: Kube) -> None:
    created = await create(kube, "c", {"a": "1"})
    changed = await kube.core.patch_namespaced_config_map("c", NS, {"data": {"a": "2"}})

    failures = []
    for preconditions in (
        {"uid": "not-it"},
        {"resourceVersion": created.metadata.resource_version},
    ):
        with pytest.raises(ApiException) as exc:
            await kube.core.delete_namespaced_config_map(
                "c", NS, body={"preconditions": preconditions}
            )
        failures.append((exc.value.status, status_body(exc.value)["message"]))
    answer = await kube.core.delete_namespaced_config_map(
        "c",
        NS,
        body={
            "preconditions": {
                "uid": created.metadata.uid,
                "resourceVersion": changed.metadata.resource_version,
            }
        },
    )

    assert [code for code, _ in failures] == [409, 409]
    assert "Precondition failed: UID in precondition: not-it" in failures[0][1]
    assert "Precondition failed: ResourceVersion in precondition" in failures[1][1]
    assert (answer["status"], answer["details"]["kind"]) == ("Success", "configmaps")
    assert kube.fake.get("ConfigMap", NS, "c") is None


async def test_discovery_lists_config_maps(kube: Kube) -> None:
    resources = await kube.core.get_api_resources()

    found = [r for r in resources.resources if r.name == "configmaps"]
    assert [(r.kind, r.namespaced) for r in found] == [("ConfigMap", True)]
    assert "patch" in found[0].verbs and "watch" in found[0].verbs


# the real server's rules


@pytest.mark.parametrize(
    ("value", "json_type"),
    [(5, "number"), (True, "bool"), ({"x": "y"}, "object"), (["x"], "array")],
)
async def test_a_data_value_that_is_not_a_string_is_400(
    kube: Kube, value: Any, json_type: str
) -> None:
    manifest = configmap_manifest("c")
    manifest["data"] = {"k": value}

    code, answer = await post_raw(kube, manifest)

    assert code == 400
    assert kube.fake.get("ConfigMap", NS, "c") is None
    assert answer["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
        f"{json_type} into Go struct field ConfigMap.data of type string"
    )


async def test_a_patch_that_makes_a_value_a_number_is_400_and_changes_nothing(
    kube: Kube,
) -> None:
    created = await create(kube, "c", {"a": "1"})

    with pytest.raises(ApiException) as exc:
        await kube.core.patch_namespaced_config_map("c", NS, {"data": {"a": 2}})

    assert exc.value.status == 400
    stored = kube.fake.get("ConfigMap", NS, "c")
    assert stored is not None
    assert stored["metadata"]["resourceVersion"] == created.metadata.resource_version


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("a b", "a valid config key must consist of alphanumeric characters"),
        ("a/b", "a valid config key must consist of alphanumeric characters"),
        ("", "a valid config key must consist of alphanumeric characters"),
        ("..", "must not be '..'"),
        ("..x", "must not start with '..'"),
    ],
)
async def test_a_data_key_must_be_a_config_key(kube: Kube, key: str, problem: str) -> None:
    error = await rejected(kube, configmap_manifest("c", {key: "v"}))

    assert error.status == 422
    causes = status_body(error)["details"]["causes"]
    assert {c["field"] for c in causes} == {f"data[{key}]"}
    assert any(problem in c["message"] for c in causes)


async def test_a_key_in_both_data_and_binary_data_is_422(kube: Kube) -> None:
    manifest = configmap_manifest("c", {"k": "v"}, binaryData={"k": "AAEC"})

    error = await rejected(kube, manifest)

    assert error.status == 422
    assert (
        'data[k]: Invalid value: "k": duplicate of key present in binaryData'
        in (status_body(error)["message"])
    )


async def test_binary_data_is_base64(kube: Kube) -> None:
    stored = await kube.core.create_namespaced_config_map(
        NS, configmap_manifest("c", binaryData={"blob": "AAEC"})
    )
    error = await rejected(kube, configmap_manifest("d", binaryData={"blob": "not base64!"}))

    assert stored.binary_data == {"blob": "AAEC"}
    assert error.status == 400
    assert "illegal base64 data at input byte 3" in status_body(error)["message"]


async def test_more_than_one_mebibyte_of_data_is_422(kube: Kube) -> None:
    half = "x" * (512 * 1024)

    await create(kube, "exact", {"a": half, "b": half})
    error = await rejected(kube, configmap_manifest("over", {"a": half, "b": half + "x"}))

    assert error.status == 422
    assert "Too long: must have at most 1048576 bytes" in status_body(error)["message"]


async def test_an_immutable_config_map_rejects_data_changes_but_not_label_changes(
    kube: Kube,
) -> None:
    await create(kube, "frozen", {"a": "1"}, immutable=True)

    relabelled = await kube.core.patch_namespaced_config_map(
        "frozen", NS, {"metadata": {"labels": {"x": "y"}}}
    )
    errors = []
    for change in ({"data": {"a": "2"}}, {"immutable": False}, {"binaryData": {"b": "AAEC"}}):
        with pytest.raises(ApiException) as exc:
            await kube.core.patch_namespaced_config_map("frozen", NS, change)
        errors.append((exc.value.status, status_body(exc.value)["details"]["causes"]))

    assert relabelled.metadata.labels == {"x": "y"}
    forbidden = "Forbidden: field is immutable when `immutable` is set"
    assert [code for code, _ in errors] == [422, 422, 422]
    assert [[(c["field"], c["message"]) for c in causes] for _, causes in errors] == [
        [("data", forbidden)],
        [("immutable", forbidden)],
        [("binaryData", forbidden)],
    ]
    assert kube.fake.get("ConfigMap", NS, "frozen")["data"] == {"a": "1"}  # type: ignore[index]


async def test_fields_a_config_map_does_not_have_are_dropped(kube: Kube) -> None:
    manifest = configmap_manifest("c", {"a": "1"}, status={"x": 1}, spec={"y": 2})

    code, created = await post_raw(kube, manifest)

    stored = kube.fake.get("ConfigMap", NS, "c")
    assert (code, created["data"]) == (201, {"a": "1"})
    assert stored is not None
    assert set(stored) == {"kind", "apiVersion", "metadata", "data"}


# garbage collection


async def owned_running_job(kube: Kube, name: str, owner: JSON) -> str:
    """A Job owned by `owner`, with a running pod and a Secret of its own; the pod's name."""
    manifest = job_manifest(name, "sleep 600")
    manifest["metadata"]["ownerReferences"] = [owner]
    job = await kube.batch.create_namespaced_job(NS, manifest)
    secret = secret_manifest(f"{name}-payload", {"p": "x"})
    secret["metadata"]["ownerReferences"] = [owner_reference(job)]
    await kube.core.create_namespaced_secret(NS, secret)

    def running(_: Any) -> bool:
        pods = kube.fake.list("Pod", NS, f"job-name={name}")
        return len(pods) == 1 and phase(pods[0]) == "Running"

    await kube.fake.wait_for("Job", NS, name, running)
    return str(kube.fake.list("Pod", NS, f"job-name={name}")[0]["metadata"]["name"])


async def test_deleting_a_config_map_in_the_background_collects_the_jobs_it_owns(
    kube: Kube,
) -> None:
    owner = await create(kube, "batch-1", {"k": "v"})
    await create(kube, "other")
    pod = await owned_running_job(kube, "j", owner_reference(owner))
    await kube.batch.create_namespaced_job(NS, job_manifest("unowned", suspend=True))

    await kube.core.delete_namespaced_config_map("batch-1", NS, propagation_policy="Background")

    assert kube.fake.get("ConfigMap", NS, "batch-1") is None
    await kube.fake.wait_for("Job", NS, "j", lambda j: j is None)
    await kube.fake.wait_for("Pod", NS, pod, lambda p: p is None)
    await kube.fake.wait_for("Secret", NS, "j-payload", lambda s: s is None)
    await kube.fake.settle()
    assert kube.fake.get("Job", NS, "unowned") is not None
    assert kube.fake.get("ConfigMap", NS, "other") is not None


async def test_orphaning_a_config_maps_jobs_leaves_them_without_the_reference(
    kube: Kube,
) -> None:
    owner = await create(kube, "batch-1")
    manifest = job_manifest("j", suspend=True)
    manifest["metadata"]["ownerReferences"] = [owner_reference(owner)]
    await kube.batch.create_namespaced_job(NS, manifest)

    await kube.core.delete_namespaced_config_map("batch-1", NS, propagation_policy="Orphan")
    await kube.fake.settle()

    job = kube.fake.get("Job", NS, "j")
    assert job is not None
    assert "ownerReferences" not in job["metadata"]


async def test_a_job_whose_owner_does_not_exist_is_collected_with_its_pods(kube: Kube) -> None:
    ghost = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "gone",
        "uid": "00000000-0000-4000-8000-000000000000",
        "controller": True,
    }
    manifest = job_manifest("stray", "sleep 600")
    manifest["metadata"]["ownerReferences"] = [ghost]

    await kube.batch.create_namespaced_job(NS, manifest)

    await kube.fake.wait_for("Job", NS, "stray", lambda j: j is None)
    await kube.fake.wait_for(
        "Job", NS, "stray", lambda _: kube.fake.list("Pod", NS, "job-name=stray") == []
    )


async def test_an_owner_in_another_namespace_counts_as_absent(kube: Kube) -> None:
    elsewhere = await kube.core.create_namespaced_config_map("other", configmap_manifest("c"))
    manifest = job_manifest("stray", suspend=True)
    manifest["metadata"]["ownerReferences"] = [owner_reference(elsewhere)]

    await kube.batch.create_namespaced_job(NS, manifest)

    await kube.fake.wait_for("Job", NS, "stray", lambda j: j is None)
    assert kube.fake.get("ConfigMap", "other", "c") is not None
