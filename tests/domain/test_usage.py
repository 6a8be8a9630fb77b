"""What an attempt used, in figures and words (pure): quantities as Kubernetes writes them, sizes
and durations as the hints write them, the hint itself, figures from several looks as one, and
why there are none."""

from __future__ import annotations

import dataclasses

import pytest

from scheduler.backends.base import ContainerState, Usage, UsageReport
from scheduler.domain.usage import (
    NOT_STARTED,
    duration_text,
    figures,
    hint,
    size_text,
    unavailable_reason,
)
from scheduler.models.usage import quantity
from tests.factories import POD_RECORD, at, pod_record

MIB = 1024 * 1024
GIB = 1024 * MIB
REPORT = UsageReport(requests={}, limits={}, live={}, source="a sampler, every 15 s")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", 0.25),
        ("1234567n", 0.001234567),
        ("1", 1.0),
        ("0.5", 0.5),
        ("2Gi", 2.0 * GIB),
        ("123456Ki", 123456 * 1024.0),
        ("1.5G", 1.5e9),
        ("1e3", 1000.0),
        ("lots", None),
        ("", None),
        ("5Zi", None),
    ],
)
def test_a_quantity_is_read_as_kubernetes_reads_it(text: str, value: float | None) -> None:
    expected = None if value is None else pytest.approx(value)
    assert quantity(text) == expected


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1536, "1.5 KiB"),
        (410 * MIB, "410 MiB"),
        (2 * GIB, "2 GiB"),
        (2e9, "1.9 GiB"),
    ],
)
def test_sizes_are_written_in_binary_units(size: float, text: str) -> None:
    assert size_text(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.62, "0.6 s"), (40.4, "40 s"), (125, "2 min 5 s"), (3780, "1 h 3 min")],
)
def test_durations_are_written_as_a_person_says_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


USED = Usage(peak_memory_bytes=410 * MIB, cpu_seconds=12.3, samples=40)


@pytest.mark.parametrize(
    ("usage", "requests", "limits", "seconds_run", "running", "text"),
    [
        (
            USED,
            {"memory": "1Gi"},
            {"memory": "2Gi", "cpu": "1"},
            40.0,
            False,
            "peak 410 MiB of a 2 GiB limit; 12.3 CPU seconds in 40 s, 0.31 CPU on average of "
            "a 1 CPU limit",
        ),
        (
            USED,
            {"memory": "256Mi"},
            {},
            40.0,
            False,
            "peak 410 MiB, 256 MiB requested, no limit; 12.3 CPU seconds in 40 s, 0.31 CPU on "
            "average",
        ),
        (USED, {}, {}, None, False, "peak 410 MiB, no memory limit; 12.3 CPU seconds"),
        (
            dataclasses.replace(USED, estimated=True, samples=3),
            {},
            {"cpu": "500m"},
            45.0,
            True,
            "so far: peak 410 MiB, no memory limit; about 12.3 CPU seconds in 45 s, 0.27 CPU on "
            "average of a 0.5 CPU limit (estimated from 3 samples)",
        ),
        (
            Usage(3 * MIB, 0.0, 5),
            {},
            {},
            1.3,
            False,
            "peak 3 MiB, no memory limit; under 0.01 CPU seconds in 1.3 s, under 0.01 CPU on "
            "average",
        ),
    ],
)
def test_the_hint_says_the_figures_against_what_was_asked_for(
    usage: Usage,
    requests: dict[str, str],
    limits: dict[str, str],
    seconds_run: float | None,
    running: bool,
    text: str,
) -> None:
    assert (
        hint(usage, requests=requests, limits=limits, seconds_run=seconds_run, running=running)
        == text
    )


def test_several_looks_at_one_attempt_are_one_with_the_larger_of_each_figure() -> None:
    recorded = Usage(100 * MIB, 5.0, 3, estimated=True)
    kept = Usage(120 * MIB, 4.0, 2, estimated=True)
    live = Usage(90 * MIB, 6.0, 4, estimated=True)
    pod = pod_record(usage=recorded)
    assert figures(pod, {pod.name: kept}, {pod.name: live}) == Usage(
        120 * MIB, 6.0, 4, estimated=True
    )
    assert figures(POD_RECORD, {}, {}) is None


RUNNING = pod_record(phase="Running", container=ContainerState("running", started_at=at(2)))
ENDED = pod_record(
    phase="Succeeded",
    container=ContainerState("terminated", exit_code=0, started_at=at(2), finished_at=at(3)),
)


def test_why_there_are_no_figures_depends_on_the_attempt_and_the_backend() -> None:
    assert unavailable_reason(POD_RECORD, REPORT) == NOT_STARTED
    assert unavailable_reason(RUNNING, REPORT) == (
        "no sample yet; figures come from a sampler, every 15 s"
    )
    assert unavailable_reason(ENDED, REPORT) == (
        "no sample was taken while it ran (too briefly, or before this scheduler saw it); "
        "figures come from a sampler, every 15 s"
    )
    refused = dataclasses.replace(REPORT, unavailable="no metrics API")
    assert unavailable_reason(ENDED, refused) == "no metrics API"
    # One that has not started has no figures to be had anywhere.
    assert unavailable_reason(POD_RECORD, refused) == NOT_STARTED
