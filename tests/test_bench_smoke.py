"""The benchmark script still runs end to end (on a tiny scale), so it cannot rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"
SMOKE_TIMEOUT_SECONDS = 120


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 10)
def test_the_benchmark_runs_on_a_small_scale_and_prints_its_tables() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--jobs", "20", "--requests", "20"],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for header in ("measure", "p50 ms", "p95 ms", "ratio (p50)", "scheduler RSS"):
        assert header in result.stdout, result.stdout
    for row in ("GET /api/v1/jobs", "LIST typed", "POST /api/v1/jobs", "raw creates"):
        assert row in result.stdout, result.stdout
