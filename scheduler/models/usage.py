"""What a job's attempts really used, as `GET .../usage` answers it (our addition), and the
Kubernetes quantities ("500m", "2Gi", "1234567n") its figures are compared with."""

from __future__ import annotations

import re

from pydantic import Field

from scheduler.models.wire import Int32, Int64, Wire

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][-+]?[0-9]+|[a-zA-Z]*)$")
_SUFFIXES = {
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "": 1.0,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}


def quantity(text: str) -> float | None:
    """A Kubernetes quantity's value: cores for a cpu ("250m" is 0.25, "1234567n" some 1.2
    millicores), bytes for memory ("2Gi", "123456Ki"); None when it is not one."""
    found = _QUANTITY.match(text.strip())
    if found is None:
        return None
    number, suffix = found.groups()
    if suffix[:1] in ("e", "E") and suffix[1:].lstrip("+-").isdigit():
        return float(number + suffix)
    scale = _SUFFIXES.get(suffix)
    return None if scale is None else float(number) * scale


class AttemptUsage(Wire):
    """AttemptUsage is what one attempt (pod) of a job used, next to what it asked for. Figures
    that are not known are null, never zero: `available` is false and `reason` says why."""

    pod_index: Int64 = Field(
        alias="podIndex", description="The attempt's podIndex, as in the job's podStatuses"
    )
    name: str = Field(description="The attempt's pod name, as in the job's podStatuses")
    available: bool = Field(description="Whether the figures are known")
    reason: str | None = Field(
        default=None, description="Why the figures are not known (when available is false)"
    )
    peak_memory_bytes: Int64 | None = Field(
        default=None,
        alias="peakMemoryBytes",
        description="The most memory it was seen to hold at once, in bytes: on Kubernetes the "
        "container's working set as the metrics API sampled it, on the local backend the "
        "resident memory of its process tree",
    )
    cpu_seconds: float | None = Field(
        default=None,
        alias="cpuSeconds",
        description="The CPU time it took, in seconds (so far, while it runs)",
    )
    cpu_estimated: bool | None = Field(
        default=None,
        alias="cpuEstimated",
        description="True when cpuSeconds adds up sampled rates (Kubernetes' metrics API gives "
        "current usage only) rather than the kernel's count",
    )
    samples: Int32 | None = Field(default=None, description="How many times it was measured")
    requests: dict[str, str] | None = Field(
        default=None, description="What the job requests (cpu, memory), as given"
    )
    limits: dict[str, str] | None = Field(
        default=None, description="The job's limits (cpu, memory), as given"
    )
    hint: str = Field(
        description="The figures in words",
        examples=["peak 410 MiB of a 2 GiB limit; 12.3 CPU seconds in 40 s, 0.31 CPU on average"],
    )


class JobUsage(Wire):
    """JobUsage is what each attempt of a job used: peak memory and CPU time, next to the job's
    requests and limits."""

    name: str = Field(description="Name of the job", examples=["compute-20210407105556-rkwaibwe"])
    source: str = Field(description="How the figures are taken, in words")
    attempts: list[AttemptUsage] = Field(
        description="Each attempt, in the order of the job's podStatuses"
    )
