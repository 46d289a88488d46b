"""The web page on a private server (server_password_hash), in Chromium: the server password is asked for
after the server says it needs one, a wrong one is refused clearly, the right one gets in, and the password
is kept nowhere but in memory (not in storage, the address, the page or a field)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from salotto.passwords import hash_password
from tests.irc_client import RawClient
from tests.web.conftest import WebServer, start_web_server, stop_web_server

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, expect

expect.set_options(timeout=8000)

SERVER_PASSWORD = "only for friends"
ACCOUNT_PASSWORD = "ivys own secret"
# Room for the tests' wrong guesses from 127.0.0.1.
CONFIG = f"""
server_password_hash = "{hash_password(SERVER_PASSWORD, n=2**10)}"
login_attempts_per_ip = 100
"""


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("web-private"), config_text=CONFIG)
    yield server
    stop_web_server(server)


@pytest.fixture
def page(browser: Any, private_server: WebServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(private_server.url)
    yield page
    context.close()
    assert not errors, errors


def stored(page: Page) -> str:
    return json.dumps(page.evaluate("""() => ({
        local: {...localStorage}, session: {...sessionStorage}, url: location.href,
        html: document.documentElement.outerHTML,
        values: [...document.querySelectorAll("input")].map((i) => i.value),
    })"""))


def tcp_member(server: WebServer, nick: str) -> RawClient:
    client = server.irc.client()
    client.send(f"PASS :{SERVER_PASSWORD}")
    client.register(nick)
    client.expect("366", p1="#lobby")
    return client


def test_the_server_password_is_asked_for_refused_when_wrong_and_lets_in_when_right(
        page: Page, private_server: WebServer) -> None:
    field = page.locator("#server-password-input")
    error = page.locator("#login-error")
    expect(field).to_be_hidden()  # a server without a password never shows it
    page.locator("#nick-input").fill("ivy")
    page.locator("#nick-input").press("Enter")
    # The server said 464: back on the form, the field shown, the cursor in it.
    expect(error).to_contain_text("This server is private: enter its password")
    expect(field).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "server-password-input"
    expect(page.locator("#chat")).to_be_hidden()

    field.fill("a wrong guess")
    field.press("Enter")
    expect(error).to_contain_text("The server password was refused: Password incorrect")
    expect(field).to_have_value("")
    assert "a wrong guess" not in stored(page)

    field.fill(SERVER_PASSWORD)
    field.press("Enter")
    expect(page.locator("#buffer-title")).to_have_text("#lobby")
    expect(page.locator("#nick-list")).to_contain_text("ivy")
    watcher = tcp_member(private_server, "ivywatch")
    watcher.send("WHOIS ivy")
    assert watcher.expect("311").params[1] == "ivy"
    watcher.close()
    assert SERVER_PASSWORD not in stored(page)


def test_the_server_password_is_kept_in_memory_across_a_wrong_account_password(
        page: Page, private_server: WebServer) -> None:
    owner = tcp_member(private_server, "jade")
    owner.send(f"REGISTER * * :{ACCOUNT_PASSWORD}")
    owner.expect("REGISTER", p0="SUCCESS")
    owner.send("QUIT")
    owner.expect("ERROR")
    owner.close()
    page.locator("#nick-input").fill("jade")
    page.locator("#nick-input").press("Enter")
    expect(page.locator("#server-password-input")).to_be_visible()
    page.locator("#server-password-input").fill(SERVER_PASSWORD)
    page.locator("#password-input").fill("not jades password")
    page.locator("#password-input").press("Enter")
    expect(page.locator("#login-error")).to_contain_text("Could not log in as “jade”")
    # The server password was right: it is not asked for again, and is in no field.
    field = page.locator("#server-password-input")
    expect(field).to_have_value("")
    expect(field).to_have_attribute("placeholder", "Given already (kept until you leave)")
    page.locator("#password-input").fill(ACCOUNT_PASSWORD)
    page.locator("#password-input").press("Enter")
    expect(page.locator("#me")).to_contain_text("logged in as jade")
    assert SERVER_PASSWORD not in stored(page) and ACCOUNT_PASSWORD not in stored(page)
    # /quit forgets it: the next visitor at this screen must know it.
    page.locator("#message-input").fill("/quit")
    page.locator("#message-input").press("Enter")
    expect(page.locator("#login")).to_be_visible()
    page.locator("#nick-input").fill("jade2")
    page.locator("#nick-input").press("Enter")
    expect(page.locator("#login-error")).to_contain_text("This server is private")
