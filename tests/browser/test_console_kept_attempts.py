"""The console on the Kubernetes backend (the fake API server and the scheduler each a process of
its own) shows what a job's record keeps of an attempt whose pod is gone: a stopped job's attempt,
Stopped, with its whole log from the record; a log whose start the record did not keep, with a
line above it saying so; and a log that was not kept at all, with the API's words for why.
Screenshots go to test-output/console/."""

from __future__ import annotations

import shlex
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import (
    KubeScheduler,
    screenshot,
    serious_accessibility_violations,
    skip_reason,
)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

if skip_reason() is None:
    from playwright.sync_api import expect

Page = Any
Factory = Callable[..., KubeScheduler]
# The least the record may keep of an attempt's log (SCHEDULER_ATTEMPT_LOG_BYTES); the job's log
# is about three times as long.
SMALL_LOG_BYTES = 1024
LINES = [f"line {n:02} of a job that runs until it is stopped" for n in range(1, 61)]
# It prints its lines and sleeps (3 minutes on the fake's clock, 20x fast) until it is stopped.
SCRIPT = "; ".join([*(f"echo {shlex.quote(line)}" for line in LINES), "sleep 3600"])
LOG = "".join(f"{line}\n" for line in LINES)
NOT_KEPT = (
    "… the start of this log was not kept: the job's record keeps only the end of each "
    "attempt's log."
)
FROM_THE_RECORD = "This attempt's pod is gone: its log comes from the job's record."


def job_page(scheduler: KubeScheduler, name: str) -> str:
    return f"{scheduler.url}/console/#/jobs/{name}"


def log_of(scheduler: KubeScheduler, name: str) -> tuple[int, dict[str, str], str]:
    """Attempt 0's log as a script reads it: status, headers, text."""
    url = f"{scheduler.url}/api/v1/jobs/{name}/logs?attempt=0"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.1)


def stopped_after_printing(scheduler: KubeScheduler) -> str:
    """A job that printed its lines, then was stopped; its pod is deleted with it."""
    name = scheduler.job({})["name"]
    wait_until(lambda: log_of(scheduler, name)[2] == LOG, "the job printing its lines")
    assert scheduler.api("POST", f"/jobs/{name}/stop")[0] == 200
    return name


def served_by_the_record(scheduler: KubeScheduler, name: str) -> dict[str, str]:
    """Until the job's pod is gone and its record serves attempt 0's log: its headers."""
    wait_until(
        lambda: log_of(scheduler, name)[1].get("X-Log-Source") == "record",
        "the record serving the stopped attempt's log",
    )
    return log_of(scheduler, name)[1]


def test_a_stopped_job_shows_its_stopped_attempt_and_whole_log_from_its_record(
    kube_scheduler_factory: Factory, page: Page
) -> None:
    scheduler = kube_scheduler_factory(SCRIPT)
    name = stopped_after_printing(scheduler)
    assert "X-Log-Truncated" not in served_by_the_record(scheduler, name)
    (attempt,) = scheduler.api("GET", f"/jobs/{name}")[1]["podStatuses"]
    assert (attempt["reason"], attempt["exitCode"]) == ("Stopped", 143)  # SIGTERM

    page.goto(job_page(scheduler, name))

    expect(page.locator(".title .badge")).to_have_text("Stopped")
    attempts = page.locator("table tbody tr")
    expect(attempts).to_have_count(1)
    cells = attempts.first.locator("td")
    expect(cells.nth(0)).to_have_text("0")
    expect(cells.nth(2)).to_have_text("Stopped")
    expect(cells.nth(5)).to_have_text("143")
    expect(cells.nth(6)).to_have_text(f"Stopped: {attempt['statusMessage']}")
    for attempt in ("", "0"):  # the latest, then attempt 0 by its number
        page.get_by_label("Attempt", exact=True).select_option(attempt)
        expect(page.locator("#log-state")).to_have_text("End of log.")
        expect(page.locator("#log")).to_have_text(LOG)
        expect(page.locator("#log-source")).to_have_text(FROM_THE_RECORD)
        expect(page.locator("#log-cut")).to_be_hidden()
    expect(page.locator("#result")).to_be_hidden()
    expect(page.get_by_text("The job wrote no result.")).to_be_visible()
    screenshot(page, "stopped-job-from-its-record")


