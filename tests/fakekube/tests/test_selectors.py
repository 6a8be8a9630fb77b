"""Label and field selectors: the parser and matcher, then the same through LIST requests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes.aio.client.exceptions import ApiException

from tests.fakekube.kinds import EVENT, POD
from tests.fakekube.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from tests.fakekube.testing import Kube, running_kube, secret_manifest

NS = "default"
LABELS = {"app": "web", "tier": "front", "version": "3"}


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app!=api", True),
        ("missing!=x", True),
        ("app in (api, web)", True),
        ("app in (api)", False),
        ("app notin (api, db)", True),
        ("missing notin (a)", True),
        ("app notin (web)", False),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("version>2", True),
        ("version<3", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app in (web,api),!missing,version", True),
        ("empty=", False),
    ],
)
def test_label_selector_matches_like_apimachinery(selector: str, selected: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is selected


def test_an_empty_value_selects_an_empty_label() -> None:
    assert parse_label_selector("empty=").matches({"empty": ""})


@pytest.mark.parametrize("selector", ["=web", "app in web", "app in (a", "a b", "!", "x>y"])
def test_malformed_label_selectors_are_rejected(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


def test_label_values_must_be_valid_label_values() -> None:
    with pytest.raises(SelectorError):
        parse_label_selector("app=" + "x" * 64)


@pytest.mark.parametrize(
    ("selector", "selected"),
    [
        ("metadata.name=p", True),
        ("metadata.name==p", True),
        ("metadata.name!=p", False),
        ("status.phase=Running,metadata.namespace=default", True),
        ("status.phase=Pending", False),
        ("spec.nodeName=", True),
    ],
)
def test_field_selector_matches_supported_fields(selector: str, selected: bool) -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {},
        "status": {"phase": "Running"},
    }

    assert parse_field_selector(selector, POD.field_labels).matches(pod) is selected


def test_event_field_selectors_reach_into_the_involved_object() -> None:
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p"},
        "source": {"component": "kubelet"},
    }

    selector = parse_field_selector(
        "involvedObject.kind=Pod,involvedObject.name=p,source=kubelet", EVENT.field_labels
    )

    assert selector.matches(event)


def test_unsupported_field_labels_are_rejected() -> None:
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.image"):
        parse_field_selector("spec.image=x", POD.field_labels)


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        for name, labels in {
            "a": {"app": "web", "tier": "front"},
            "b": {"app": "api"},
            "c": {"app": "db", "tier": "back"},
            "d": {},
        }.items():
            manifest = secret_manifest(name)
            manifest["metadata"]["labels"] = labels
            await kube.core.create_namespaced_secret(NS, manifest)
        yield kube


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("app=web", ["a"]),
        ("app!=web", ["b", "c", "d"]),
        ("app in (api,db)", ["b", "c"]),
        ("app notin (api,db)", ["a", "d"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b", "d"]),
        ("app,tier notin (back)", ["a", "b"]),
    ],
)
async def test_listing_filters_by_label_selector(
    kube: Kube, selector: str, names: list[str]
) -> None:
    listed = await kube.core.list_namespaced_secret(NS, label_selector=selector)

    assert [s.metadata.name for s in listed.items] == names


async def test_listing_filters_by_field_selector(kube: Kube) -> None:
    listed = await kube.core.list_namespaced_secret(NS, field_selector="metadata.name!=a")

    assert [s.metadata.name for s in listed.items] == ["b", "c", "d"]


async def test_a_malformed_selector_is_400(kube: Kube) -> None:
    with pytest.raises(ApiException) as exc:
        await kube.core.list_namespaced_secret(NS, label_selector="app in web")

    assert exc.value.status == 400


async def test_the_direct_listing_takes_a_label_selector_too(kube: Kube) -> None:
    assert [s["metadata"]["name"] for s in kube.fake.list("Secret", NS, "tier")] == ["a", "c"]
