"""A keyplane server and Debian's Chromium for the /admin browser tests and screenshots.

Playwright drives ``/usr/bin/chromium`` (installed by ``scripts/system-deps.sh``);
its own browser download is never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.functional.conftest import (
    FirstStartBlock,
    ServerLauncher,
    ServerProcess,
    Workspace,
    parse_first_start,
)

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_MS = 15_000


@dataclass(frozen=True)
class AdminServer:
    server: ServerProcess
    first_start: FirstStartBlock

    @property
    def base_url(self) -> str:
        return self.server.base_url


@contextmanager
def admin_server(root: Path) -> Iterator[AdminServer]:
    """``keyplane serve`` on a free loopback port, with the first start's admin agent."""
    cwd, data = root / "cwd", root / "data"
    cwd.mkdir(parents=True)
    data.mkdir(parents=True)
    launcher = ServerLauncher(Workspace(cwd=cwd, data_dir=data))
    try:
        server = launcher.start()
        yield AdminServer(server, parse_first_start(server.stdout()))
    finally:
        launcher.cleanup()


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium under Playwright, closed afterwards."""
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


def launch_chromium(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: run `scripts/system-deps.sh chromium` as root "
            "(make test does), never `playwright install`"
        )
    # --no-sandbox: the tests may run as root (in a container), where the sandbox cannot start.
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
    )


def enhanced(page: Page) -> None:
    """Wait until the page's script has run (dialogs, copy button), after a navigation."""
    expect(page.locator("html")).to_have_attribute("data-enhanced", "yes")


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base_url}/admin")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Access keys", level=1)).to_be_visible()
    enhanced(page)
