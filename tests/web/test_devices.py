"""One account on several pages, in real Chromium against a real server: the pages are devices of one
nick (same channels, read markers, replies, reactions and deletions shared), and always-on, turned on
from the page, keeps the nick while no page is open."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.irc_client import RawClient
from tests.web.conftest import WebServer, start_web_server, stop_web_server
from tests.web.test_login import register_over_tcp

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, expect

CONFIG = """
login_attempts_per_ip = 100
flood_burst_lines = 1000
flood_lines_per_s = 1000.0
"""


@pytest.fixture(scope="module")
def devices_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("devices"), config_text=CONFIG)
    yield server
    stop_web_server(server)


class Device:
    """A page in its own browser context (as another computer would be), logged in to an account."""

    def __init__(self, browser: Any, url: str, nick: str, password: str) -> None:
        self.context = browser.new_context(viewport={"width": 1200, "height": 760})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(url)
        self.page.locator("#nick-input").fill(nick)
        self.page.locator("#password-input").fill(password)
        self.page.locator("#password-input").press("Enter")
        expect(self.page.locator("#me-account")).to_contain_text(f"logged in as {nick}")
        expect(self.page.locator("#me-nick")).to_have_text(nick)

    def say(self, text: str) -> None:
        field = self.page.locator("#message-input")
        field.fill(text)
        field.press("Enter")

    def line(self, text: str) -> Any:
        """The message whose own text has ``text`` (not a reply quoting it)."""
        return self.page.locator("#messages .line").filter(has=self.page.locator(".text", has_text=text))

    def buffer(self, name: str) -> Any:
        return self.page.locator(f"#buffer-list button[data-name='{name}']")

    def show(self, name: str) -> None:
        self.buffer(name).click()
        expect(self.page.locator("#buffer-title")).to_have_text(name)

    def action(self, text: str, action: str) -> None:
        line = self.line(text)
        line.hover()
        line.locator(f".line-actions button[data-action='{action}']").click()

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors


@pytest.fixture
def devices(browser: Any) -> Iterator[list[Device]]:
    opened: list[Device] = []
    yield opened
    for device in opened:
        device.close()


def tcp_client(server: WebServer, nick: str, channel: str = "#lobby") -> RawClient:
    client = server.irc.client()
    client.register(nick, caps=["message-tags", "echo-message", "server-time", "draft/message-redaction"])
    client.expect("366", p1="#lobby")
    if channel != "#lobby":
        client.send(f"JOIN {channel}")
        client.expect("366", p1=channel)
    return client


def names(client: RawClient, channel: str) -> list[str]:
    client.send(f"NAMES {channel}")
    lines = client.lines_until("366")
    return [name.lstrip("@+") for msg in lines if msg.command == "353" for name in msg.params[-1].split()]


def test_two_pages_of_one_account_are_one_nick_and_share_what_happens(
        browser: Any, devices_server: WebServer, devices: list[Device]) -> None:
    register_over_tcp(devices_server, "mia", "mia-two-screens")
    desk = Device(browser, devices_server.url, "mia", "mia-two-screens")
    devices.append(desk)
    desk.say("/join #devices")
    expect(desk.page.locator("#buffer-title")).to_have_text("#devices")
    # The second page lands on the same nick (no mia_), in the same rooms, with the same people.
    laptop = Device(browser, devices_server.url, "mia", "mia-two-screens")
    devices.append(laptop)
    expect(laptop.buffer("#devices")).to_be_visible()
    otto = tcp_client(devices_server, "otto", "#devices")
    assert names(otto, "#devices").count("mia") == 1
    laptop.show("#devices")
    expect(laptop.page.locator("#nick-list")).to_contain_text("otto")

    # Read on one page: the other's unread count goes too.
    desk.show("#lobby")
    laptop.show("#lobby")
    otto.send("PRIVMSG #devices :mia, did you see the release notes?")
    question = otto.expect("PRIVMSG", p1="mia, did you see the release notes?").tags["msgid"]
    for device in (desk, laptop):
        expect(device.buffer("#devices").locator(".badge")).to_have_text("1")
    desk.show("#devices")
    expect(laptop.buffer("#devices").locator(".badge")).to_have_count(0)

    # A reply and a reaction from the desk show on the laptop.
    laptop.show("#devices")
    desk.action("did you see the release notes?", "reply")
    desk.say("yes, reading them now")
    reply = otto.expect("PRIVMSG", p1="yes, reading them now")
    assert reply.tags["+draft/reply"] == question
    answer = laptop.line("yes, reading them now")
    expect(answer.locator(".reply-preview")).to_contain_text("did you see the release notes?")
    desk.action("did you see the release notes?", "react")
    desk.page.locator("#reaction-picker").get_by_role("menuitem", name="React 🎉").click()
    chip = laptop.line("did you see the release notes?").locator(".reaction", has_text="🎉")
    expect(chip).to_have_text("🎉1")
    expect(chip).to_have_attribute("title", "mia")
    expect(chip).to_have_class("reaction mine")  # the laptop is mia too: its own reaction

    # Deleting on the laptop a message sent from the desk: gone from both, and from the history.
    desk.say("wrong room, sorry")
    expect(laptop.line("wrong room, sorry")).to_be_visible()
    line = laptop.line("wrong room, sorry")
    line.hover()
    button = line.locator(".line-actions button[data-action='delete']")
    button.click()
    expect(button).to_have_text("Delete?")
    button.click()
    assert otto.expect("REDACT").params[0] == "#devices"
    for device in (desk, laptop):
        expect(device.line("wrong room, sorry")).to_have_count(0)
    # A third page of the account, opened later, gets the history without it (the reply and reaction kept).
    phone = Device(browser, devices_server.url, "mia", "mia-two-screens")
    devices.append(phone)
    phone.show("#devices")
    expect(phone.line("yes, reading them now")).to_be_visible()
    expect(phone.line("did you see the release notes?").locator(".reaction", has_text="🎉")).to_have_text("🎉1")
    expect(phone.line("wrong room, sorry")).to_have_count(0)
    otto.close()


def test_always_on_from_the_page_keeps_the_nick_and_what_was_said_meanwhile(
        browser: Any, devices_server: WebServer, devices: list[Device]) -> None:
    register_over_tcp(devices_server, "noor", "noor-stays-on")
    page = Device(browser, devices_server.url, "noor", "noor-stays-on")
    switch = page.page.locator("#always-on-input")
    expect(page.page.locator("#always-on-field")).to_be_visible()
    expect(switch).not_to_be_checked()  # asked NickServ: off, the server's default
    switch.check()
    expect(page.page.locator("#me-always-on")).to_be_visible()  # the sidebar says so under the name
    expect(page.page.locator("#me-account")).to_have_text("logged in as noor")
    expect(switch).to_be_checked()
    expect(switch).to_be_enabled()
    # NickServ's answers were read by the page, not shown in the server window.
    page.page.locator("#buffer-list button.server").click()
    expect(page.page.locator("#messages")).not_to_contain_text("Always-on")

    otto = devices_server.irc.client()
    otto.register("otto2", caps=["away-notify"])
    otto.expect("366", p1="#lobby")
    page.close()  # the last (only) page goes: the nick stays, marked away
    away = otto.expect("AWAY")
    assert (away.source or "").startswith("noor!") and away.params == ["Not connected (always-on)"]
    assert "noor" in names(otto, "#lobby")
    otto.send("PRIVMSG noor :the parcel came while you were out")

    # Logged in again: the conversation is back, unread, with the message; the switch says on.
    again = Device(browser, devices_server.url, "noor", "noor-stays-on")
    devices.append(again)
    expect(again.buffer("otto2").locator(".badge")).to_have_text("1")
    expect(again.page.locator("#always-on-input")).to_be_checked()
    expect(again.page.locator("#me-always-on")).to_be_visible()
    again.show("otto2")
    expect(again.line("the parcel came while you were out")).to_be_visible()

    # Off again: now closing the page is leaving.
    again.page.locator("#always-on-input").uncheck()
    expect(again.page.locator("#me-always-on")).to_be_hidden()
    expect(again.page.locator("#always-on-input")).to_be_enabled()
    devices.remove(again)
    again.close()
    while not (otto.expect("QUIT").source or "").startswith("noor!"):
        pass
    assert "noor" not in names(otto, "#lobby")
    otto.close()


def test_always_on_refused_by_the_servers_limit_says_why_and_the_box_goes_back(
        browser: Any, tmp_path_factory: pytest.TempPathFactory, devices: list[Device]) -> None:
    server = start_web_server(tmp_path_factory.mktemp("always-on-limit"),
                              config_text=CONFIG + "always_on_max_accounts = 0\n")
    try:
        register_over_tcp(server, "pia", "pia-wants-to-stay")
        page = Device(browser, server.url, "pia", "pia-wants-to-stay")
        devices.append(page)
        switch = page.page.locator("#always-on-input")
        switch.check()
        expect(page.page.locator("#messages")).to_contain_text("always_on_max_accounts")
        expect(switch).not_to_be_checked()
        expect(switch).to_be_enabled()
        expect(page.page.locator("#me-always-on")).to_be_hidden()
    finally:
        for device in devices:
            device.close()
        devices.clear()
        stop_web_server(server)
