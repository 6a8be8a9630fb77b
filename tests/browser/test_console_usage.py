"""The job page shows what each attempt used on the local backend (a scheduler process measuring
every 0.1 s): the API's words for its peak memory and CPU seconds against the job's limits, with
its requests and limits, once the job has ended and while it runs (Refresh reads it again); no
serious accessibility violation. A screenshot goes to test-output/console/."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import (
    Scheduler,
    screenshot,
    serious_accessibility_violations,
    skip_reason,
)

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

if skip_reason() is None:
    from playwright.sync_api import expect

Page = Any
RESOURCES = {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "256Mi"}}


@pytest.fixture(scope="module")
def measuring(scheduler_factory: Callable[..., Scheduler]) -> Scheduler:
    return scheduler_factory("--usage-interval", "0.1")


def job_page(scheduler: Scheduler, name: str) -> str:
    return f"{scheduler.url}/console/#/jobs/{name}"


def ended(scheduler: Scheduler, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while scheduler.api("GET", f"/jobs/{name}")[1]["status"] != "Succeeded":
        assert time.monotonic() < deadline, f"{name} did not succeed"
        time.sleep(0.1)


def usage_of(page: Page, attempt: int) -> Any:
    return page.locator(f"#usage li[data-attempt='{attempt}']")


def test_an_ended_job_s_page_shows_what_its_attempt_used_in_words(
    measuring: Scheduler, page: Page
) -> None:
    name = measuring.job({"variables": {"SLEEP": "1"}, "resources": RESOURCES})["name"]
    ended(measuring, name)
    page.goto(job_page(measuring, name))
    expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    expect(page.locator("#usage li")).to_have_count(1)
    expect(usage_of(page, 0)).to_have_text(
        re.compile(
            r"^Attempt 0: peak [0-9.]+ (KiB|MiB) of a 256 MiB limit; (under )?[0-9.]+ CPU "
            r"seconds in [0-9.]+ s, (under )?[0-9.]+ CPU on average of a 1 CPU limit$"
        )
    )
    expect(page.get_by_text("Requests: cpu 100m. Limits: cpu 1, memory 256Mi.")).to_have_text(
        "Requests: cpu 100m. Limits: cpu 1, memory 256Mi. Measured from its process tree, "
        "read from /proc every 0.1 s while it runs."
    )
    screenshot(page, "job-usage")


def test_a_running_job_s_figures_say_so_far_and_refresh_reads_them_again(
    measuring: Scheduler, page: Page
) -> None:
    name = measuring.job({"variables": {"SLEEP": "30"}})["name"]
    page.goto(job_page(measuring, name))
    expect(page.locator(".title .badge")).to_have_text("Running")
    attempt = usage_of(page, 0)
    # Read when the attempt started: it may not have been looked at yet. Refresh until it was.
    deadline = time.monotonic() + 15
    while not (attempt.text_content() or "").startswith("Attempt 0: so far: peak "):
        assert time.monotonic() < deadline, attempt.text_content()
        page.get_by_role("button", name="Refresh").click()
        time.sleep(0.2)
    assert measuring.api("POST", f"/jobs/{name}/stop")[0] == 200
    expect(page.locator(".title .badge")).to_have_text("Stopped")
    # Read again once it ended: figures, no longer "so far".
    expect(attempt).to_have_text(re.compile(r"^Attempt 0: peak "))


def test_the_usage_section_has_no_serious_accessibility_violations(
    measuring: Scheduler, axe_page: Page
) -> None:
    name = measuring.job({"variables": {"SLEEP": "1"}, "resources": RESOURCES})["name"]
    ended(measuring, name)
    axe_page.goto(job_page(measuring, name))
    expect(usage_of(axe_page, 0)).to_contain_text("peak ")
    assert serious_accessibility_violations(axe_page) == []
