"""The console's timeline against a live scheduler on the local backend, jobs of known length:
each attempt's bar starts and ends where the API's `startTime` and `endTime` say (relative to
the others), a batch's jobs sit under their batch, a live bar grows to the "now" line until its
attempt ends, hovering tells times, exit code and message and a click opens the job; a thousand
jobs draw quickly in rows that stay readable. A job's page tells what was asked and when and why.
Screenshots go to test-output/console/ (and, with SCHEDULER_DOCS_SCREENSHOTS=1, the README's to
docs/console-timeline.png)."""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.browser.conftest import ROOT, Scheduler, screenshot, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

if skip_reason() is None:
    from playwright.sync_api import expect

Page = Any
# A bar's edges against the API's times: a pixel and a half (whole-second times, fractional px).
TOLERANCE_PX = 1.5
# Drawing the timeline of 1,000 jobs once (rows, bars, summary and charts); tens of ms on a laptop.
RENDER_BUDGET_MS = 1000
DOCS_SCREENSHOT = ROOT / "docs" / "console-timeline.png"


def seconds(milliseconds: float) -> int:
    """Whole seconds as the console rounds them (JavaScript's Math.round: halves go up)."""
    return math.floor(milliseconds / 1000 + 0.5)


def ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000


def iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp / 1000, UTC).isoformat().replace("+00:00", "Z")


