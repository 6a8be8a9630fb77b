"""Prometheus metrics, in a registry per app so several apps (tests) never share counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.models import JobStatusEnum


class _JobsByStatus(Collector):
    def __init__(self, counts: Callable[[], dict[JobStatusEnum, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "job_scheduler_jobs", "Jobs this scheduler knows, by status", labels=["status"]
        )
        counts = self._counts()
        for status in JobStatusEnum:
            family.add_metric([status.value], counts.get(status, 0))
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "job_scheduler_http_requests",
            "HTTP requests by route template, method and status code",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "job_scheduler_http_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.watch_restarts = Counter(
            "job_scheduler_watch_restarts",
            "Watch streams restarted, by kind and reason (expired: relisted after 410 Gone)",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.api_server_errors = Counter(
            "job_scheduler_api_server_errors",
            "Failed calls to the Kubernetes API server, by where they happened",
            ["source"],
            registry=self.registry,
        )
        self.pruned = Counter(
            "job_scheduler_pruned_jobs",
            "Finished jobs deleted to keep the history limit",
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "job_scheduler_webhook_deliveries",
            "Webhook events by final outcome: delivered, failed (out of attempts, or a 3xx/4xx"
            " answer), dropped (queue full, or shut down first)",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "job_scheduler_webhook_attempts",
            "Webhook POST attempts by answer class (2xx, 3xx, 4xx, 5xx; error: no answer in time)",
            ["result"],
            registry=self.registry,
        )
        self.webhook_queue = Gauge(
            "job_scheduler_webhook_queue",
            "Webhook events waiting for their first attempt",
            registry=self.registry,
        )
        # Its value is read from the waiters when scraped (`set_function`).
        self.waiting = Gauge(
            "job_scheduler_waiting_requests",
            "GETs of a job, a batch or a batch's job waiting (?wait=) for it to end",
            registry=self.registry,
        )
        self.webhook_delivery_seconds = Histogram(
            "job_scheduler_webhook_delivery_seconds",
            "Time from queueing a webhook event to its delivery, retries included",
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
        )

    def watch_jobs(self, counts: Callable[[], dict[JobStatusEnum, int]]) -> None:
        self.registry.register(_JobsByStatus(counts))
