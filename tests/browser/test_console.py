"""The web console in headless Chromium against a live scheduler on the local backend, as a person
uses it: start a job from the form and watch it succeed without reloading, read its log and
result, see a failure and each attempt's log, stop, restart and delete, start a batch from JSON,
see the API's own words for errors, a thousand jobs, a dropped connection, the keyboard alone,
axe-core's accessibility check, and a form on another site that cannot touch a job.
Screenshots of the main pages go to test-output/console/."""

from __future__ import annotations

import json
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
ONE_MIB = 1024 * 1024
# Rendering the list of 1,000 jobs once (filter, sort, a page of rows); about 5 ms on a laptop.
RENDER_BUDGET_MS = 200


def showing(first: int, last: int, found: int, total: int | None = None) -> str:
    """The list's summary line (its dash is an en dash)."""
    filtered = f" (filtered from {total})" if total else ""
    return f"Showing {first}\u2013{last} of {found}{filtered}"


def job_page(live: Scheduler, name: str) -> str:
    return f"{live.url}/console/#/jobs/{name}"


def badge(page: Page) -> Any:
    return page.locator(".title .badge")


def row(page: Page, text: str) -> Any:
    return page.locator("#jobs tbody tr", has_text=text)


def wait_for_status(live: Scheduler, name: str, status: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while live.api("GET", f"/jobs/{name}")[1]["status"] != status:
        assert time.monotonic() < deadline, f"{name} did not become {status}"
        time.sleep(0.1)


def test_a_job_started_from_the_form_succeeds_before_your_eyes_with_its_log_and_result(
    live: Scheduler, page: Page
) -> None:
    page.goto(f"{live.url}/")
    expect(page.locator("#connection")).to_have_text("Live")
    page.evaluate("window.notReloaded = true")

    page.get_by_role("link", name="Start a job").click()
    page.get_by_label("Payload").fill('{"x": 1}')
    page.get_by_label("jobId").fill("from-the-form")
    page.get_by_label("Variables").fill("SLEEP=2\nJOB_LABEL=the form's job")
    page.get_by_label("Time limit (seconds)").fill("120")
    page.get_by_label("Backoff limit (retries)").fill("0")
    page.get_by_role("button", name="Start job").click()

    expect(page).to_have_url(re.compile(r"#/jobs/compute-\d{14}-[a-z]{8}$"))
    name = page.url.rsplit("/", 1)[1]
    expect(badge(page)).to_have_text(re.compile("Waiting|Active|Running"))
    expect(page.locator("#log")).to_contain_text('payload: {"x": 1}')
    expect(badge(page)).to_have_text("Succeeded")
    expect(page.locator("#log")).to_contain_text("done, exit 0")
    expect(page.locator("#result")).to_have_text("result of the form's job\n")
    screenshot(page, "job-from-the-form")
    assert page.evaluate("window.notReloaded") is True
    status, job = live.api("GET", f"/jobs/{name}")
    assert (status, job["jobId"], job["status"]) == (200, "from-the-form", "Succeeded")

    page.get_by_role("link", name="Jobs and batches").click()
    expect(row(page, "from-the-form").locator(".badge")).to_have_text("Succeeded")
    assert page.evaluate("window.notReloaded") is True


def test_a_failed_job_shows_its_failure_message_and_each_attempts_log(
    live: Scheduler, page: Page
) -> None:
    variables = {"EXIT": "3", "SLEEP": "0", "JOB_LABEL": "failing"}
    name = live.job({"jobId": "failing", "backoffLimit": 1, "variables": variables})["name"]
    wait_for_status(live, name, "Failed")
    message = live.api("GET", f"/jobs/{name}")[1]["message"]

    page.goto(job_page(live, name))

    expect(badge(page)).to_have_text("Failed")
    expect(page.locator("#failure")).to_have_text(f"Failed: {message}")
    expect(page.locator("table tbody tr")).to_have_count(2)
    logs = []
    for attempt in ("0", "1"):
        page.get_by_label("Attempt", exact=True).select_option(attempt)
        expect(page.locator("#log")).to_contain_text("done, exit 3")
        logs.append(page.locator("#log").text_content())
    first, second = (re.search(r"attempt (\d+) of failing", log or "") for log in logs)
    assert first and second and first.group(1) != second.group(1), logs
    screenshot(page, "failed-job")

    page.get_by_role("link", name="Jobs and batches").click()
    expect(row(page, name).locator(".message")).to_have_text(message)


def test_a_running_job_is_stopped_restarted_and_deleted_from_its_page(
    live: Scheduler, page: Page
) -> None:
    name = live.job({"jobId": "long", "variables": {"SLEEP": "60", "JOB_LABEL": "long"}})["name"]
    page.goto(job_page(live, name))
    expect(badge(page)).to_have_text("Running")
    expect(page.locator("#log")).to_contain_text("attempt")

    page.get_by_role("button", name="Stop job").click()
    expect(page.locator(".notice.ok")).to_have_text(f"job {name} was successfully stopped")
    expect(badge(page)).to_have_text("Stopped")

    page.get_by_role("button", name="Restart job").click()
    expect(page.locator(".notice.ok")).to_have_text(f"job {name} was successfully restarted")
    expect(badge(page)).to_have_text("Running")
    expect(page.locator("table tbody tr")).to_have_count(2)
    expect(page.locator("#log")).to_contain_text("attempt")
    page.get_by_role("button", name="Stop job").click()
    expect(badge(page)).to_have_text("Stopped")

    page.get_by_role("button", name="Delete job").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Delete job {name}?")
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert live.api("GET", f"/jobs/{name}")[0] == 200

    page.get_by_role("button", name="Delete job").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete job").click()
    expect(page).to_have_url(re.compile(r"#/$"))
    expect(page.locator(".notice.ok")).to_have_text(f"job {name} successfully deleted")
    expect(row(page, name)).to_have_count(0)
    assert live.api("GET", f"/jobs/{name}")[0] == 404


def test_a_batch_started_from_json_shows_its_jobs_and_is_stopped_and_deleted(
    live: Scheduler, page: Page
) -> None:
    document = {
        "batchId": "from-the-console",
        "jobScheduleDescriptions": [
            {"jobId": "quick", "payload": "1", "variables": {"JOB_LABEL": "quick"}},
            {"jobId": "slow", "payload": "2", "variables": {"SLEEP": "60"}},
        ],
    }
    page.goto(f"{live.url}/console/#/new-batch")
    page.get_by_label("Batch (BatchScheduleDescription as JSON)").fill(json.dumps(document))
    page.get_by_role("button", name="Start batch").click()

    expect(page).to_have_url(re.compile(r"#/batches/batch-compute-\d{14}-[a-z]{8}$"))
    batch = page.url.rsplit("/", 1)[1]
    jobs = page.locator("table tbody tr")
    expect(jobs).to_have_count(2)
    expect(jobs.filter(has_text="quick").locator(".badge")).to_have_text("Succeeded")
    expect(jobs.filter(has_text="slow").locator(".badge")).to_have_text("Running")
    expect(page.locator("dl.details")).to_contain_text("from-the-console")
    screenshot(page, "batch-running")

    page.get_by_role("button", name="Stop batch").click()
    expect(page.locator(".notice.ok")).to_have_text(f"batch {batch} was successfully stopped")
    expect(jobs.filter(has_text="slow").locator(".badge")).to_have_text("Stopped")
    expect(badge(page)).to_have_text("Completed")

    jobs.filter(has_text="quick").get_by_role("link").click()
    expect(badge(page)).to_have_text("Succeeded")
    expect(page.locator("#log")).to_contain_text("payload: 1")
    expect(page.locator("#result")).to_have_text("result of quick\n")
    expect(page.get_by_role("button", name="Delete job")).to_have_count(0)  # delete its batch
    page.get_by_role("link", name=batch).click()

    page.get_by_role("button", name="Delete batch").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete batch").click()
    expect(page.locator(".notice.ok")).to_have_text(f"batch {batch} successfully deleted")
    expect(row(page, batch)).to_have_count(0)
    assert live.api("GET", f"/batches/{batch}")[0] == 404


@pytest.mark.timeout(180)  # two pages with a 1 MiB payload drawn, on shared cores
def test_the_forms_show_the_payload_size_and_the_apis_own_words_for_errors(
    live: Scheduler, page: Page
) -> None:
    payload = "x" * (ONE_MIB + 1)
    page.goto(f"{live.url}/console/#/new")
    help_text = page.locator("#payload-help")
    expect(help_text).to_have_text("0 of 1,048,576 bytes (1 MiB)")
    page.get_by_label("Payload").fill("é")
    expect(help_text).to_have_text("2 of 1,048,576 bytes (1 MiB)")

    page.get_by_label("Payload").fill(payload)
    expect(help_text).to_have_text("1,048,577 of 1,048,576 bytes (1 MiB): too large by 1")
    page.get_by_role("button", name="Start job").click()
    code, refusal = live.api("POST", "/jobs", {"payload": payload})
    assert code == 413
    expect(page.get_by_role("alert")).to_have_text(refusal["message"])
    screenshot(page, "start-job-error")

    page.get_by_label("Payload").fill("")
    page.get_by_label("Time limit (seconds)").fill("0")
    page.get_by_role("button", name="Start job").click()
    code, refusal = live.api("POST", "/jobs", {"timeLimitSeconds": 0})
    assert code == 422
    expect(page.get_by_role("alert")).to_have_text(refusal["message"])

    page.get_by_role("link", name="Start a batch").click()
    page.get_by_label("Batch (BatchScheduleDescription as JSON)").fill(
        '{"jobScheduleDescriptions": ['
    )
    page.get_by_role("button", name="Start batch").click()
    code, refusal = live.api("POST", "/batches", raw=b'{"jobScheduleDescriptions": [')
    assert code == 422
    expect(page.get_by_role("alert")).to_have_text(refusal["message"])
    screenshot(page, "start-batch-error")


def test_the_list_follows_the_event_stream_and_recovers_when_the_scheduler_restarts(
    scheduler_factory: Callable[..., Scheduler], page: Page
) -> None:
    own = scheduler_factory()
    lists: list[str] = []
    page.on(
        "request", lambda r: "/api/v1/jobs" in r.url and r.method == "GET" and lists.append(r.url)
    )
    page.goto(f"{own.url}/")
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#summary")).to_have_text("No jobs yet.")
    page.evaluate("window.notReloaded = true")

    own.job({"jobId": "first"})
    expect(row(page, "first").locator(".badge")).to_have_text("Succeeded")
    assert len(lists) == 1, "the console listed again instead of following the events"

    own.stop()
    expect(page.locator("#connection")).to_have_text("Reconnecting…")
    own.start()
    expect(page.locator("#connection")).to_have_text("Live", timeout=30_000)
    own.job({"jobId": "second"})

    expect(row(page, "second").locator(".badge")).to_have_text("Succeeded")
    expect(row(page, "first")).to_have_count(1)
    assert page.evaluate("window.notReloaded") is True


def test_a_thousand_jobs_are_paged_filtered_and_searched_without_lag(
    scheduler_factory: Callable[..., Scheduler], page: Page
) -> None:
    # One runs at a time and each sleeps long: 999 of them stay Waiting.
    own = scheduler_factory("--max-parallel", "1")
    for index in range(1000):
        own.job({"jobId": f"bulk-{index:04}", "variables": {"SLEEP": "120"}})
    page.goto(f"{own.url}/")
    expect(page.locator("#summary")).to_have_text(showing(1, 50, 1000))
    expect(page.locator("#jobs tbody tr")).to_have_count(50)
    expect(page.locator("#jobs tbody tr").first).to_contain_text("bulk-0999")  # newest first

    took = page.evaluate(
        """() => {
            const search = document.getElementById("search");
            const started = performance.now();
            search.value = "bulk-012";
            search.dispatchEvent(new Event("input"));
            return performance.now() - started;
        }"""
    )
    assert took < RENDER_BUDGET_MS, f"a render of 1,000 jobs took {took:.0f} ms"
    expect(page.locator("#summary")).to_have_text(showing(1, 10, 10, 1000))
    page.get_by_label("Search").fill("")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#summary")).to_have_text(showing(51, 100, 1000))
    page.mouse.wheel(0, 5000)
    page.get_by_label("Status").select_option("Running")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    screenshot(page, "list-filtered")
    page.get_by_label("Status").select_option("Waiting")
    expect(page.locator("#summary")).to_have_text(showing(1, 50, 999, 1000))


def test_the_console_can_be_used_with_the_keyboard_alone(live: Scheduler, page: Page) -> None:
    page.goto(f"{live.url}/")
    expect(page.locator("#connection")).to_have_text("Live")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Start a job":
            break
    focused = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.textContent, s.outlineStyle, s.outlineWidth]; })()"
    )
    assert focused == ["Start a job", "solid", "3px"], "no visible focus on the link"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Start a job")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Payload")).to_be_focused()
    page.keyboard.type("typed")
    page.keyboard.press("Tab")
    page.keyboard.type("keyboard")
    page.keyboard.press("Enter")

    expect(page).to_have_url(re.compile(r"#/jobs/compute-"))
    expect(badge(page)).to_have_text("Succeeded")
    expect(page.locator("#log")).to_contain_text("payload: typed")


