"""Logging in and registering from the web page (SASL PLAIN, draft/account-registration), in a real
browser: the account is created from the form, a later visit logs in with the password, a wrong
password is refused clearly, the password is kept nowhere, NickServ's warnings are readable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.irc_client import RawClient
from tests.web.conftest import WebServer, start_web_server, stop_web_server

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, Route, expect

TIMEOUT_MS = 8000
expect.set_options(timeout=TIMEOUT_MS)

# Room for every test's attempts from 127.0.0.1; a small per-account limit to see the throttle; a
# short grace so the renaming of a squatter is seen quickly.
CONFIG = """
login_attempts_per_ip = 100
login_attempts_per_account = 3
nick_protection_grace_s = 1.0
"""


@pytest.fixture(scope="module")
def account_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("web-login"), config_text=CONFIG)
    yield server
    stop_web_server(server)


class Visitor:
    """A page on the connect form, in its own browser context (storage) or in one given."""

    def __init__(self, browser: Any, url: str, context: Any = None) -> None:
        self.own_context = context is None
        self.context = context or browser.new_context(viewport={"width": 1200, "height": 760})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(url)

    def submit(self, nick: str, password: str = "", register: bool = False) -> None:
        page = self.page
        page.locator("#nick-input").fill(nick)
        page.locator("#password-input").fill(password)
        page.locator("#register-input").set_checked(register)
        page.locator("#password-input").press("Enter")

    def join(self, nick: str, password: str = "", register: bool = False) -> None:
        self.submit(nick, password, register)
        expect(self.page.locator("#buffer-title")).to_have_text("#lobby")

    def server_lines(self) -> Any:
        self.page.locator("#buffer-list button.server").click()
        return self.page.locator("#messages")

    def stored(self) -> str:
        """Everything the page could keep: both storages, the address, the DOM with its field values."""
        return json.dumps(self.page.evaluate("""() => ({
            local: {...localStorage}, session: {...sessionStorage}, url: location.href,
            html: document.documentElement.outerHTML,
            values: [...document.querySelectorAll("input")].map((i) => i.value),
        })"""))

    def close(self) -> None:
        assert not self.errors, self.errors
        if self.own_context:
            self.context.close()


@pytest.fixture
def visitors(browser: Any, account_server: WebServer) -> Iterator[list[Visitor]]:
    opened: list[Visitor] = []
    yield opened
    for visitor in opened:
        visitor.close()


def visit(browser: Any, server: WebServer, visitors: list[Visitor], context: Any = None) -> Visitor:
    visitor = Visitor(browser, server.url, context)
    visitors.insert(0, visitor)  # closed before the context it may share
    return visitor


def watcher(server: WebServer, nick: str) -> RawClient:
    client = server.irc.client()
    client.register(nick)
    client.expect("366", p1="#lobby")
    return client


def register_over_tcp(server: WebServer, nick: str, password: str, source: str | None = None) -> None:
    """Create an account from a TCP client (from ``source``, a 127.x.y.z address, if given), then leave so
    the nick is free."""
    client = RawClient(server.irc.host, server.irc.port, source=source) if source else server.irc.client()
    client.register(nick)
    client.send(f"REGISTER * * :{password}")
    client.expect("REGISTER", p0="SUCCESS")
    client.send("QUIT")
    client.expect("ERROR")
    client.close()


def test_register_from_the_page_then_log_in_on_the_next_visit(browser: Any, account_server: WebServer,
                                                              visitors: list[Visitor]) -> None:
    password = "correct horse battery"
    first = visit(browser, account_server, visitors)
    # On 127.0.0.1 the password stays on this machine: no warning.
    expect(first.page.locator("#password-warning")).to_be_hidden()
    first.page.locator("#register-input").check()
    expect(first.page.locator("#login-button")).to_have_text("Register and join")
    first.join("alice", password, register=True)
    expect(first.page.locator("#me")).to_contain_text("logged in as alice")
    server_log = first.server_lines()
    expect(server_log).to_contain_text("Account alice registered.")
    expect(server_log).to_contain_text("You are now logged in as alice")
    # The nick is remembered, the password nowhere: not in storage, the address, the page or a field.
    assert first.page.evaluate("localStorage.getItem('salotto.nick')") == "alice"
    assert password not in first.stored()

    bob = watcher(account_server, "bob")
    first.page.locator("#buffer-list button[data-name='#lobby']").click()
    first.page.locator("#message-input").fill("/quit")
    first.page.locator("#message-input").press("Enter")
    bob.expect("QUIT")
    # The next visit (a new page, same browser) logs in with the password, before joining anything.
    second = visit(browser, account_server, visitors, first.context)
    expect(second.page.locator("#nick-input")).to_have_value("alice")
    second.page.locator("#password-input").fill(password)
    expect(second.page.locator("#login-button")).to_have_text("Log in and join")
    second.page.locator("#password-input").press("Enter")
    expect(second.page.locator("#buffer-title")).to_have_text("#lobby")
    expect(second.page.locator("#me")).to_contain_text("logged in as alice")
    assert password not in second.stored()
    bob.send("WHOIS alice")
    logged_in = bob.expect("330")
    assert logged_in.params[1:3] == ["alice", "alice"]
    bob.close()


def test_wrong_password_is_refused_clearly_and_the_right_one_then_works(
        browser: Any, account_server: WebServer, visitors: list[Visitor]) -> None:
    register_over_tcp(account_server, "carol", "carols secret")
    visitor = visit(browser, account_server, visitors)
    page = visitor.page
    visitor.submit("carol", "not the password")
    # Back on the form, disconnected, with the server's reason and the cursor in the emptied field.
    expect(page.locator("#login-error")).to_contain_text("Could not log in as “carol”")
    expect(page.locator("#login-error")).to_contain_text("invalid account name or password")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#chat")).to_be_hidden()
    expect(page.locator("#password-input")).to_have_value("")
    assert page.evaluate("document.activeElement.id") == "password-input"
    assert "not the password" not in visitor.stored()
    page.locator("#password-input").fill("carols secret")
    page.locator("#password-input").press("Enter")
    expect(page.locator("#buffer-title")).to_have_text("#lobby")
    expect(page.locator("#me")).to_contain_text("logged in as carol")


def test_too_many_wrong_passwords_say_when_to_try_again(browser: Any, account_server: WebServer,
                                                        visitors: list[Visitor]) -> None:
    # Registered from elsewhere: the page's guesses come from an address that never logged in to dave,
    # which the account's limit holds back (the owner's own addresses it does not).
    register_over_tcp(account_server, "dave", "daves secret", source="127.0.0.2")
    visitor = visit(browser, account_server, visitors)
    error = visitor.page.locator("#login-error")
    for attempt in range(3):  # login_attempts_per_account
        visitor.submit("dave", f"guess {attempt}")
        expect(error).to_contain_text("invalid account name or password")
        visitor.page.evaluate("document.getElementById('login-error').textContent = ''")
    visitor.submit("dave", "guess 3")
    expect(error).to_contain_text("too many attempts, try again in")


def test_registration_failures_show_the_servers_description(browser: Any, account_server: WebServer,
                                                            visitors: list[Visitor]) -> None:
    visitor = visit(browser, account_server, visitors)
    error = visitor.page.locator("#login-error")
    visitor.submit("erin", "short", register=True)
    expect(error).to_contain_text("Could not register “erin”:")
    expect(error).to_contain_text("at least 8 characters")  # account_password_min_len
    assert visitor.page.evaluate("document.activeElement.id") == "password-input"
    register_over_tcp(account_server, "frank", "franks secret")
    visitor.submit("frank", "another password", register=True)
    expect(error).to_contain_text("Could not register “frank”:")
    expect(error).to_contain_text("already exists")
    assert visitor.page.evaluate("document.activeElement.id") == "nick-input"
    expect(visitor.page.locator("#chat")).to_be_hidden()


def test_a_long_password_goes_in_400_byte_pieces(browser: Any, account_server: WebServer,
                                                 visitors: list[Visitor]) -> None:
    # "\0longpw\0" and 291 characters: 299 bytes, exactly 400 in base64, so a "+" must follow.
    password = "p" * 291
    visitor = visit(browser, account_server, visitors)
    pieces = visitor.page.evaluate(
        "async (pw) => (await import('./irc.js')).saslPlainChunks('longpw', pw).map((c) => c.length)", password)
    assert pieces == [400, 1]
    register_over_tcp(account_server, "longpw", password)
    visitor.join("longpw", password)
    expect(visitor.page.locator("#me")).to_contain_text("logged in as longpw")


def test_nickserv_warning_is_readable_and_a_squatter_is_renamed(browser: Any, account_server: WebServer,
                                                                visitors: list[Visitor]) -> None:
    register_over_tcp(account_server, "gina", "ginas secret")
    visitor = visit(browser, account_server, visitors)
    visitor.join("gina")
    expect(visitor.page.locator("#me")).to_contain_text("not logged in")
    # The warning lands in the server buffer, which is marked so it is not missed.
    server_entry = visitor.page.locator("#buffer-list button.server")
    expect(server_entry).to_have_class("buffer server mention")
    expect(visitor.server_lines()).to_contain_text("The nick gina is registered. Log in within")
    expect(visitor.page.locator("#me-nick")).to_contain_text("Guest", timeout=5000)
    expect(visitor.server_lines()).to_contain_text("You did not log in to gina in time")


def test_a_password_on_plain_http_over_the_network_is_warned_about(browser: Any, account_server: WebServer,
                                                                   visitors: list[Visitor]) -> None:
    # The same page as seen at a LAN name over http (requests answered by the real server).
    visitor = visit(browser, account_server, visitors)

    def forward(route: Route) -> None:
        local = route.request.url.replace("http://chat.example.test/", account_server.url)
        route.fulfill(response=route.fetch(url=local))

    visitor.page.route("http://chat.example.test/**", forward)
    visitor.page.goto("http://chat.example.test/")
    warning = visitor.page.locator("#password-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("not on https")
    # A request still being forwarded (the favicon) must not outlive the page: its fetch would fail in
    # the next test, once this one's context is closed.
    visitor.page.unroute_all(behavior="ignoreErrors")


def test_identify_typed_to_nickserv_is_not_shown(browser: Any, account_server: WebServer,
                                                 visitors: list[Visitor]) -> None:
    register_over_tcp(account_server, "hank", "hanks-secret")
    visitor = visit(browser, account_server, visitors)
    visitor.join("hank")
    visitor.page.locator("#message-input").fill("/msg NickServ IDENTIFY hank hanks-secret")
    visitor.page.locator("#message-input").press("Enter")
    expect(visitor.page.locator("#me")).to_contain_text("logged in as hank")
    expect(visitor.server_lines()).to_contain_text("You are now logged in as hank")
    assert "hanks-secret" not in visitor.stored()
