"""The timeline page's summary charts against a live scheduler on the local backend: the jobs
started and ended per interval (stacked by status), the durations with p50 and p95, and the
failure reasons ranked all count what the API lists for the same window, in the pictures and in
the words and tables beside them."""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.browser.conftest import Scheduler, screenshot, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

if skip_reason() is None:
    from playwright.sync_api import expect

Page = Any
OUTCOME = {"Succeeded": "succeeded", "Failed": "failed", "Stopped": "stopped", "Running": "running"}


def ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


def iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp / 1000, UTC).isoformat().replace("+00:00", "Z")


def settled(
    live: Scheduler, names: list[str], running: tuple[str, ...] = (), timeout: float = 40.0
) -> list[dict[str, Any]]:
    """The jobs once those `running` run and every other has ended, as the API lists them."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = [live.api("GET", f"/jobs/{name}")[1] for name in names]
        if all(
            job["status"] == "Running" if job["name"] in running else job.get("ended")
            for job in jobs
        ):
            return jobs
        assert time.monotonic() < deadline, [job["status"] for job in jobs]
        time.sleep(0.2)


def seconds(milliseconds: float) -> int:
    """Whole seconds as the console rounds them (JavaScript's Math.round: halves go up)."""
    return math.floor(milliseconds / 1000 + 0.5)


def drawn_counts(page: Page, chart: str) -> Counter[str]:
    """The counts the columns of a chart stand for, by outcome."""
    pairs = page.locator(f"rect.col[data-chart='{chart}']").evaluate_all(
        "(rects) => rects.map((r) => [r.dataset.outcome, Number(r.dataset.count)])"
    )
    counts: Counter[str] = Counter()
    for outcome, count in pairs:
        counts[outcome] += count
    return counts


def drawn_as_listed(page: Page, chart: str, listed: Counter[str]) -> None:
    deadline = time.monotonic() + 10
    while (drawn := drawn_counts(page, chart)) != listed:
        assert time.monotonic() < deadline, (chart, drawn, listed)
        time.sleep(0.1)


def test_the_charts_count_what_the_api_lists_for_the_window(live: Scheduler, page: Page) -> None:
    def start(sleep: int, code: int = 0) -> str:
        body = {"backoffLimit": 0, "variables": {"SLEEP": str(sleep), "EXIT": str(code)}}
        return live.job(body)["name"]

    names = [start(1), start(2), start(2), start(3), start(1, 3), start(1, 3), start(1, 4)]
    stopped = start(60)
    running = start(60)
    names += [stopped, running]
    settled(live, [running, stopped], running=(running, stopped))
    assert live.api("POST", f"/jobs/{stopped}/stop")[0] == 200
    # The stop is seen once the stopped job has ended too.
    jobs = settled(live, names, running=(running,))
    window_start = min(ms(job["created"]) for job in jobs) - 5000
    window_end = ms(jobs[-1]["started"]) + 60_000

    page.goto(f"{live.url}/console/#/timeline?from={iso(window_start)}&to={iso(window_end)}")
    expect(page.locator("#timeline-summary")).to_contain_text("9 jobs")

    started = Counter(OUTCOME[job["status"]] for job in jobs if job.get("started"))
    ended = Counter(OUTCOME[job["status"]] for job in jobs if job.get("ended"))
    assert (sum(started.values()), sum(ended.values())) == (9, 8)
    # The page may draw a moment before the last status change reaches it.
    drawn_as_listed(page, "started", started)
    drawn_as_listed(page, "ended", ended)
    expect(page.locator("#chart-started .chart-summary")).to_have_text(
        "9 jobs started in the window: 4 succeeded, 3 failed, 1 stopped, 1 running "
        "(by status now), per 5 s."
    )
    # Every column is as tall as its count: one height per job, throughout (in the picture's
    # units: a bounding box would count the outline's stroke in, once a column).
    heights = page.locator("rect.col[data-chart='started']").evaluate_all(
        "(rects) => rects.map((r) => Number(r.getAttribute('height')) / Number(r.dataset.count))"
    )
    assert max(heights) - min(heights) < 0.5, heights
    page.get_by_text("Jobs ended per interval as a table").click()
    totals = page.locator("#table-ended tbody td:last-child").all_text_contents()
    assert sum(int(total) for total in totals) == 8

    durations = sorted(ms(job["ended"]) - ms(job["started"]) for job in jobs if job.get("ended"))
    p50 = durations[math.ceil(0.5 * len(durations)) - 1]
    p95 = durations[math.ceil(0.95 * len(durations)) - 1]
    expect(page.locator("[data-mark='p50']")).to_have_attribute("data-ms", str(int(p50)))
    expect(page.locator("[data-mark='p95']")).to_have_attribute("data-ms", str(int(p95)))
    expect(page.locator("#chart-durations .chart-summary")).to_contain_text(
        f"8 jobs ended in the window, taking {seconds(durations[0])} s to "
        f"{seconds(durations[-1])} s: p50 (the median) {seconds(p50)} s, "
        f"p95 {seconds(p95)} s."
    )
    binned = page.locator("rect.col[data-chart='durations']").evaluate_all(
        "(rects) => rects.reduce((n, r) => n + Number(r.dataset.count), 0)"
    )
    assert binned == 8

    reasons = page.locator("#chart-reasons ol.reasons li")
    expect(reasons).to_have_count(2)
    expect(reasons.nth(0)).to_contain_text("Exit code 3")
    expect(reasons.nth(0)).to_have_attribute("data-count", "2")
    expect(reasons.nth(1)).to_contain_text("Exit code 4")
    expect(reasons.nth(1)).to_have_attribute("data-count", "1")
    expect(page.locator("#chart-reasons .chart-summary")).to_have_text(
        "3 jobs failed in the window, for 2 reasons; the most common: Exit code 3 (2)."
    )
    page.locator("#charts-heading").scroll_into_view_if_needed()
    screenshot(page, "charts")
