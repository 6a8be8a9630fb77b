"""The fake API server's CRUD semantics, through the official kubernetes.aio client."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from kubernetes.aio.client.exceptions import ApiException

from tests.fakekube.testing import (
    Kube,
    job_manifest,
    running_kube,
    secret_manifest,
    status_body,
)

NS = "default"


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        yield kube


async def test_create_job_sets_server_metadata_and_defaults(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("hello"))

    stored = kube.fake.get("Job", NS, "hello")
    assert stored is not None
    metadata, spec = stored["metadata"], stored["spec"]
    uid = metadata["uid"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", uid)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", metadata["creationTimestamp"])
    assert metadata["resourceVersion"].isdigit()
    assert metadata["namespace"] == NS
    assert metadata["generation"] == 1
    assert (spec["backoffLimit"], spec["completions"], spec["parallelism"]) == (6, 1, 1)
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "hello",
        "controller-uid": uid,
        "job-name": "hello",
    }


async def test_create_answers_201_with_the_stored_object(kube: Kube) -> None:
    response = await kube.batch.create_namespaced_job_with_http_info(NS, job_manifest("a"))

    assert response.status_code == 201
    assert response.data.metadata.uid == kube.fake.get("Job", NS, "a")["metadata"]["uid"]


async def test_generate_name_appends_five_random_characters(kube: Kube) -> None:
    manifest = secret_manifest("", {"k": "v"})
    manifest["metadata"] = {"generateName": "payload-"}

    created = await kube.core.create_namespaced_secret(NS, manifest)

    assert re.fullmatch(r"payload-[a-z0-9]{5}", created.metadata.name)


async def test_reading_a_missing_job_is_404_with_a_status_body(kube: Kube) -> None:
    with pytest.raises(ApiException) as exc:
        await kube.batch.read_namespaced_job("nope", NS)

    assert exc.value.status == 404
    assert status_body(exc.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "batch", "kind": "jobs"},
        "code": 404,
    }


async def test_creating_an_existing_name_is_409_already_exists(kube: Kube) -> None:
    await kube.core.create_namespaced_secret(NS, secret_manifest("s"))

    with pytest.raises(ApiException) as exc:
        await kube.core.create_namespaced_secret(NS, secret_manifest("s"))

    assert exc.value.status == 409
    assert status_body(exc.value)["reason"] == "AlreadyExists"
    assert status_body(exc.value)["message"] == 'secrets "s" already exists'


async def test_replace_with_a_stale_resource_version_is_409_conflict(kube: Kube) -> None:
    first = await kube.core.create_namespaced_secret(NS, secret_manifest("s", {"a": "1"}))
    await kube.core.replace_namespaced_secret("s", NS, secret_manifest("s", {"a": "2"}))
    stale = secret_manifest("s", {"a": "3"})
    stale["metadata"]["resourceVersion"] = first.metadata.resource_version

    with pytest.raises(ApiException) as exc:
        await kube.core.replace_namespaced_secret("s", NS, stale)

    assert exc.value.status == 409
    assert status_body(exc.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_body(exc.value)["message"]


async def test_replace_without_resource_version_is_unconditional(kube: Kube) -> None:
    await kube.core.create_namespaced_secret(NS, secret_manifest("s", {"a": "1"}))

    replaced = await kube.core.replace_namespaced_secret("s", NS, secret_manifest("s", {"a": "2"}))

    assert base64.b64decode(replaced.data["a"]) == b"2"


async def test_an_update_that_changes_nothing_keeps_the_resource_version(kube: Kube) -> None:
    created = await kube.core.create_namespaced_secret(NS, secret_manifest("s", {"a": "1"}))

    patched = await kube.core.patch_namespaced_secret("s", NS, {"data": created.data})

    assert patched.metadata.resource_version == created.metadata.resource_version


async def test_list_items_carry_no_kind_and_the_list_the_current_version(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("a"))
    response = await kube.batch.list_namespaced_job_without_preload_content(NS)
    body = await response.json()

    assert (body["kind"], body["apiVersion"]) == ("JobList", "batch/v1")
    assert int(body["metadata"]["resourceVersion"]) == kube.fake.store.resource_version
    assert [item["metadata"]["name"] for item in body["items"]] == ["a"]
    assert "kind" not in body["items"][0]
    assert "apiVersion" not in body["items"][0]


async def test_list_pages_with_limit_and_continue(kube: Kube) -> None:
    for index in range(5):
        await kube.core.create_namespaced_secret(NS, secret_manifest(f"s{index}"))

    first = await kube.core.list_namespaced_secret(NS, limit=2)
    second = await kube.core.list_namespaced_secret(
        NS, limit=2, _continue=first.metadata.var_continue
    )
    last = await kube.core.list_namespaced_secret(
        NS, limit=2, _continue=second.metadata.var_continue
    )

    names = [s.metadata.name for page in (first, second, last) for s in page.items]
    assert names == ["s0", "s1", "s2", "s3", "s4"]
    assert first.metadata.remaining_item_count == 3
    assert last.metadata.var_continue is None


async def test_resource_versions_increase_across_kinds(kube: Kube) -> None:
    secret = await kube.core.create_namespaced_secret(NS, secret_manifest("s"))
    job = await kube.batch.create_namespaced_job(NS, job_manifest("j"))
    patched = await kube.core.patch_namespaced_secret("s", NS, {"metadata": {"labels": {"a": "b"}}})

    versions = [int(o.metadata.resource_version) for o in (secret, job, patched)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


async def test_main_resource_writes_ignore_status_and_status_writes_ignore_spec(
    kube: Kube,
) -> None:
    created = await kube.batch.create_namespaced_job(NS, job_manifest("j", suspend=True))
    await kube.fake.settle()

    await kube.batch.patch_namespaced_job("j", NS, {"status": {"failed": 9}})
    await kube.batch.patch_namespaced_job_status(
        "j", NS, {"spec": {"parallelism": 5}, "status": {"succeeded": 4}}
    )

    stored = kube.fake.get("Job", NS, "j")
    assert stored is not None
    assert "failed" not in stored["status"]
    assert stored["status"]["succeeded"] == 4
    assert stored["spec"]["parallelism"] == 1
    assert stored["metadata"]["generation"] == created.metadata.generation


async def test_spec_changes_bump_the_generation(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("j", suspend=True))

    patched = await kube.batch.patch_namespaced_job("j", NS, {"spec": {"parallelism": 2}})
    relabelled = await kube.batch.patch_namespaced_job(
        "j", NS, {"metadata": {"labels": {"a": "b"}}}
    )

    assert patched.metadata.generation == 2
    assert relabelled.metadata.generation == 2


async def test_a_job_template_is_immutable(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("j", suspend=True))
    change = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x"}]}}}}

    with pytest.raises(ApiException) as exc:
        await kube.batch.patch_namespaced_job("j", NS, change)

    assert exc.value.status == 422
    assert "spec.template: Invalid value" in status_body(exc.value)["message"]


async def test_merge_patch_removes_keys_set_to_null(kube: Kube) -> None:
    manifest = secret_manifest("s")
    manifest["metadata"]["labels"] = {"a": "1", "b": "2"}
    await kube.core.create_namespaced_secret(NS, manifest)

    patched = await kube.core.patch_namespaced_secret(
        "s",
        NS,
        {"metadata": {"labels": {"a": None}}},
        _content_type="application/merge-patch+json",
    )

    assert patched.metadata.labels == {"b": "2"}


@pytest.mark.parametrize(
    "content_type",
    ["application/merge-patch+json", "application/strategic-merge-patch+json"],
)
async def test_a_job_takes_merge_and_strategic_merge_patches(kube: Kube, content_type: str) -> None:
    await kube.batch.create_namespaced_job(
        NS, job_manifest("j", suspend=True, labels={"a": "1", "b": "2"})
    )

    patched = await kube.batch.patch_namespaced_job(
        "j",
        NS,
        {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"parallelism": 2}},
        _content_type=content_type,
    )

    assert patched.metadata.labels == {"b": "2", "c": "3"}
    assert (patched.spec.parallelism, patched.spec.suspend) == (2, True)
    assert kube.fake.audit[-1].verb == "patch"


async def test_json_patch_applies_operations_in_order(kube: Kube) -> None:
    await kube.core.create_namespaced_secret(NS, secret_manifest("s"))
    operations = [
        {"op": "add", "path": "/metadata/labels", "value": {"a": "1"}},
        {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
        {"op": "test", "path": "/metadata/labels/a", "value": "2"},
    ]

    patched = await kube.core.patch_namespaced_secret("s", NS, operations)

    assert patched.metadata.labels == {"a": "2"}


async def test_a_failing_json_patch_test_is_422_and_changes_nothing(kube: Kube) -> None:
    created = await kube.core.create_namespaced_secret(NS, secret_manifest("s"))

    with pytest.raises(ApiException) as exc:
        await kube.core.patch_namespaced_secret(
            "s", NS, [{"op": "test", "path": "/metadata/name", "value": "other"}]
        )

    assert exc.value.status == 422
    stored = kube.fake.get("Secret", NS, "s")
    assert stored is not None
    assert stored["metadata"]["resourceVersion"] == created.metadata.resource_version


async def test_a_patch_carrying_a_stale_resource_version_conflicts(kube: Kube) -> None:
    first = await kube.core.create_namespaced_secret(NS, secret_manifest("s"))
    await kube.core.patch_namespaced_secret("s", NS, {"metadata": {"labels": {"a": "b"}}})
    stale = {"metadata": {"resourceVersion": first.metadata.resource_version}}

    with pytest.raises(ApiException) as exc:
        await kube.core.patch_namespaced_secret("s", NS, stale)

    assert exc.value.status == 409


async def test_delete_answers_status_success_for_jobs_and_the_object_for_pods(
    kube: Kube,
) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("j", suspend=True))
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    await kube.core.create_namespaced_pod(NS, pod)

    job_answer = await kube.batch.delete_namespaced_job("j", NS)
    pod_answer = await kube.core.delete_namespaced_pod("p", NS, grace_period_seconds=0)

    assert job_answer["status"] == "Success"
    assert job_answer["details"]["kind"] == "jobs"
    assert pod_answer.metadata.name == "p"
    assert kube.fake.get("Pod", NS, "p") is None


async def test_delete_with_a_wrong_uid_precondition_is_409(kube: Kube) -> None:
    await kube.core.create_namespaced_secret(NS, secret_manifest("s"))

    with pytest.raises(ApiException) as exc:
        await kube.core.delete_namespaced_secret("s", NS, body={"preconditions": {"uid": "not-it"}})

    assert exc.value.status == 409
    assert "Precondition failed: UID in precondition: not-it" in status_body(exc.value)["message"]
    assert kube.fake.get("Secret", NS, "s") is not None


async def test_deleting_a_namespace_deletes_what_is_in_it(kube: Kube) -> None:
    await kube.core.create_namespace({"metadata": {"name": "team"}})
    await kube.core.create_namespaced_secret("team", secret_manifest("s"))
    await kube.core.create_namespaced_secret(NS, secret_manifest("s"))

    await kube.core.delete_namespace("team")

    assert kube.fake.list("Secret", "team") == []
    assert kube.fake.get("Secret", NS, "s") is not None


async def test_a_dry_run_create_stores_nothing(kube: Kube) -> None:
    await kube.core.create_namespaced_secret(NS, secret_manifest("s"), dry_run="All")

    assert kube.fake.get("Secret", NS, "s") is None


async def test_version_and_health_endpoints_answer(kube: Kube) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{kube.fake.url}/version") as response:
            version = await response.json()
        for probe in ("/healthz", "/readyz", "/livez"):
            async with session.get(kube.fake.url + probe) as response:
                assert (response.status, await response.text()) == (200, "ok")

    assert version["gitVersion"] == "v1.31.0-fake"


async def test_put_seeds_objects_and_get_returns_copies(kube: Kube) -> None:
    kube.fake.put(
        {
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"nodeName": "elsewhere", "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running"},
        }
    )

    copy = kube.fake.get("Pod", NS, "p")
    assert copy is not None
    copy["status"]["phase"] = "Failed"

    read = await kube.core.read_namespaced_pod("p", NS)
    assert read.status.phase == "Running"
    assert read.metadata.uid
