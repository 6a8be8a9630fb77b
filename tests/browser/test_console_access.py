"""The console in headless Chromium where access matters: a scheduler with an API token, whose
console asks for it once, keeps it for the tab and sends it with every call (the event stream
included); and routes that name no job or batch (`.`, `..`), which must never act on all jobs."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import Scheduler, screenshot, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

if skip_reason() is None:
    from playwright.sync_api import expect

Page = Any
TOKEN = "console-token-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(scheduler_factory: Callable[..., Scheduler]) -> Scheduler:
    """A scheduler that requires an API token."""
    return scheduler_factory(token=TOKEN)


def api_requests(page: Page) -> list[Any]:
    """Every request the page makes to the API, as it goes."""
    seen: list[Any] = []
    page.on("request", lambda request: seen.append(request) if "/api/v1/" in request.url else None)
    return seen


def token_dialog(page: Page) -> Any:
    return page.get_by_role("dialog", name="API token")


def test_the_console_asks_for_the_token_once_and_sends_it_with_every_call(
    guarded: Scheduler, page: Page
) -> None:
    requests = api_requests(page)
    page.goto(f"{guarded.url}/")

    # The header, the lists and the event stream all met a 401: one dialog asks for all of them.
    expect(token_dialog(page)).to_be_visible()
    expect(page.locator("dialog")).to_have_count(1)
    expect(page.locator("#connection")).not_to_have_text("Live")
    screenshot(page, "token-prompt")

    page.get_by_label("Token", exact=True).fill("not-the-token-at-all")
    page.get_by_role("button", name="Use token").click()
    expect(token_dialog(page)).to_contain_text("The scheduler refused that token")
    expect(page.locator("dialog")).to_have_count(1)

    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    expect(token_dialog(page)).to_have_count(0)
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#job-name")).to_have_text("Job compute")

    # The event stream carries the token: a job started elsewhere shows up without a reload.
    name = guarded.job({"jobId": "seen-live", "variables": {"SLEEP": "0"}})["name"]
    expect(page.locator("#jobs tbody tr", has_text="seen-live")).to_be_visible()

    # So does a change made from the console.
    page.goto(f"{guarded.url}/console/#/jobs/{name}")
    expect(page.locator(".title .badge")).to_have_text("Succeeded")
    page.get_by_role("button", name="Restart job").click()
    expect(page.locator(".notice.ok")).to_be_visible()

    authorized = {r.url for r in requests if r.headers.get("authorization") == f"Bearer {TOKEN}"}
    assert any(url.endswith("/api/v1/events") for url in authorized), authorized
    assert any(url.endswith(f"/api/v1/jobs/{name}/restart") for url in authorized), authorized
    # Only for this tab: not in localStorage, no cookie.
    assert page.evaluate("sessionStorage.length") == 1
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []


def test_the_token_is_kept_for_the_tab_and_asked_again_in_a_new_one(
    guarded: Scheduler, page: Page
) -> None:
    page.goto(f"{guarded.url}/")
    page.get_by_label("Token", exact=True).fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#connection")).to_have_text("Live")

    page.reload()
    expect(page.locator("#connection")).to_have_text("Live")
    expect(token_dialog(page)).to_have_count(0)

    other_tab = page.context.new_page()
    other_tab.goto(f"{guarded.url}/")
    expect(token_dialog(other_tab)).to_be_visible()
    other_tab.close()


def test_a_cancelled_prompt_shows_the_apis_words_and_asks_no_more(
    guarded: Scheduler, page: Page
) -> None:
    page.goto(f"{guarded.url}/")
    page.get_by_role("button", name="Cancel").click()

    expect(page.locator("#main")).to_contain_text(
        "Cannot list jobs: this scheduler needs its API token"
    )
    # The stream tries again (after 1 s, then 2 s) and meets the 401 again: no new prompt comes.
    for _ in range(2):
        with page.expect_response(lambda response: response.url.endswith("/api/v1/events")) as met:
            pass
        assert met.value.status == 401
    expect(page.locator("dialog")).to_have_count(0)


COLLECTIVE = re.compile(r"/api/v1/(jobs|batches)(/stop)?/?$")


@pytest.mark.parametrize(
    "route",
    [
        "#/jobs/.",
        "#/jobs/..",
        "#/jobs/%2e",
        "#/jobs/%2E%2E",
        "#/batches/.",
        "#/batches/..",
        "#/batches/b/jobs/..",
        "#/batches/b/jobs/.",
        "#/batches/../jobs/x",
        "#/jobs/Upper",
    ],
)
def test_a_route_that_names_no_job_or_batch_is_not_found_and_acts_on_nothing(
    live: Scheduler, page: Page, route: str
) -> None:
    requests = api_requests(page)
    page.goto(f"{live.url}/console/{route}")

    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.locator("#connection")).to_have_text("Live")
    for action in ("Stop", "Restart", "Delete"):
        expect(page.get_by_role("button", name=re.compile(action))).to_have_count(0)
    changes = [f"{r.method} {r.url}" for r in requests if r.method != "GET"]
    assert changes == []
    reads = {r.url.split("/api/v1", 1)[1] for r in requests}
    assert reads <= {"/info", "/events", "/jobs", "/batches"}, reads
    assert not [r.url for r in requests if r.method != "GET" and COLLECTIVE.search(r.url)]


def test_the_api_module_builds_no_path_from_a_name_that_is_no_name(
    live: Scheduler, page: Page
) -> None:
    page.goto(f"{live.url}/console/")
    refused = page.evaluate(
        """async () => {
            const api = await import("./api.js");
            const targets = [{kind: "job", name: "."}, {kind: "job", name: ".."},
                {kind: "batch", name: "."}, {kind: "batchJob", batch: "b", name: ".."},
                {kind: "batchJob", batch: "..", name: "x"}, {kind: "job", name: "a/b"}];
            const outcomes = [];
            for (const target of targets) {
                try { outcomes.push(api.pathOf(target)); }
                catch (error) { outcomes.push(error.message.startsWith("not a job or batch")); }
            }
            return outcomes;
        }"""
    )
    assert refused == [True] * 6