@pytest.fixture(scope="module")
def small_records(kube_scheduler_factory: Factory) -> KubeScheduler:
    """A scheduler whose job records keep the last 1 KiB of each attempt's log."""
    return kube_scheduler_factory(SCRIPT, SCHEDULER_ATTEMPT_LOG_BYTES=str(SMALL_LOG_BYTES))


def test_a_log_whose_start_the_record_did_not_keep_says_so_above_its_text(
    small_records: KubeScheduler, axe_page: Page
) -> None:
    scheduler = small_records
    name = stopped_after_printing(scheduler)
    assert served_by_the_record(scheduler, name).get("X-Log-Truncated") == "true"
    kept = log_of(scheduler, name)[2]

    axe_page.goto(job_page(scheduler, name))

    expect(axe_page.locator(".title .badge")).to_have_text("Stopped")
    expect(axe_page.locator("#log-state")).to_have_text("End of log.")
    cut, log = axe_page.locator("#log-cut"), axe_page.locator("#log")
    expect(cut).to_have_text(NOT_KEPT)
    expect(cut).to_be_visible()
    expect(log).to_have_text(kept)
    assert LOG.endswith(kept) and len(kept.encode()) <= SMALL_LOG_BYTES < len(LOG.encode())
    # The line comes first, just above the log's text, and is no part of it.
    assert cut.evaluate("line => line.nextElementSibling.id") == "log"
    assert cut.bounding_box()["y"] < log.bounding_box()["y"]
    screenshot(axe_page, "log-start-not-kept")
    assert serious_accessibility_violations(axe_page) == []

    axe_page.get_by_label("Attempt", exact=True).select_option("0")
    expect(cut).to_have_text(NOT_KEPT)
    expect(log).to_have_text(kept)


def test_a_stopped_and_restarted_job_s_first_attempt_says_its_start_was_not_kept(
    small_records: KubeScheduler, page: Page
) -> None:
    scheduler = small_records
    name = stopped_after_printing(scheduler)
    wait_until(lambda: scheduler.api("GET", f"/jobs/{name}")[1]["status"] == "Stopped", "stop")
    assert scheduler.api("POST", f"/jobs/{name}/restart")[0] == 200
    assert served_by_the_record(scheduler, name).get("X-Log-Truncated") == "true"
    kept = log_of(scheduler, name)[2]

    page.goto(job_page(scheduler, name))

    expect(page.locator(".title .badge")).to_have_text("Running")
    expect(page.locator("table tbody tr")).to_have_count(2)
    cut, log = page.locator("#log-cut"), page.locator("#log")
    expect(log).to_have_text(LOG)  # attempt 1, live from its pod: whole
    expect(page.locator("#log-state")).to_have_text("Following the log…")
    expect(cut).to_be_hidden()
    expect(page.locator("#log-source")).to_be_hidden()

    page.get_by_label("Attempt", exact=True).select_option("0")
    expect(page.locator("#log-state")).to_have_text("End of log.")
    expect(cut).to_have_text(NOT_KEPT)
    expect(log).to_have_text(kept)
    expect(page.locator("#log-source")).to_have_text(FROM_THE_RECORD)
    screenshot(page, "restarted-job-first-attempt-not-kept")

    page.get_by_label("Attempt", exact=True).select_option("")
    expect(log).to_have_text(LOG)
    expect(cut).to_be_hidden()
    expect(page.locator("#log-source")).to_be_hidden()
    assert scheduler.api("POST", f"/jobs/{name}/stop")[0] == 200


def test_a_log_that_was_not_kept_shows_the_apis_words_and_no_empty_log(
    kube_scheduler_factory: Factory, page: Page
) -> None:
    scheduler = kube_scheduler_factory(SCRIPT, SCHEDULER_KEEP_ATTEMPTS="false")
    name = stopped_after_printing(scheduler)
    wait_until(lambda: log_of(scheduler, name)[0] == 404, "the stopped attempt's log going")
    message = scheduler.api("GET", f"/jobs/{name}/logs")[1]["message"]

    page.goto(job_page(scheduler, name))

    expect(page.locator(".title .badge")).to_have_text("Stopped")
    expect(page.get_by_role("alert")).to_have_text(f"No log: {message}")
    expect(page.locator("#log")).to_be_hidden()
    expect(page.locator("#log-cut")).to_be_hidden()
    expect(page.get_by_text("No attempt left: they are gone.")).to_be_visible()
    screenshot(page, "log-not-kept")
