"""Screenshots of each /admin screen into docs/screenshots/ (`make screenshots`).

Starts a throwaway keyplane on a free loopback port, fills it through the page
itself, and photographs it with Debian's Chromium, at desktop and phone width.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402
from tests.functional.admin_browser import (  # noqa: E402
    admin_server,
    enhanced,
    launch_chromium,
    log_in,
)

OUT = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def unfold_create_form(page: Page) -> None:
    if page.locator("details#create[open]").count() == 0:
        page.get_by_text("Create a key", exact=True).click()


def create(page: Page, name: str, detail: str, days: str) -> None:
    unfold_create_form(page)
    page.get_by_label("Name", exact=True).first.fill(name)
    page.get_by_label("Detail", exact=True).first.fill(detail)
    page.get_by_label(f"{days} day", exact=False).first.check()
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("button", name="I have copied it").click()
    expect(page.locator("#new-token")).to_have_count(0)
    enhanced(page)


def confirm(page: Page, name: str, button: str) -> None:
    row = page.locator(f'tr[data-key-name="{name}"]').first
    if button == "Rotate":
        row.get_by_label("Grace period", exact=False).select_option(label="grace 1 day")
    row.get_by_role("button", name=button).click()
    page.locator("#confirm-dialog").get_by_role("button", name=button).click()
    if button == "Rotate":
        expect(page.get_by_role("dialog", name="Key rotated", exact=False)).to_be_visible()
    else:
        expect(page.get_by_role("status")).to_be_visible()
    enhanced(page)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="keyplane-screens-") as root,
        admin_server(Path(root)) as keyplane,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        context = browser.new_context(base_url=keyplane.base_url, viewport=DESKTOP)
        page = context.new_page()
        page.goto("/admin/login")
        page.screenshot(path=OUT / "login.png")
        first = keyplane.first_start
        log_in(page, keyplane.base_url, first.username, first.password)
        create(page, "reporting", "Nightly usage export", "365")
        create(page, "ci-deploy", "Deploys from CI; renew soon", "1")
        create(page, "partner-sync", "Partner's sync job", "90")
        confirm(page, "partner-sync", "Disable")
        confirm(page, "reporting", "Rotate")
        page.get_by_role("button", name="I have copied it").click()
        expect(page.locator("#new-token")).to_have_count(0)
        enhanced(page)
        page.screenshot(path=OUT / "keys.png", full_page=True)

        unfold_create_form(page)
        page.get_by_label("Name", exact=True).first.fill("billing")
        page.get_by_role("button", name="Create key").click()
        expect(page.get_by_role("dialog", name="Key created")).to_be_visible()
        page.screenshot(path=OUT / "created.png")
        page.get_by_role("button", name="I have copied it").click()
        expect(page.locator("#new-token")).to_have_count(0)
        enhanced(page)

        page.locator('tr[data-key-name="ci-deploy"]').get_by_role("button", name="Delete").click()
        expect(page.locator("#confirm-dialog")).to_be_visible()
        page.screenshot(path=OUT / "confirm.png")
        page.locator("#confirm-dialog").get_by_role("button", name="Cancel").click()

        page.goto("/admin/settings")
        page.screenshot(path=OUT / "settings.png", full_page=True)

        phone = browser.new_context(base_url=keyplane.base_url, viewport=PHONE, is_mobile=True)
        small = phone.new_page()
        log_in(small, keyplane.base_url, first.username, first.password)
        small.screenshot(path=OUT / "phone.png", full_page=True)
        browser.close()
    for shot in sorted(OUT.glob("*.png")):
        print(shot.relative_to(ROOT))


if __name__ == "__main__":
    main()
