"""The Kubernetes client seam: what it takes from the official client's configuration, and what
it reads of the API server's objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio import client as k8s

from scheduler.backends.kubernetes.client import parse, proxy_for
from scheduler.backends.kubernetes.records import job_record


def configuration(host: str, proxy: str | None = None) -> k8s.Configuration:
    configured = k8s.Configuration(host=host)
    configured.proxy = proxy
    return configured


@pytest.fixture(autouse=True)
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_without_proxy_settings_the_api_server_is_reached_directly() -> None:
    assert proxy_for(configuration("https://10.0.0.1:443")) is None


def test_the_environments_https_proxy_is_used_for_the_api_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert proxy_for(configuration("https://10.0.0.1:443")) == "http://proxy.corp:3128"


def test_no_proxy_exempts_the_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "kubernetes.default.svc,10.0.0.1")
    assert proxy_for(configuration("https://10.0.0.1:443")) is None
    assert proxy_for(configuration("https://kubernetes.default.svc")) is None


def test_a_proxy_in_the_kubeconfig_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    configured = configuration("https://10.0.0.1:443", proxy="http://kube-proxy:8080")
    assert proxy_for(configured) == "http://kube-proxy:8080"


REFERENCE = Path(__file__).parents[3] / "tests" / "fakekube" / "reference"


def real_watch_lines() -> list[bytes]:
    """Watch events recorded from a real kube-apiserver."""
    return [
        line
        for name in ("watch-jobs-succeeded.jsonl", "watch-pods-succeeded.jsonl")
        for line in (REFERENCE / name).read_bytes().splitlines()
        if line.strip()
    ]


def without_managed_fields(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_managed_fields(v) for k, v in value.items() if k != "managedFields"}
    if isinstance(value, list):
        return [without_managed_fields(v) for v in value]
    return value


def test_a_real_watch_event_is_read_whole_except_its_managed_fields() -> None:
    for line in real_watch_lines():
        full = json.loads(line)
        assert full["object"]["metadata"]["managedFields"], "the recording has managedFields"
        assert parse(line) == without_managed_fields(full)


def test_a_list_of_real_objects_loses_the_managed_fields_of_every_item() -> None:
    items = [json.loads(line)["object"] for line in real_watch_lines()]
    # Compact, as the API server writes it.
    listed = {"kind": "JobList", "items": items, "metadata": {"resourceVersion": "9"}}
    body = json.dumps(listed, separators=(",", ":"))
    parsed = parse(body.encode())
    assert parsed == without_managed_fields(json.loads(body))
    assert len(parsed["items"]) == len(items)


def test_an_object_shaped_otherwise_is_still_read_whole() -> None:
    # A "]" inside a string where the managed fields are: the cut would be wrong, so nothing is cut.
    odd = {"metadata": {"name": "x", "managedFields": [{"manager": "a]b"}]}, "spec": {"n": 1}}
    assert parse(json.dumps(odd, separators=(",", ":")).encode()) == odd
    plain = {"metadata": {"name": "x"}, "spec": {"list": [1, 2]}}
    assert parse(json.dumps(plain).encode()) == plain


def test_a_jobs_counts_include_the_pods_its_controller_has_named_but_not_yet_counted() -> None:
    # Current Kubernetes writes FailureTarget in the same write that names the last failed pod
    # in uncountedTerminatedPods; that pod is counted in `failed` only in the next write.
    lines = (REFERENCE / "watch-jobs-succeeded.jsonl").read_bytes().splitlines()
    job = json.loads(lines[-1])["object"]
    job["status"] = {
        "failed": 1,
        "succeeded": 0,
        "uncountedTerminatedPods": {"failed": ["uid-2"], "succeeded": []},
        "conditions": [{"type": "FailureTarget", "status": "True"}],
    }
    record = job_record(job)
    assert (record.failed, record.succeeded) == (2, 0)
