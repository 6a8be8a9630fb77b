"""Every page of the console fits every screen from a phone (390 px) to a wide one (1920 px): the
page never scrolls sideways and no text is cut off (a long failure message wraps), and axe-core
finds no serious or critical problem on any page, in the light and the dark colour scheme.
Screenshots at 390 and 1400 px, in both schemes, go to test-output/console/."""

from __future__ import annotations

import time
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
WIDTHS = (390, 1400, 1920)
SCREENSHOT_WIDTHS = (390, 1400)

# Text that a box cuts: an element whose text overflows a box that clips (overflow hidden or
# clip, not one that scrolls), an ellipsis, or SVG text outside its picture. A box that scrolls
# keeps its text reachable; the visually-hidden captions are meant to be clipped.
CUT_TEXT = """() => {
  const cut = [];
  const describe = (el) => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}` +
    `.${[...el.classList].join(".")}: ${el.textContent.trim().slice(0, 60)}`;
  for (const el of document.querySelectorAll("main *, header *")) {
    if (el.closest(".visually-hidden, .svg-defs, [hidden], details:not([open]) > :not(summary)")) {
      continue;
    }
    if (el instanceof SVGTextElement) {
      const picture = el.ownerSVGElement.getBoundingClientRect();
      const text = el.getBoundingClientRect();
      if (text.left < picture.left - 1 || text.right > picture.right + 1) cut.push(describe(el));
      continue;
    }
    if (el instanceof SVGElement) continue;
    const style = getComputedStyle(el);
    const clips = ["hidden", "clip"].includes(style.overflowX);
    if (style.textOverflow === "ellipsis" && el.scrollWidth > el.clientWidth) cut.push(describe(el));
    else if (clips && el.scrollWidth > el.clientWidth + 1 && el.textContent.trim()) {
      cut.push(describe(el));
    }
  }
  return cut;
}"""


def settled(live: Scheduler, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not live.api("GET", f"/jobs/{name}")[1].get("ended"):
        assert time.monotonic() < deadline, f"{name} did not end"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def pages(live: Scheduler) -> dict[str, str]:
    """Each main page's address, with jobs on it: one that failed (a long message), one that
    succeeded, one running and a batch."""
    failed = live.job(
        {"jobId": "a-job-with-a-rather-long-id", "variables": {"EXIT": "1", "SLEEP": "0"}}
    )["name"]
    done = live.job({"jobId": "fine", "payload": "ok"})["name"]
    live.job({"jobId": "busy", "variables": {"SLEEP": "120"}})
    code, batch = live.api(
        "POST", "/batches", {"batchId": "nightly", "jobScheduleDescriptions": [{}, {}]}
    )
    assert code == 200, batch
    settled(live, failed)
    settled(live, done)
    return {
        "list": "#/",
        "job": f"#/jobs/{failed}",
        "batch": f"#/batches/{batch['name']}",
        "timeline": "#/timeline?last=hour",
        "start-job": "#/new",
        "start-batch": "#/new-batch",
    }


def ready(page: Page, shot: str) -> None:
    """Wait until the page shows what it is for."""
    expect(page.get_by_role("heading", level=2)).to_be_visible()
    wait_for = {
        "list": "#jobs tbody tr",
        "job": "#failure",
        "batch": "table tbody tr",
        "timeline": "#chart-reasons li",
        "start-job": "textarea",
        "start-batch": "textarea",
    }[shot]
    expect(page.locator(wait_for).first).to_be_visible()
    if shot == "timeline":
        # The tables in words are read too.
        for summary in page.locator("details.alternative > summary").all():
            summary.click()


@pytest.mark.timeout(240)
def test_every_page_fits_every_width_without_cutting_text(
    live: Scheduler, pages: dict[str, str], page: Page
) -> None:
    found = {}
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for shot, route in pages.items():
            page.goto(f"{live.url}/console/{route}")
            ready(page, shot)
            sideways = page.evaluate("document.documentElement.scrollWidth - innerWidth")
            cut = page.evaluate(CUT_TEXT)
            found[(shot, width)] = (sideways, cut)
            if shot == "list":
                # The failure message wraps in its column rather than stretching the table.
                message = page.locator("#jobs tr", has_text="a-job-with").locator("td.message")
                lines = message.evaluate(
                    "(td) => td.getBoundingClientRect().height / parseFloat("
                    "getComputedStyle(td).lineHeight)"
                )
                assert lines >= 1.8, f"the message took one line at {width} px"
            if width in SCREENSHOT_WIDTHS:
                screenshot(page, f"fit-{shot}-{width}")

    assert found == {key: (0, []) for key in found}


def test_no_page_has_serious_accessibility_violations_in_either_colour_scheme(
    live: Scheduler, pages: dict[str, str], axe_page: Page
) -> None:
    found = {}
    for scheme in ("light", "dark"):
        axe_page.emulate_media(color_scheme=scheme)
        for shot, route in pages.items():
            axe_page.goto(f"{live.url}/console/{route}")
            ready(axe_page, shot)
            assert axe_page.evaluate(f"matchMedia('(prefers-color-scheme: {scheme})').matches")
            found[(shot, scheme)] = serious_accessibility_violations(axe_page)
            if scheme == "dark":
                screenshot(axe_page, f"dark-{shot}")

    assert found == {key: [] for key in found}
