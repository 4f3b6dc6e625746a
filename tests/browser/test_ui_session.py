"""Signing in and out in a real browser: wrong password, throttling, the slot list, logout, expired sessions."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.conftest import UI

pytestmark = pytest.mark.browser


async def test_wrong_password_shows_an_error_and_the_right_one_lists_the_operators_40_slots(ui: UI) -> None:
    await ui.page.goto(f"{ui.site}/")
    await ui.page.fill("#username", "serg")
    await ui.page.fill("#password", "not-the-password")
    await ui.page.click("#login-submit")
    await ui.page.wait_for_function("document.querySelector('#login-error').textContent !== ''")
    assert await ui.page.text_content("#login-error") == "Wrong username or password."
    assert ui.page.url.endswith("/")

    await ui.login()
    rows = ui.page.locator("tr[data-slot]")
    assert await rows.count() == 40
    assert await rows.first.get_attribute("data-slot") == "slot-001"
    assert await rows.last.get_attribute("data-slot") == "slot-040"
    # A fresh slot shows as free, and its ingest URL is the one the booth posts to.
    assert await rows.first.locator("a.slot-name").text_content() == "free"
    assert await ui.page.input_value("#url-slot-001") == f"{ui.site}/ingest/slot-001"


async def test_throttled_sign_in_explains_when_to_try_again(ui: UI, http: httpx.AsyncClient) -> None:
    for _ in range(10):
        r = await http.post("/api/login", json={"username": "serg", "password": "wrong"})
        assert r.status_code == 401
    await ui.page.goto(f"{ui.site}/")
    await ui.page.fill("#username", "serg")
    await ui.page.fill("#password", ui.password)  # even the right password is refused while throttled
    await ui.page.click("#login-submit")
    await ui.page.wait_for_function("document.querySelector('#login-error').textContent !== ''")
    message = await ui.page.text_content("#login-error")
    assert message is not None and message.startswith("Too many failed attempts. Try again in ")


async def test_logout_ends_the_session(ui: UI, http: httpx.AsyncClient) -> None:
    await ui.login()
    token = await ui.page.evaluate("sessionStorage.getItem('boothbridge.token')")
    await ui.page.click("button[aria-label='Log out']")
    await ui.page.wait_for_url("**/index.html?logout=1")
    assert await ui.page.text_content("#login-notice") == "You are signed out."
    assert await ui.page.evaluate("sessionStorage.getItem('boothbridge.token')") is None
    # Ended on the server too: the token the tab held is refused even if someone copied it.
    refused = await http.get("/api/slots", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "session_ended"
    await ui.page.goto(f"{ui.site}/slots.html")  # no way back in without signing in again
    await ui.page.wait_for_url("**/index.html?expired=1")


async def test_a_refused_token_returns_to_the_login_page(ui: UI) -> None:
    await ui.login()
    await ui.page.evaluate("sessionStorage.setItem('boothbridge.token', 'forged.token.value')")
    await ui.page.goto(f"{ui.site}/settings.html")
    await ui.page.wait_for_url("**/index.html?expired=1")
    assert await ui.page.text_content("#login-notice") == "Your session has ended. Please sign in again."


async def test_the_login_page_is_operable_from_the_keyboard(ui: UI) -> None:
    await ui.page.goto(f"{ui.site}/")
    assert await ui.page.evaluate("document.activeElement.id") == "username"  # autofocus
    await ui.page.keyboard.type("serg")
    await ui.page.keyboard.press("Tab")
    await ui.page.keyboard.type(ui.password)
    await ui.page.keyboard.press("Enter")
    await ui.page.wait_for_url("**/slots.html")
