"""The benchmark script still runs end to end (on a tiny scale), so it cannot rot unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench.py"
SMOKE_TIMEOUT_SECONDS = 120
SMOKE_ARGS = [
    "--requests", "10", "--burst", "20", "--burst-rounds", "2", "--get-levels", "40,60",
    "--memory-jobs", "200", "--batch-jobs", "5", "--batch-rounds", "1",
]  # fmt: skip


@pytest.mark.timeout(SMOKE_TIMEOUT_SECONDS + 10)
def test_the_benchmark_runs_on_a_small_scale_and_prints_its_tables(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), *SMOKE_ARGS, "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table, _, details = result.stdout.partition("\ndetails\n")
    for header in ("measure", "scheduler", "raw", "ratio", "target", "verdict"):
        assert header in table, result.stdout
    rows = [
        "POST /api/v1/jobs p50",
        "20 POSTs, 64 in flight",
        "scheduler CPU per job in the burst",
        "batch of 5 jobs, wall time",
        "GET /api/v1/jobs p50 / p95, 40 jobs",
        "GET /api/v1/jobs p50 / p95, 60 jobs",
        "GET /api/v1/jobs p50 / p95, 200 jobs",
        "RSS idle",
        "RSS +40 running jobs",
        "RSS at 200 jobs",
    ]
    lines = table.splitlines()
    for row in rows:
        [line] = [line for line in lines if line.startswith(row)]
        assert line.endswith((" MET", " NOT MET")), line
    # The POST, the burst and the batch are measured against the raw crash-safe calls, with the
    # raw triples beside them for reference.
    assert "raw crash-safe calls" in lines[2], result.stdout
    references = [line for line in lines if line.startswith("  raw triples")]
    assert len(references) == 3, result.stdout
    assert all(line.endswith("(reference)") for line in references), references
    [line] = [line for line in lines if line.startswith("  scheduler peak RSS during the batches")]
    assert line.endswith("(information)"), line
    assert "CPU ms per job during each side's median burst" in details, result.stdout
    assert "peak (VmHWM)" in details, result.stdout

    # What attempt records cost: the same ended jobs with the records on and off.
    for side in ("records on", "records off"):
        [line] = [line for line in lines if line.startswith(f"API calls per ended job, {side}")]
        assert line.endswith("(information)"), line
        for row in (f"GET p50 / p95, 200 ended, {side}", f"RSS at 200 ended jobs, {side}"):
            [line] = [line for line in lines if line.startswith(row)]
            assert line.endswith((" MET", " NOT MET")), line

    document = json.loads(figures.read_text())
    assert set(document["verdicts"]) == {
        "post", "burst", "cpu_per_job", "batch", "get_40", "get_60", "get_memory",
        "rss_idle", "rss_delta", "rss_memory",
    }  # fmt: skip
    # Each side's median round made all its jobs, without an error.
    for measure, jobs in (("burst", 20), ("batch", 5)):
        for side in ("scheduler", "crash_safe", "triple"):
            median = document[measure][side]["median"]
            assert (median["requests"], median["errors"]) == (jobs, 0), (measure, side, median)
            assert len(document[measure][side]["rounds_jobs_per_second"]) == (
                2 if measure == "burst" else 1
            )
    burst_cpu = document["burst"]["scheduler"]["median"]["cpu_ms_per_job"]
    assert set(burst_cpu) == {"scheduler", "API server"}
    assert document["cpu_per_job"]["scheduler_ms"] > 0
    assert 0 < document["batch"]["scheduler_peak_rss_mib"] <= document["rss"]["peak_mib"]
    assert [level["jobs"] for level in document["get"]["levels"]] == [40, 60]
    assert document["get"]["memory"]["jobs"] == 200
    assert document["rss"]["memory_jobs"] == 200
    assert document["rss"]["chart_limit_mib"] > 0
    # Every object the run created was deleted at the end.
    assert "deleted in bench:" in result.stderr, result.stderr
