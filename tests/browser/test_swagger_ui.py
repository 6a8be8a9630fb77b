"""Swagger UI in headless Chromium under its Content-Security-Policy: it works (its page fails
the test on any script error or policy report), runs "Try it out", and no other site frames it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Scheduler, skip_reason

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")

if skip_reason() is None:
    from playwright.sync_api import expect

Page = Any


def test_swagger_ui_runs_try_it_out_under_its_content_security_policy(
    live: Scheduler, page: Page
) -> None:
    response = page.goto(f"{live.url}/swaggerui/")
    assert response is not None and response.status == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"

    page.locator("[id$='-getInfo'] .opblock-summary").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    expect(page.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")


def test_another_site_cannot_frame_swagger_ui(live: Scheduler, browser: Any) -> None:
    context = browser.new_context()  # not the `page` fixture: this page expects a CSP report
    try:
        page = context.new_page()
        framing = f'<!DOCTYPE html><title>win a prize</title><iframe src="{live.url}/swaggerui/">'
        page.route(
            "http://attacker.test/**",
            lambda route: route.fulfill(status=200, content_type="text/html", body=framing),
        )
        page.goto("http://attacker.test/", wait_until="load")  # the frame's load too
        (frame,) = page.main_frame.child_frames
        # Chromium shows its error page in place of a page that refuses to be framed.
        assert frame.url.startswith("chrome-error://"), frame.url
        assert frame.locator("#swagger-ui").count() == 0
    finally:
        context.close()