def test_the_main_pages_have_no_serious_accessibility_violations(
    live: Scheduler, axe_page: Page
) -> None:
    done = live.job({"jobId": "tidy", "payload": "ok"})["name"]
    live.job({"jobId": "broken", "variables": {"EXIT": "1", "SLEEP": "0"}})
    live.job({"jobId": "busy", "variables": {"SLEEP": "20"}})
    code, batch = live.api(
        "POST", "/batches", {"batchId": "nightly", "jobScheduleDescriptions": [{}, {}]}
    )
    assert code == 200, batch
    wait_for_status(live, done, "Succeeded")

    pages = {
        "list": "#/",
        "job": f"#/jobs/{done}",
        "batch": f"#/batches/{batch['name']}",
        "start-job": "#/new",
        "start-batch": "#/new-batch",
    }
    # What each page shows once it is all there.
    ready = {
        "list": row(axe_page, "broken").locator(".badge").filter(has_text="Failed"),
        "job": axe_page.locator("#result"),
        "batch": axe_page.locator("table tbody tr"),
        "start-job": axe_page.get_by_label("Payload"),
        "start-batch": axe_page.get_by_label("Batch (BatchScheduleDescription as JSON)"),
    }
    found = {}
    for shot, route in pages.items():
        axe_page.goto(f"{live.url}/console/{route}")
        expect(ready[shot].first).to_be_visible()
        if shot == "list":
            expect(row(axe_page, "busy").locator(".badge")).to_have_text("Running")
        screenshot(axe_page, shot)
        found[shot] = serious_accessibility_violations(axe_page)

    assert found == {shot: [] for shot in pages}


