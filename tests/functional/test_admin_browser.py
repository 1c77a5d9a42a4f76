"""The /admin page in a real browser (Debian's Chromium via Playwright), against a real server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.functional.admin_browser import (
    AdminServer,
    admin_server,
    chromium,
    enhanced,
    log_in,
)

pytestmark = pytest.mark.e2e
TOKEN = re.compile("vb" + "_" + r"[A-Za-z0-9]{32}")


@pytest.fixture(scope="module")
def keyplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminServer]:
    with admin_server(tmp_path_factory.mktemp("admin")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def context(browser: Browser, keyplane: AdminServer) -> Iterator[BrowserContext]:
    fresh = browser.new_context(
        base_url=keyplane.base_url, permissions=["clipboard-read", "clipboard-write"]
    )
    try:
        yield fresh
    finally:
        fresh.close()


@pytest.fixture
def page(context: BrowserContext, keyplane: AdminServer) -> Page:
    opened = context.new_page()
    log_in(opened, keyplane.base_url, keyplane.first_start.username, keyplane.first_start.password)
    return opened


def open_create_form(page: Page) -> None:
    """The form is folded away below its heading, so that the list stays in view."""
    if page.locator("details#create[open]").count() == 0:
        page.get_by_text("Create a key", exact=True).click()
    expect(page.get_by_label("Name", exact=True).first).to_be_visible()


def create_key(page: Page, name: str, days: str = "30") -> str:
    """Create a key through the form; returns the token the dialog shows."""
    open_create_form(page)
    page.get_by_label("Name", exact=True).first.fill(name)
    page.get_by_label(days if days == "custom" else f"{days} day", exact=False).first.check()
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Key created")
    expect(dialog).to_be_visible()
    enhanced(page)
    token = dialog.locator("#new-token").inner_text().strip()
    assert TOKEN.fullmatch(token)
    return token


def row(page: Page, name: str) -> Locator:
    return page.locator(f'tr[data-key-name="{name}"]')


def test_a_failed_login_then_a_good_one(context: BrowserContext, keyplane: AdminServer) -> None:
    page = context.new_page()
    page.goto("/admin/keys")
    expect(page).to_have_url(re.compile(r"/admin/login$"))
    page.get_by_label("Username").fill(keyplane.first_start.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("The username or password is not valid.")
    expect(page.get_by_label("Username")).to_have_value(keyplane.first_start.username)
    page.get_by_label("Password").fill(keyplane.first_start.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Access keys", level=1)).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "keyplane_admin")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/admin")


def test_create_shows_the_token_once_copies_it_and_warns_of_expiry(page: Page) -> None:
    token = create_key(page, "browser-one-day", days="1")
    dialog = page.get_by_role("dialog", name="Key created")
    expect(dialog).to_contain_text("It will not be shown again")
    dialog.get_by_role("button", name="Copy token").click()
    expect(dialog.get_by_role("status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == token
    dialog.get_by_role("button", name="I have copied it").click()
    expect(dialog).to_be_hidden()
    assert token not in page.content()
    created = row(page, "browser-one-day")
    expect(created.get_by_text("Expires soon")).to_be_visible()
    expect(created.locator("td.expires")).to_have_class(re.compile("warn-soon"))
    expect(created).to_contain_text(token[:11])


GREEN = "rgb(20, 108, 46)"  # --ok: said of a copy that worked, and only of that


def test_a_copy_that_worked_is_green_and_one_that_failed_is_not(page: Page) -> None:
    create_key(page, "browser-copy")
    dialog = page.get_by_role("dialog", name="Key created")
    dialog.get_by_role("button", name="Copy token").click()
    status = dialog.get_by_role("status")
    expect(status).to_have_text("Copied to the clipboard.")
    expect(status).to_have_css("color", GREEN)
    # The clipboard refuses (as a browser does without the permission): said in red.
    page.evaluate(
        "() => { navigator.clipboard.writeText = () => Promise.reject(new Error('denied')); }"
    )
    dialog.get_by_role("button", name="Copy token").click()
    expect(status).to_have_text("Copy failed: select the token and copy it by hand.")
    assert status.evaluate("node => getComputedStyle(node).color") != GREEN
    expect(status).to_have_css("color", "rgb(95, 20, 16)")


def test_rename_disable_enable_rotate_delete(page: Page) -> None:
    create_key(page, "browser-life")
    page.get_by_role("button", name="I have copied it").click()
    enhanced(page)
    key = row(page, "browser-life")
    key.get_by_text("Edit").click()
    key.get_by_label("Name").fill("browser-renamed")
    key.get_by_label("Detail").fill("renamed in the browser")
    key.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("The key was changed.")
    enhanced(page)
    key = row(page, "browser-renamed")
    expect(key).to_contain_text("renamed in the browser")

    confirm = page.locator("#confirm-dialog")
    for button, state in (("Disable", "disabled"), ("Enable", "active")):
        key.get_by_role("button", name=button).click()
        expect(confirm).to_contain_text("“browser-renamed”")
        confirm.get_by_role("button", name=button).click()
        expect(key.locator(".state")).to_have_text(state)
        enhanced(page)

    key.get_by_label(re.compile("Grace period")).select_option(label="grace 1 hour")
    key.get_by_role("button", name="Rotate").click()
    expect(confirm).to_contain_text("after a grace period of 1 hour")
    confirm.get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog", name=re.compile("Key rotated"))
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="I have copied it").click()
    expect(page.locator("tr[data-key-name='browser-renamed'] .state")).to_have_text(
        ["active", "rotating"]
    )
    enhanced(page)

    old = page.locator("tr[data-key-name='browser-renamed']").nth(1)
    old.get_by_role("button", name="Delete").click()
    expect(confirm).to_contain_text("Delete the key “browser-renamed”")
    confirm.get_by_role("button", name="Cancel").click()
    expect(page.locator("tr[data-key-name='browser-renamed']")).to_have_count(2)
    old.get_by_role("button", name="Delete").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("The key was deleted.")
    expect(page.locator("tr[data-key-name='browser-renamed']")).to_have_count(1)


def test_a_form_with_a_wrong_or_missing_token_is_refused(page: Page) -> None:
    open_create_form(page)
    page.get_by_label("Name", exact=True).first.fill("browser-forged")
    page.locator("form.create input[name=csrf]").evaluate("field => field.value = 'forged'")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    page.goto("/admin/keys")
    enhanced(page)
    open_create_form(page)
    page.locator("form.create input[name=csrf]").evaluate("field => field.remove()")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    page.goto("/admin/keys")
    expect(row(page, "browser-forged")).to_have_count(0)


def test_logout_ends_the_session(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    page.goto("/admin/keys")
    expect(page).to_have_url(re.compile(r"/admin/login$"))


def test_by_keyboard_at_phone_width(page: Page) -> None:
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/admin/keys")
    enhanced(page)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"the page scrolls sideways at phone width ({width} px)"
    summary = page.locator("details#create > summary")
    summary.focus()
    page.keyboard.press("Enter")  # unfolds the create form
    page.keyboard.press("Tab")
    expect(page.get_by_label("Name", exact=True).first).to_be_focused()
    page.keyboard.type("browser-keyboard")
    page.keyboard.press("Enter")  # submits the create form
    dialog = page.get_by_role("dialog", name="Key created")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Copy token")).to_be_focused()
    page.keyboard.press("Escape")  # closing the dialog takes the token off the page
    expect(page).to_have_url(re.compile(r"/admin/keys$"))
    expect(page.locator("#new-token")).to_have_count(0)
    enhanced(page)
    delete = row(page, "browser-keyboard").get_by_role("button", name="Delete")
    delete.focus()
    page.keyboard.press("Enter")
    confirm = page.locator("#confirm-dialog")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("The key was deleted.")
    expect(row(page, "browser-keyboard")).to_have_count(0)


def test_at_1280_the_list_is_above_the_fold_and_actions_do_not_wrap(page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})
    for name in ("browser-wide-one", "browser-wide-two with a longer name than most"):
        create_key(page, name)
        page.get_by_role("button", name="I have copied it").click()
    enhanced(page)
    expect(page.locator("details#create")).not_to_have_attribute("open", "")
    first = page.locator("table.keys tbody tr").first
    box = first.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= 720, f"the first key is below the fold ({box})"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the page scrolls sideways at 1280 px ({width} px)"
    for actions in page.locator("table.keys .row-actions").all():
        tops = actions.evaluate(
            "node => [...node.children].map((child) => child.getBoundingClientRect().top)"
        )
        assert len(set(tops)) == 1, f"the action buttons wrap: {tops}"