def ended(live: Scheduler, path: str, timeout: float = 30.0) -> dict[str, Any]:
    """The job or batch at `path` once it has ended, as the API shows it."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = live.api("GET", path)[1]
        if status.get("ended"):
            return status
        assert time.monotonic() < deadline, f"{path} did not end"
        time.sleep(0.2)


def timeline_of(live: Scheduler, start: float, end: float) -> str:
    return f"{live.url}/console/#/timeline?from={iso(start)}&to={iso(end)}"


def bar(page: Page, job: str, attempt: int) -> Any:
    return page.locator(f"rect.bar[data-job='{job}'][data-attempt='{attempt}']")


def box(page: Page, job: str, attempt: int) -> dict[str, float]:
    """Where the bar is drawn, in the picture's own units: its outline's stroke, which a
    bounding box counts in, would make a short bar look relatively longer."""
    found = bar(page, job, attempt)
    expect(found).to_have_count(1)
    return {key: float(found.get_attribute(key) or "nan") for key in ("x", "width")}


def attempts(jobs: list[dict[str, Any]]) -> list[tuple[str, int, float, float]]:
    """(job, attempt, start ms, end ms) of every attempt of `jobs`."""
    return [
        (job["name"], pod["podIndex"], ms(pod["startTime"]), ms(pod["endTime"]))
        for job in jobs
        for pod in job["podStatuses"]
    ]


def test_each_bar_starts_and_ends_where_the_api_says_with_a_batch_s_jobs_grouped(
    live: Scheduler, page: Page
) -> None:
    created = [
        live.job({"jobId": "one-second", "variables": {"SLEEP": "1"}}),
        live.job({"jobId": "four-seconds", "variables": {"SLEEP": "4"}}),
        live.job(
            {"jobId": "twice-failing", "backoffLimit": 1, "variables": {"SLEEP": "1", "EXIT": "3"}}
        ),
    ]
    code, batch = live.api(
        "POST",
        "/batches",
        {
            "batchId": "pair",
            "jobScheduleDescriptions": [
                {"jobId": "first", "variables": {"SLEEP": "2"}},
                {"jobId": "second", "variables": {"SLEEP": "3"}},
            ],
        },
    )
    assert code == 200, batch
    jobs = [ended(live, f"/jobs/{job['name']}") for job in created]
    batch = ended(live, f"/batches/{batch['name']}")
    jobs += batch["jobStatuses"]
    start = min(ms(job["created"]) for job in jobs) - 3000
    end = max(ms(job["ended"]) for job in jobs) + 3000

    page.goto(timeline_of(live, start, end))
    drawn = attempts(jobs)
    assert len(drawn) == 6
    for name, attempt, _, _ in drawn:
        expect(bar(page, name, attempt)).to_be_visible()
    # The scale of the picture, from the longest attempt: pixels per millisecond.
    ref_name, ref_attempt, ref_start, ref_end = max(drawn, key=lambda a: a[3] - a[2])
    ref = box(page, ref_name, ref_attempt)
    px_per_ms = ref["width"] / (ref_end - ref_start)
    assert px_per_ms > 0.01, "the window is too wide for a test in pixels"
    for name, attempt, attempt_start, attempt_end in drawn:
        drawn_box = box(page, name, attempt)
        assert drawn_box["x"] == pytest.approx(
            ref["x"] + (attempt_start - ref_start) * px_per_ms, abs=TOLERANCE_PX
        ), (name, attempt)
        assert drawn_box["width"] == pytest.approx(
            (attempt_end - attempt_start) * px_per_ms, abs=TOLERANCE_PX
        ), (name, attempt)

    failing = jobs[2]["name"]
    for attempt in (0, 1):
        expect(bar(page, failing, attempt)).to_have_attribute("data-outcome", "failed")
        expect(bar(page, failing, attempt)).to_have_attribute("fill", "url(#fill-failed)")
    expect(bar(page, jobs[0]["name"], 0)).to_have_attribute("fill", "url(#fill-succeeded)")
    # The batch's row, then its two jobs right under it.
    labels = page.locator(".timeline-rows text.label")
    texts = labels.all_text_contents()
    at = texts.index("Batch pair")
    assert texts[at + 1 : at + 3] == ["first", "second"], texts
    expect(page.locator("#timeline-summary")).to_have_text(
        re.compile(r"^5 jobs with 6 attempts from .*: 4 succeeded, 2 failed\.$")
    )
    page.get_by_text("The timeline as a table").click()
    expect(page.locator("#timeline-table tbody tr")).to_have_count(6)
    screenshot(page, "timeline")
    if os.environ.get("SCHEDULER_DOCS_SCREENSHOTS") == "1":
        page.get_by_text("The timeline as a table").click()
        page.locator("main").screenshot(path=str(DOCS_SCREENSHOT))


def test_a_running_attempt_s_bar_grows_to_now_until_it_ends(live: Scheduler, page: Page) -> None:
    reference = ended(live, f"/jobs/{live.job({'variables': {'SLEEP': '1'}})['name']}")
    name = live.job({"jobId": "growing", "variables": {"SLEEP": "6"}})["name"]
    start = ms(reference["created"]) - 2000
    page.goto(timeline_of(live, start, start + 30_000))

    growing = bar(page, name, 0)
    expect(growing).to_have_attribute("data-live", "")
    first = box(page, name, 0)["width"]
    page.wait_for_function(
        """([name, first]) => {
            const bar = document.querySelector(`rect.bar[data-job='${name}'][data-attempt='0']`);
            return bar && bar.getBoundingClientRect().width > first + 20;
        }""",
        arg=[name, first],
    )
    # A live bar ends at the "now" line, which moves on with the clock.
    live_box = box(page, name, 0)
    now_x = float(page.locator("line.now").get_attribute("x1") or "nan")
    if growing.get_attribute("data-live") == "":
        assert live_box["x"] + live_box["width"] == pytest.approx(now_x, abs=TOLERANCE_PX)

    job = ended(live, f"/jobs/{name}")
    expect(growing).not_to_have_attribute("data-live", "")
    ref_pod, pod = reference["podStatuses"][0], job["podStatuses"][0]
    # Both bars are read at once: the scale changes when the page grows a scrollbar.
    deadline = time.monotonic() + 10
    while True:
        ref, final = box(page, reference["name"], 0), box(page, name, 0)
        px_per_ms = ref["width"] / (ms(ref_pod["endTime"]) - ms(ref_pod["startTime"]))
        width = (ms(pod["endTime"]) - ms(pod["startTime"])) * px_per_ms
        if abs(final["width"] - width) <= TOLERANCE_PX:
            break
        assert time.monotonic() < deadline, (final, width)
        time.sleep(0.1)
    assert final["x"] == pytest.approx(
        ref["x"] + (ms(pod["startTime"]) - ms(ref_pod["startTime"])) * px_per_ms,
        abs=TOLERANCE_PX,
    )
    assert final["width"] == pytest.approx(
        (ms(pod["endTime"]) - ms(pod["startTime"])) * px_per_ms, abs=TOLERANCE_PX
    )
    assert final["width"] > first


def test_hovering_a_bar_tells_its_times_exit_code_and_message_and_a_click_opens_the_job(
    live: Scheduler, page: Page
) -> None:
    name = live.job({"jobId": "hover-me", "variables": {"SLEEP": "1", "EXIT": "7"}})["name"]
    job = ended(live, f"/jobs/{name}")
    pod = job["podStatuses"][0]
    start = ms(job["created"]) - 2000
    page.goto(timeline_of(live, start, start + 10_000))

    bar(page, name, 0).hover()
    tip = page.get_by_role("tooltip")
    expect(tip).to_be_visible()
    expect(tip).to_contain_text(name)
    expect(tip).to_contain_text("Attempt 0: Failed")
    expect(tip).to_contain_text("Exit code 7")
    expect(tip).to_contain_text(pod["statusMessage"])
    took = seconds(ms(pod["endTime"]) - ms(pod["startTime"]))
    # The attempt's start and end in the browser's local time, and how long it took.
    started, stopped = page.evaluate(
        "(times) => times.map((t) => new Date(t).toTimeString().slice(0, 8))",
        [pod["startTime"], pod["endTime"]],
    )
    expect(tip).to_contain_text(re.compile(rf"{started} \u2013 \S+ {stopped} \({took} s\)"))
    bar(page, name, 0).click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{name}$"))
    expect(page.locator(".title .badge")).to_have_text("Failed")


def test_a_job_page_tells_what_was_asked_and_when_and_why(live: Scheduler, page: Page) -> None:
    start_after = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    begin = start_after.isoformat().replace("+00:00", "Z")
    name = live.job(
        {
            "jobId": "told",
            "startAfter": begin,
            "timeLimitSeconds": 3600,
            "backoffLimit": 1,
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}},
            "variables": {"SLEEP": "1", "EXIT": "2", "SECRET_LOOKING": "hunter2"},
            "payload": "do not show me",
        }
    )["name"]
    job = ended(live, f"/jobs/{name}")
    # Opened once the job has ended: why it waited is what the job keeps, not what this page saw.
    page.goto(f"{live.url}/console/#/jobs/{name}")
    why = page.locator("#why-waited")
    expect(why).to_contain_text("Asked to start after")
    waited = job["podStatuses"][0]["waited"]
    expect(why.locator("li[data-attempt]")).to_have_text(
        [f"Attempt 0 waited {waited['seconds']} s: Held: starts at {begin}"]
    )

    asked = page.locator("#asked")
    expect(asked).to_contain_text("busybox:1.36")
    expect(asked).to_contain_text("cpu 100m")
    expect(asked).to_contain_text("memory 256Mi")
    expect(asked).to_contain_text("3,600 s (1 h)")
    expect(asked).to_contain_text("1 retry")
    expect(asked).to_contain_text("SECRET_LOOKING")
    expect(asked).to_contain_text("given (not shown)")
    # (The job's own log prints its payload: that is the job's doing.)
    expect(asked).not_to_contain_text("hunter2")
    expect(asked).not_to_contain_text("do not show me")

    pods = job["podStatuses"]
    told = []
    for index, (before, pod) in enumerate(
        zip([job["created"], *(p["endTime"] for p in pods[:-1])], pods, strict=True)
    ):
        waited = seconds(ms(pod["startTime"]) - ms(before))
        if waited:
            told.append(f"waited {waited} s")
        took = seconds(ms(pod["endTime"]) - ms(pod["startTime"]))
        told.append(f"attempt {index} failed after {took} s (exit code 2)")
    story = "; then ".join(told)
    expect(page.locator("#story")).to_have_text(f"{story[0].upper()}{story[1:]}.")
    picture = page.locator(".job-timeline svg")
    expect(picture.locator("rect.bar")).to_have_count(2)
    expect(picture).to_have_attribute("aria-label", page.locator("#story").inner_text())
    screenshot(page, "job-story")


def test_a_thousand_jobs_draw_quickly_in_rows_that_stay_readable(
    scheduler_factory: Callable[..., Scheduler], page: Page
) -> None:
    # One runs at a time and each sleeps long: 999 of them stay Waiting.
    own = scheduler_factory("--max-parallel", "1")
    for index in range(1000):
        own.job({"jobId": f"bulk-{index:04}", "variables": {"SLEEP": "120"}})
    page.goto(f"{own.url}/console/#/")
    expect(page.locator("#summary")).to_contain_text("of 1000")

    took = page.evaluate(
        """() => {
            const started = performance.now();
            history.replaceState(null, "", "#/timeline?last=hour");
            window.dispatchEvent(new HashChangeEvent("hashchange"));
            return performance.now() - started;
        }"""
    )
    assert took < RENDER_BUDGET_MS, f"drawing 1,000 jobs took {took:.0f} ms"
    labels = page.locator(".timeline-rows text.label")
    expect(labels).to_have_count(1000)
    expect(page.locator("#timeline-summary")).to_have_text(
        re.compile(r"^1000 jobs with 1 attempt from .*: 1 running\.$")
    )
    tops = page.evaluate(
        """() => [...document.querySelectorAll('.timeline-rows text.label')].slice(0, 3)
            .map((t) => t.getBoundingClientRect().top)"""
    )
    assert tops[1] - tops[0] >= 20 and tops[2] - tops[1] >= 20, tops
    assert (
        page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('.timeline .label')).fontSize)"
        )
        >= 12
    )
    # The rows scroll under the axis, which stays in sight.
    rows = page.locator(".timeline-rows")
    rows.evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
    expect(labels.last).to_be_in_viewport()
    expect(page.locator(".timeline-axis")).to_be_in_viewport()
    assert labels.last.text_content() == "bulk-0000"  # newest first
    screenshot(page, "timeline-1000")
