"""The web page (real Chromium) and the Tk window (under Xvfb) against a real salotto: logged in to one
account (one nick, two devices), each sees what the other does (replies, reactions, deletions); a picture
dropped into the page shows as a thumbnail in the Tk window; last month's messages are found from both."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from salotto.clients.core import Client, SessionConfig
from salotto.clients.core.files import filehost
from tests.clients.test_files_search import needs_filehost, needs_search, seed_history
from tests.clients.test_search_files_core import png
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


# -- files and search: a picture dropped into the page, last month's messages found from both --------


@pytest.fixture(scope="module")
def sharing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebServer, dict[str, str]]]:
    """salotto with its web port (the file host) and last month's talk about a cake in #lobby."""
    tmp = tmp_path_factory.mktemp("sharing")
    cake = seed_history(tmp / "data")
    server = start_web_server(tmp, config_text=CONFIG)
    yield server, cake
    stop_web_server(server)


DROP_PICTURE = """async ({name, b64}) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, {type: "image/png"}));
  const target = document.querySelector("#messages");
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
}"""
# Without the page's upload UI (the web page's share button and drop zone not merged yet): the page's
# own fetch does what the page would, POST to the file host with the login, then the link is said.
FETCH_UPLOAD = """async ({url, account, password, name, b64}) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const response = await fetch(url, {method: "POST", body: new Blob([bytes], {type: "image/png"}), headers: {
    "Authorization": "Basic " + btoa(account + ":" + password), "Content-Type": "image/png",
    "Content-Disposition": `attachment; filename="${name}"`}});
  if (response.status !== 201) throw new Error(`upload: ${response.status} ${await response.text()}`);
  return new URL(response.headers.get("Location"), url).href;
}"""


def test_a_picture_dropped_into_the_page_shows_as_a_thumbnail_in_the_tk_window(
        browser: Any, root: tk.Tk, sharing_server: tuple[WebServer, dict[str, str]]) -> None:  # noqa: F811
    server, _ = sharing_server
    register_over_tcp(server, "pia", "pia-drops-pictures")
    register_over_tcp(server, "quin", "quin-on-the-desktop")
    page = Device(browser, server.url, "pia", "pia-drops-pictures")
    try:
        window = tk_device(root, server, "quin", "quin-on-the-desktop")
        needs_filehost(window.client)
        host = filehost(window.session)
        picture = png(160, 90)
        b64 = base64.b64encode(picture).decode("ascii")
        if page.page.locator("#drop-zone").count():
            page.page.evaluate(DROP_PICTURE, {"name": "terrace.png", "b64": b64})
        else:
            url = page.page.evaluate(FETCH_UPLOAD, {"url": host, "account": "pia", "password": "pia-drops-pictures",
                                                    "name": "terrace.png", "b64": b64})
            page.say(url)
        assert pump_until(root, lambda: any("/files/" in u and u.endswith("/terrace.png") and
                                            window.view.thumbnail_shown(u) for u in
                                            window.client.file_urls(window.view.content())), 20.0), (
            window.view.content())
        url = next(u for u in window.client.file_urls(window.view.content()) if u.endswith("/terrace.png"))
        preview = window.client.previews[url]
        assert preview is not None and preview.image == picture and (preview.width, preview.height) == (160, 90)
        line = line_with(window, url)
        assert line.nick == "pia"
        window.close()
    finally:
        page.close()


def test_last_months_messages_are_found_from_the_page_and_from_the_tk_window(
        browser: Any, root: tk.Tk, sharing_server: tuple[WebServer, dict[str, str]]) -> None:  # noqa: F811
    server, cake = sharing_server
    register_over_tcp(server, "rita", "rita-searches-a-lot")
    page = Device(browser, server.url, "rita", "rita-searches-a-lot")
    try:
        window = tk_device(root, server, "rita", "rita-searches-a-lot")
        needs_search(window.client)
        newest = f"cake recipe number {len(cake) - 1:02d}: more chocolate"
        # The Tk window: /search, the results list, and the jump to a message of last month.
        window.entry.insert(0, "/search -in #lobby recipe")
        window.send_button.invoke()
        assert pump_until(root, lambda: bool(window.search_list.get_children()), 20.0), window.search_label.cget("text")
        assert window.search_list.item("0", "values")[3] == newest
        window.search_list.selection_set("0")
        window.jump_to_selected()
        assert pump_until(root, lambda: newest in window.view.found_text())
        # The page: its search panel finds the same (when the page's search UI is there).
        if page.page.locator("#search-button").count():
            page.page.locator("#search-button").click()
            page.page.locator("#search-input").fill("recipe")
            page.page.locator("#search-input").press("Enter")
            expect(page.page.locator("#search-results")).to_contain_text(newest)
        window.close()
    finally:
        page.close()
