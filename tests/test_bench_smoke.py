"""The benchmark script still runs end to end (on a tiny scale), so it cannot rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"
SMOKE_TIMEOUT_SECONDS = 120
SMOKE_ARGS = ["--jobs", "20", "--requests", "20", "--batch-jobs", "5", "--batch-rounds", "1"]


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 10)
def test_the_benchmark_runs_on_a_small_scale_and_prints_its_tables() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), *SMOKE_ARGS],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    headers = ("measure", "p50 ms", "p95 ms", "batch of 5 jobs, 1 round", "median ms", "max ms")
    for header in (*headers, "ratio (p50)", "scheduler RSS"):
        assert header in result.stdout, result.stdout
    rows = ("GET /api/v1/jobs", "LIST typed", "POST /api/v1/jobs", "raw creates")
    for row in (*rows, "POST /api/v1/batches", "jobs in flight", "POST batch / raw creates"):
        assert row in result.stdout, result.stdout
