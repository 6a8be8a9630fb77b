"""What the fake API server rejects and how it defaults, as kube-apiserver does: 422 Invalid
with field causes, 400 for undecodable bodies."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from typing import Any

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


@pytest.mark.parametrize(
    ("kind", "manifest", "field"),
    [
        ("jobs", job_manifest("Bad_Name"), "metadata.name"),
        ("jobs", job_manifest("x" * 64), "spec.template.labels"),
        ("secrets", secret_manifest("a" * 254), "metadata.name"),
        (
            "services",
            {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}},
            "metadata.name",
        ),
        ("secrets", {"metadata": {"name": "s", "labels": {"team": "x" * 64}}}, "metadata.labels"),
        ("secrets", {"metadata": {"name": "s", "labels": {"team": "a b"}}}, "metadata.labels"),
    ],
)
async def test_invalid_names_and_labels_are_422(
    kube: Kube, kind: str, manifest: dict[str, Any], field: str
) -> None:
    create = {
        "jobs": kube.batch.create_namespaced_job,
        "secrets": kube.core.create_namespaced_secret,
        "services": kube.core.create_namespaced_service,
    }[kind]

    with pytest.raises(ApiException) as exc:
        await create(NS, manifest)

    assert exc.value.status == 422
    status = status_body(exc.value)
    assert status["reason"] == "Invalid"
    assert field in [cause["field"] for cause in status["details"]["causes"]]


async def test_a_job_without_containers_is_422_naming_the_field(kube: Kube) -> None:
    manifest = job_manifest("j")
    manifest["spec"]["template"]["spec"]["containers"] = []

    with pytest.raises(ApiException) as exc:
        await kube.batch.create_namespaced_job(NS, manifest)

    assert exc.value.status == 422
    assert status_body(exc.value)["message"] == (
        'Job.batch "j" is invalid: spec.template.spec.containers: Required value'
    )


@pytest.mark.parametrize("policy", ["Always", None])
async def test_a_job_must_restart_never_or_on_failure(kube: Kube, policy: str | None) -> None:
    manifest = job_manifest("j")
    manifest["spec"]["template"]["spec"]["restartPolicy"] = policy

    with pytest.raises(ApiException) as exc:
        await kube.batch.create_namespaced_job(NS, manifest)

    assert exc.value.status == 422
    assert status_body(exc.value)["message"] == (
        'Job.batch "j" is invalid: spec.template.spec.restartPolicy: Unsupported value: '
        '"Always": supported values: "OnFailure", "Never"'
    )


# aiohttp warns when the client sends a body over 1 MiB as bytes; the client always does.
LARGE_BODY = pytest.mark.filterwarnings("ignore:Sending a large body:ResourceWarning")


@LARGE_BODY
async def test_a_secret_over_one_mebibyte_in_data_and_string_data_is_422(kube: Kube) -> None:
    half = "x" * (512 * 1024)
    manifest = secret_manifest("big", {"a": half}, stringData={"b": half + "y"})

    with pytest.raises(ApiException) as exc:
        await kube.core.create_namespaced_secret(NS, manifest)

    assert exc.value.status == 422
    assert "data: Too long: must have at most 1048576 bytes" in status_body(exc.value)["message"]


@LARGE_BODY
async def test_a_secret_of_exactly_one_mebibyte_is_accepted(kube: Kube) -> None:
    manifest = secret_manifest("big", {"a": "x" * (1024 * 1024)})

    created = await kube.core.create_namespaced_secret(NS, manifest)

    assert created.metadata.name == "big"


async def test_secret_data_that_is_not_base64_is_400_like_the_real_decoder(kube: Kube) -> None:
    manifest = {"metadata": {"name": "s"}, "data": {"k": "not base64!"}}

    with pytest.raises(ApiException) as exc:
        await kube.core.create_namespaced_secret(NS, manifest)

    assert exc.value.status == 400
    assert status_body(exc.value)["reason"] == "BadRequest"


async def test_secret_string_data_is_merged_into_data(kube: Kube) -> None:
    manifest = secret_manifest("s", {"a": "1"}, stringData={"b": "2"})

    created = await kube.core.create_namespaced_secret(NS, manifest)

    assert created.string_data is None
    assert {k: base64.b64decode(v).decode() for k, v in created.data.items()} == {
        "a": "1",
        "b": "2",
    }
    assert created.type == "Opaque"


async def test_an_immutable_secret_rejects_data_changes(kube: Kube) -> None:
    await kube.core.create_namespaced_secret(NS, secret_manifest("s", {"a": "1"}, immutable=True))

    with pytest.raises(ApiException) as exc:
        await kube.core.patch_namespaced_secret("s", NS, {"stringData": {"a": "2"}})

    assert exc.value.status == 422
    assert (
        "data: Forbidden: field is immutable when `immutable` is set"
        in status_body(exc.value)["message"]
    )


async def test_malformed_json_is_400(kube: Kube) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{kube.fake.url}/api/v1/namespaces/{NS}/secrets"
        async with session.post(
            url, data=b"{nope", headers={"Content-Type": "application/json"}
        ) as response:
            body = await response.json()

    assert response.status == 400
    assert body["reason"] == "BadRequest"


async def test_a_service_gets_a_cluster_ip_and_defaults(kube: Kube) -> None:
    manifest = {
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 8080}], "selector": {"app": "web"}},
    }

    created = await kube.core.create_namespaced_service(NS, manifest)

    assert created.spec.type == "ClusterIP"
    assert re.fullmatch(r"10\.(9[6-9]|10\d|11[01])\.\d+\.\d+", created.spec.cluster_ip)
    assert created.spec.ports[0].protocol == "TCP"
    assert created.spec.ports[0].target_port == 8080
