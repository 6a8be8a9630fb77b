"""The console's forms for a job with a payload schema, in headless Chromium against a live
scheduler: the schema's title and description by the payload field, each problem (pointer, rule,
message) shown while typing, the start blocked while the payload breaks the schema, and a batch's
refusal listing every job's problems at once."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.browser.conftest import Scheduler, screenshot, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

if skip_reason() is None:
    from playwright.sync_api import expect

Page = Any
ORDER = {
    "title": "Work order",
    "description": "The items to compute, each with its size.",
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["size"],
                "properties": {"size": {"type": "integer", "minimum": 0}},
            },
        }
    },
}


@dataclass
class SchemaScheduler(Scheduler):
    """The browser tests' scheduler, its job's payloads bound by ORDER."""

    def command(self) -> list[str]:
        command = super().command()
        config = self.directory / "radixconfig.yaml"
        document = yaml.safe_load(config.read_text())
        document["spec"]["jobs"][0]["payload"]["schema"] = ORDER
        config.write_text(yaml.safe_dump(document))
        return command


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduler]:
    scheduler = SchemaScheduler(tmp_path_factory.mktemp("scheduler"))
    try:
        scheduler.start()
        yield scheduler
    finally:
        scheduler.stop()


def jobs_of(scheduler: Scheduler) -> list[str]:
    status, jobs = scheduler.api("GET", "/jobs")
    assert status == 200, jobs
    return [job["name"] for job in jobs]


def test_the_start_form_tells_the_schema_and_shows_each_problem_while_you_type(
    validated: Scheduler, page: Page
) -> None:
    page.goto(f"{validated.url}/console/#/new")
    expect(page.locator("#payload-schema")).to_have_text(
        "Payload schema: Work order — The items to compute, each with its size."
    )
    payload = page.get_by_label("Payload")
    start = page.get_by_role("button", name="Start job")

    payload.fill('{"items": [{"size": -1}, {}]')
    expect(page.locator("#payload-problems li")).to_have_text(
        [re.compile(r"^\(the payload\) json not JSON")]
    )
    expect(start).to_be_disabled()

    payload.fill('{"items": [{"size": -1}, {}]}')
    expect(page.locator("#payload-problems li")).to_have_text(
        [
            "/items/0/size minimum -1 is less than the minimum of 0",
            '/items/1 required "size" is a required property',
        ]
    )
    expect(page.locator("#payload-check")).to_have_text(
        "Does not satisfy the payload schema: 2 problems"
    )
    expect(payload).to_have_attribute("aria-invalid", "true")
    expect(start).to_be_disabled()
    screenshot(page, "start-job-payload-schema")
    assert jobs_of(validated) == []

    payload.fill(json.dumps({"items": [{"size": 3}]}))
    expect(page.locator("#payload-check")).to_have_text("Satisfies the payload schema")
    expect(page.locator("#payload-problems")).to_be_hidden()
    start.click()

    expect(page).to_have_url(re.compile(r"#/jobs/compute-\d{14}-[a-z]{8}$"))
    assert jobs_of(validated) == [page.url.rsplit("/", 1)[1]]


def test_an_empty_payload_is_caught_on_submit_before_anything_is_sent(
    validated: Scheduler, page: Page
) -> None:
    before = jobs_of(validated)
    page.goto(f"{validated.url}/console/#/new")

    page.get_by_role("button", name="Start job").click()

    expect(page.get_by_role("alert")).to_have_text(
        "The payload does not satisfy the job's payload schema: see its problems under it"
    )
    expect(page.locator("#payload-problems li")).to_have_text(
        ["(the payload) required a payload (JSON) is required"]
    )
    expect(page.get_by_label("Payload")).to_be_focused()
    assert jobs_of(validated) == before


def test_a_refused_batch_lists_every_jobs_problems_by_its_field(
    validated: Scheduler, page: Page
) -> None:
    before = jobs_of(validated)
    batch = {
        "jobScheduleDescriptions": [
            {"payload": json.dumps({"items": [{"size": -1}]})},
            {"payload": json.dumps({"items": [{"size": 1}]})},
            {"payload": "nope"},
        ]
    }
    page.goto(f"{validated.url}/console/#/new-batch")
    expect(page.locator("#batch-schema")).to_contain_text("Payload schema: Work order")

    page.get_by_label("Batch (BatchScheduleDescription as JSON)").fill(json.dumps(batch))
    page.get_by_role("button", name="Start batch").click()

    expect(page.get_by_role("alert")).to_contain_text("2 of 3 payloads do not satisfy")
    expect(page.locator("#batch-problems li")).to_have_text(
        [
            re.compile(r"^jobScheduleDescriptions\[0\]\.payload ?/items/0/size minimum -1 is less"),
            re.compile(r"^jobScheduleDescriptions\[2\]\.payload ?\(the payload\) json not JSON"),
        ]
    )
    screenshot(page, "start-batch-payload-schema")
    assert jobs_of(validated) == before


def test_a_job_without_a_schema_shows_no_schema_and_checks_nothing(
    scheduler_factory: Callable[..., Scheduler], page: Page
) -> None:
    plain = scheduler_factory()
    page.goto(f"{plain.url}/console/#/new")
    page.get_by_label("Payload").fill("not json at all")

    expect(page.locator("#payload-help")).to_have_text("15 of 1,048,576 bytes (1 MiB)")
    expect(page.locator("#payload-schema")).to_have_count(0)
    expect(page.locator("#payload-problems")).to_have_count(0)
    expect(page.get_by_role("button", name="Start job")).to_be_enabled()
