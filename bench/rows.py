"""The pieces every report of the benchmark shares: timings and their percentiles, the ratio of
two figures, a table's row, a verdict, and the GET target."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

GET_P95_TARGET_MS = 10.0  # GET /api/v1/jobs p95, at every level and at --memory-jobs
COLUMNS = (44, 24, 24, 8, 22)  # measure, scheduler, raw, ratio, target; then the verdict


@dataclass(frozen=True)
class Timings:
    label: str
    seconds: list[float]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000

    @property
    def max_ms(self) -> float:
        return max(self.seconds) * 1000

    def to_json(self) -> dict[str, Any]:
        return {
            "count": len(self.seconds),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "max_ms": self.max_ms,
        }


def ratio(value: float, base: float) -> float:
    return value / base if base else float("inf")


def row(*cells: str) -> str:
    widths = COLUMNS
    line = "".join(f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=False))
    return (line + "".join(cells[len(widths) :])).rstrip()


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"
