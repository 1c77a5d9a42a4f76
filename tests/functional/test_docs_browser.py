"""/docs in a real browser (Debian's Chromium via Playwright): it works under its own
Content Security Policy, and another page cannot frame it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.functional.admin_browser import TIMEOUT_MS, chromium
from tests.functional.conftest import ServerLauncher, ServerProcess

pytestmark = pytest.mark.e2e

# Every violation of the page's policy, as the browser reports it to the page.
RECORD_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation",
    (event) => window.violations.push(event.violatedDirective + " " + event.blockedURI));
"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def server(launcher: ServerLauncher) -> ServerProcess:
    return launcher.start()


def test_swagger_ui_works_under_its_policy(browser: Browser, server: ServerProcess) -> None:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []

    def keep_errors(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", keep_errors)
    page.add_init_script(RECORD_VIOLATIONS)
    response = page.goto(f"{server.base_url}/docs")
    assert response is not None
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # The inline start-up script ran (its hash is allowed), and rendered the document.
    expect(page.locator(".opblock").first).to_be_visible()
    # "Try it out" asks keyplane itself (connect-src 'self') and shows the answer.
    live = page.locator(".opblock", has_text="/health/live")
    live.locator(".opblock-summary").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()
    expect(live.locator(".live-responses-table tbody .response-col_status").first).to_have_text(
        "200"
    )
    assert page.evaluate("window.violations") == []
    assert errors == []


def test_another_page_cannot_frame_it(browser: Browser, server: ServerProcess) -> None:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.set_content(f'<iframe id="docs" src="{server.base_url}/docs"></iframe>')
    framed = page.frame_locator("#docs")
    page.wait_for_load_state("load")
    assert framed.locator("#swagger-ui").count() == 0
    assert all("/docs" not in frame.url for frame in page.frames[1:])
