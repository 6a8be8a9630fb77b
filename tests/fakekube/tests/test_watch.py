"""Watch streams: through kubernetes.aio's Watch class and its raw `_without_preload_content`
calls, as the real API server serves them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.aio.watch import Watch

from tests.fakekube.testing import Kube, running_kube, secret_manifest

NS = "default"


@pytest.fixture
async def kube() -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05, bookmark_seconds=0.2, history_size=50) as kube:
        yield kube


async def raw_watch(kube: Kube, **params: Any) -> aiohttp.ClientResponse:
    response: aiohttp.ClientResponse = (
        await kube.core.list_namespaced_secret_without_preload_content(NS, watch=True, **params)
    )
    return response


async def next_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    line = await asyncio.wait_for(response.content.readline(), 5)
    event: dict[str, Any] = json.loads(line)
    return event


async def create_secret(kube: Kube, name: str, labels: dict[str, str] | None = None) -> str:
    manifest = secret_manifest(name)
    manifest["metadata"]["labels"] = labels or {}
    created = await kube.core.create_namespaced_secret(NS, manifest)
    return str(created.metadata.resource_version)


async def test_a_watch_without_version_starts_with_the_current_objects(kube: Kube) -> None:
    await create_secret(kube, "a")
    response = await raw_watch(kube)

    first = await next_event(response)
    await create_secret(kube, "b")
    second = await next_event(response)

    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "a")
    assert (second["type"], second["object"]["metadata"]["name"]) == ("ADDED", "b")
    response.close()


async def test_a_watch_from_an_empty_lists_version_replays_what_happened_since(
    kube: Kube,
) -> None:
    since = (await kube.core.list_namespaced_secret(NS)).metadata.resource_version
    await create_secret(kube, "a")
    await kube.core.delete_namespaced_secret("a", NS)

    response = await raw_watch(kube, resource_version=since)
    events = [await next_event(response) for _ in range(2)]

    # A real server's versions are never "0", which would mean "start from the current state".
    assert since != "0"
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("DELETED", "a"),
    ]
    response.close()


async def test_watch_events_carry_kind_and_api_version(kube: Kube) -> None:
    await create_secret(kube, "a")
    response = await raw_watch(kube)

    event = await next_event(response)

    assert (event["object"]["kind"], event["object"]["apiVersion"]) == ("Secret", "v1")
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Transfer-Encoding"] == "chunked"
    response.close()


async def test_a_watch_from_a_version_replays_only_later_events(kube: Kube) -> None:
    await create_secret(kube, "a")
    since = await create_secret(kube, "b")
    await kube.core.patch_namespaced_secret("a", NS, {"metadata": {"labels": {"x": "y"}}})
    await kube.core.delete_namespaced_secret("b", NS)

    response = await raw_watch(kube, resource_version=since)
    events = [await next_event(response) for _ in range(2)]

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ]
    deleted_version = int(events[1]["object"]["metadata"]["resourceVersion"])
    assert deleted_version == kube.fake.store.resource_version
    response.close()


async def test_a_watch_resumed_from_a_version_replays_only_its_own_namespace(kube: Kube) -> None:
    since = await create_secret(kube, "a")
    await kube.core.create_namespaced_secret("other", secret_manifest("elsewhere"))
    await create_secret(kube, "b")

    response = await raw_watch(kube, resource_version=since)
    event = await next_event(response)

    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "b")
    response.close()


async def test_the_watch_class_yields_typed_objects_and_tracks_the_version(kube: Kube) -> None:
    await create_secret(kube, "a")
    seen = []
    async with Watch() as watch:
        async for event in watch.stream(kube.core.list_namespaced_secret, NS, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 1:
                await create_secret(kube, "b")
            else:
                watch.stop()
        version = watch.resource_version

    assert seen == [("ADDED", "a"), ("ADDED", "b")]
    assert version == kube.fake.get("Secret", NS, "b")["metadata"]["resourceVersion"]


async def test_bookmarks_arrive_when_the_stream_is_quiet(kube: Kube) -> None:
    since = await create_secret(kube, "a")
    response = await raw_watch(kube, resource_version=since, allow_watch_bookmarks=True)

    event = await next_event(response)

    assert event["type"] == "BOOKMARK"
    assert event["object"]["metadata"] == {"resourceVersion": since}
    response.close()


async def test_timeout_seconds_ends_the_stream_cleanly(kube: Kube) -> None:
    seen = []
    async with Watch() as watch:
        async for event in watch.stream(kube.core.list_namespaced_secret, NS, timeout_seconds=1):
            seen.append(event)

    assert seen == []


async def test_an_expired_version_is_an_error_event_in_a_200_stream(kube: Kube) -> None:
    since = await create_secret(kube, "a")
    await create_secret(kube, "b")
    kube.fake.expire_history()

    response = await raw_watch(kube, resource_version=since)
    event = await next_event(response)

    assert response.status == 200
    assert event["type"] == "ERROR"
    current = kube.fake.store.resource_version
    assert event["object"] == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: {since} ({current})",
        "reason": "Expired",
        "code": 410,
    }
    assert await response.content.readline() == b""
    response.close()


async def test_the_watch_class_raises_410_for_an_expired_version(kube: Kube) -> None:
    since = await create_secret(kube, "a")
    await create_secret(kube, "b")
    kube.fake.expire_history()

    with pytest.raises(ApiException) as exc:
        async with Watch() as watch:
            async for _ in watch.stream(
                kube.core.list_namespaced_secret, NS, resource_version=since, timeout_seconds=5
            ):
                pass

    assert exc.value.status == 410
    assert "Expired: too old resource version" in exc.value.reason


async def test_a_watch_from_the_current_version_survives_expiry(kube: Kube) -> None:
    since = await create_secret(kube, "a")
    kube.fake.expire_history()

    response = await raw_watch(kube, resource_version=since)
    await create_secret(kube, "b")

    assert (await next_event(response))["type"] == "ADDED"
    response.close()


async def test_history_size_bounds_how_far_back_a_watch_can_resume(kube: Kube) -> None:
    since = await create_secret(kube, "first")
    for index in range(51):  # the 51st evicts the first event after `since`
        await create_secret(kube, f"s{index}")

    response = await raw_watch(kube, resource_version=since)

    assert (await next_event(response))["type"] == "ERROR"
    response.close()


async def test_a_selected_watch_sees_objects_enter_and_leave_the_selection(kube: Kube) -> None:
    since = await create_secret(kube, "a")
    response = await raw_watch(kube, resource_version=since, label_selector="team=blue")

    await kube.core.patch_namespaced_secret("a", NS, {"metadata": {"labels": {"team": "blue"}}})
    await kube.core.patch_namespaced_secret("a", NS, {"metadata": {"labels": {"team": "red"}}})
    await create_secret(kube, "b", {"team": "red"})
    await create_secret(kube, "c", {"team": "blue"})
    events = [await next_event(response) for _ in range(3)]

    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "a"),
        ("DELETED", "a"),
        ("ADDED", "c"),
    ]
    response.close()


async def test_dropped_watches_break_the_client_stream(kube: Kube) -> None:
    await create_secret(kube, "a")
    response = await raw_watch(kube)
    await next_event(response)

    await kube.fake.drop_watches()

    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(response.content.readline(), 5)
    assert kube.fake.open_watches == 0
    response.close()


async def test_the_watch_class_resumes_after_a_clean_end_of_stream(kube: Kube) -> None:
    await create_secret(kube, "a")
    seen: list[str] = []
    async with Watch() as watch:
        async for event in watch.stream(kube.core.list_namespaced_secret, NS):
            seen.append(event["object"].metadata.name)
            if event["object"].metadata.name == "a":
                await kube.fake.drop_watches(abrupt=False)
                await create_secret(kube, "b")
            else:
                watch.stop()

    assert seen == ["a", "b"]


async def test_the_watch_class_retries_an_expired_version_once_then_raises(kube: Kube) -> None:
    since = await create_secret(kube, "a")
    await create_secret(kube, "b")
    kube.fake.expire_history()
    kube.fake.clear_audit()

    with pytest.raises(ApiException) as exc:
        async with Watch() as watch:
            async for _ in watch.stream(
                kube.core.list_namespaced_secret, NS, resource_version=since
            ):
                pass

    assert exc.value.status == 410
    assert [entry.verb for entry in kube.fake.audit] == ["watch", "watch"]


async def test_a_watch_across_namespaces_sees_every_namespace(kube: Kube) -> None:
    await kube.core.create_namespaced_secret("other", secret_manifest("x"))
    await create_secret(kube, "a")
    names = []
    async with Watch() as watch:
        async for event in watch.stream(
            kube.core.list_secret_for_all_namespaces, timeout_seconds=1
        ):
            names.append((event["object"].metadata.namespace, event["object"].metadata.name))
            if len(names) == 2:
                watch.stop()

    assert names == [("default", "a"), ("other", "x")]
