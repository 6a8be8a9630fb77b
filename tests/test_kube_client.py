"""The Kubernetes client seam: what it takes from the official client's configuration."""

from __future__ import annotations

import pytest
from kubernetes.aio import client as k8s

from scheduler.backends.kubernetes.client import proxy_for


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
