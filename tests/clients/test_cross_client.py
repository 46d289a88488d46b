"""The web page (real Chromium) and the Tk window (under Xvfb) logged in to one account: one nick, two
devices, each seeing what the other does (replies, reactions, deletions), against a real salotto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from salotto.clients.core import Client, SessionConfig
from tests.clients.test_tk import choose, line_with, pump_until, root, sees  # noqa: F401 (root: a fixture)
from tests.web.conftest import WebServer, browser, start_web_server, stop_web_server  # noqa: F401 (browser)
from tests.web.test_login import register_over_tcp

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
import tkinter as tk

from playwright.sync_api import expect

from salotto.clients.tk.theme import apply_theme
from salotto.clients.tk.window import ChatWindow
from tests.web.test_devices import Device, tcp_client

CONFIG = """
login_attempts_per_ip = 100
"""


@pytest.fixture(scope="module")
def cross_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("cross"), config_text=CONFIG)
    yield server
    stop_web_server(server)


def tk_device(tk_root: tk.Tk, server: WebServer, nick: str, password: str) -> ChatWindow:
    top = tk.Toplevel(tk_root)
    top.geometry("900x560")
    config = SessionConfig(nick=nick, sasl_account=nick, sasl_password=password)
    client = Client(server.irc.host, server.irc.port, config)
    window = ChatWindow(top, client, apply_theme(tk_root, "light", 10))
    client.start()
    assert pump_until(tk_root, lambda: window.session.account == nick and window.shown_key == "#lobby"), (
        window.view.content())
    return window


def test_a_page_and_the_tk_window_of_one_account_see_each_others_replies_reactions_and_deletions(
        browser: Any, root: tk.Tk, cross_server: WebServer) -> None:  # noqa: F811
    register_over_tcp(cross_server, "kai", "kai-on-two-clients")
    page = Device(browser, cross_server.url, "kai", "kai-on-two-clients")
    try:
        window = tk_device(root, cross_server, "kai", "kai-on-two-clients")
        assert window.session.nick == "kai"  # the same nick: a device of the page's user, not kai_
        otto = tcp_client(cross_server, "otto")
        assert pump_until(root, lambda: sees(window, "otto"))
        # The people list shows kai once, on both.
        assert [n.lstrip("@+") for n in window.nick_list.get(0, "end")].count("kai") == 1
        expect(page.page.locator("#nick-list li", has_text="kai")).to_have_count(1)

        otto.send("PRIVMSG #lobby :who brings the cake on friday?")
        expect(page.line("who brings the cake on friday?")).to_be_visible()
        # A reply and a reaction from the page show in the Tk window.
        page.action("who brings the cake on friday?", "reply")
        page.say("I do, chocolate")
        assert pump_until(root, lambda: "\u21aa otto  who brings the cake on friday?\n" in window.view.content()), (
            window.view.content())
        assert "I do, chocolate" in window.view.content()
        page.action("who brings the cake on friday?", "react")
        page.page.locator("#reaction-picker").get_by_role("menuitem", name="React 🎉").click()
        assert pump_until(root, lambda: " 🎉 1 " in window.view.content()), window.view.content()
        cake = line_with(window, "who brings the cake on friday?")
        assert cake.reactions == {"🎉": ["kai"]}

        # The page's message is the Tk window's own (one nick): deleted there, it goes from the page.
        mine = line_with(window, "I do, chocolate")
        assert mine.own
        choose(root, window, mine, "Delete message")
        expect(page.line("I do, chocolate")).to_have_count(0)
        assert pump_until(root, lambda: "I do, chocolate" not in window.view.content())
        expect(page.line("who brings the cake on friday?")).to_be_visible()
        otto.close()
        window.close()
    finally:
        page.close()