def test_a_form_on_another_site_cannot_start_or_stop_a_job(live: Scheduler, page: Page) -> None:
    target = live.job({"jobId": "target", "variables": {"SLEEP": "60"}})["name"]
    wait_for_status(live, target, "Running")
    # The classic trick: a text/plain form whose one field makes the body a JSON document.
    attacker = f"""<!DOCTYPE html><title>cute cats</title>
<form id="create" method="post" enctype="text/plain" action="{live.url}/api/v1/jobs">
  <input name='{{"jobId": "forged", "x": "' value='"}}'><button>create</button></form>
<form id="stop" method="post" action="{live.url}/api/v1/jobs/{target}/stop">
  <button>stop</button></form>"""
    page.route(
        "http://attacker.test/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=attacker),
    )

    for form in ("create", "stop"):
        page.goto("http://attacker.test/")
        with page.expect_navigation() as navigation:
            page.locator(f"#{form} button").click()
        response = navigation.value
        assert response is not None and response.status == 403
        assert "cross-origin request refused" in page.content()

    jobs = live.api("GET", "/jobs")[1]
    assert not [job for job in jobs if job.get("jobId") == "forged"]
    assert live.api("GET", f"/jobs/{target}")[1]["status"] == "Running"
    assert live.api("POST", f"/jobs/{target}/stop")[0] == 200
