"""The web chat in a real browser (Debian's Chromium driven by Playwright): people chat with each
other and with a TCP IRC client, see who is typing, get unread marks, never get HTML injected, and
come back after the server restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.irc_client import RawClient
from tests.web.conftest import WebServer, free_port, start_web_server, stop_web_server

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, expect

TIMEOUT_MS = 8000
expect.set_options(timeout=TIMEOUT_MS)


class Person:
    """One browser context (its own storage) with the chat open and a nickname chosen."""

    def __init__(self, browser: Any, url: str, nick: str, viewport: dict[str, int] | None = None) -> None:
        self.context = browser.new_context(viewport=viewport or {"width": 1200, "height": 760})
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("dialog", self._dialog)
        self.page.goto(url)
        # The nickname field has the focus: typing and Enter is all it takes.
        self.page.keyboard.type(nick)
        self.page.keyboard.press("Enter")
        expect(self.page.locator("#buffer-title")).to_have_text("#lobby")
        expect(self.page.locator("#nick-list")).to_contain_text(nick)
        self.nick = nick

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def say(self, text: str) -> None:
        field = self.page.locator("#message-input")
        field.fill(text)
        field.press("Enter")

    def line(self, text: str) -> Any:
        return self.page.locator("#messages .line", has_text=text)

    def close(self) -> None:
        assert not self.errors, self.errors
        assert not self.dialogs, self.dialogs
        self.context.close()



def tcp_client(server: WebServer, nick: str) -> RawClient:
    client = server.irc.client()
    client.register(nick, caps=["message-tags", "echo-message"])
    client.expect("366", p1="#lobby")
    return client


def test_two_pages_and_a_tcp_client_chat_in_the_lobby(browser: Any, web_server: WebServer,
                                                      people: list[Person]) -> None:
    alice = Person(browser, web_server.url, "alice")
    people.append(alice)
    # Landed in #lobby with the keyboard in the message field.
    assert alice.page.evaluate("document.activeElement.id") == "message-input"
    bob = Person(browser, web_server.url, "bob")
    people.append(bob)
    carol = tcp_client(web_server, "carol")

    alice.say("hello bob, hello carol")
    expect(bob.line("hello bob, hello carol")).to_be_visible()
    msg = carol.expect("PRIVMSG")
    assert msg.source is not None and msg.source.startswith("alice!")
    assert msg.params == ["#lobby", "hello bob, hello carol"]

    bob.say("hi alice, from bob")
    expect(alice.line("hi alice, from bob")).to_be_visible()
    assert carol.expect("PRIVMSG").params[1] == "hi alice, from bob"

    carol.send("PRIVMSG #lobby :greetings from a terminal")
    for person in (alice, bob):
        line = person.line("greetings from a terminal")
        expect(line).to_be_visible()
        expect(line.locator(".nick")).to_have_text("carol")
        # A timestamp from server-time, machine-readable in the datetime attribute.
        assert line.locator("time").get_attribute("datetime")
    expect(alice.page.locator("#nick-list")).to_contain_text("bob")
    expect(alice.page.locator("#nick-list")).to_contain_text("carol")
    carol.send("QUIT :bye")
    expect(alice.page.locator("#nick-list")).not_to_contain_text("carol")
    carol.close()


def test_typing_indicator_is_seen_by_the_other_page(browser: Any, web_server: WebServer,
                                                    people: list[Person]) -> None:
    dora = Person(browser, web_server.url, "dora")
    erin = Person(browser, web_server.url, "erin")
    people += [dora, erin]
    watcher = tcp_client(web_server, "watcher")
    erin.page.locator("#message-input").press_sequentially("I am writing someth")
    expect(dora.page.locator("#typing")).to_have_text("erin is typing…")
    tagmsg = watcher.expect("TAGMSG")
    assert tagmsg.tags.get("+typing") == "active" and tagmsg.params == ["#lobby"]
    # Emptying the field says "done"; the line goes away.
    erin.page.locator("#message-input").fill("")
    erin.page.locator("#message-input").dispatch_event("input")
    expect(dora.page.locator("#typing")).to_have_text("")
    # A TCP client's +typing shows too.
    watcher.send("@+typing=active TAGMSG #lobby")
    expect(dora.page.locator("#typing")).to_have_text("watcher is typing…")
    watcher.send("PRIVMSG #lobby :done typing")
    expect(dora.page.locator("#typing")).to_have_text("")
    watcher.close()


def test_html_in_a_message_is_shown_as_text_and_links_are_safe(browser: Any, web_server: WebServer,
                                                                people: list[Person]) -> None:
    frank = Person(browser, web_server.url, "frank")
    people.append(frank)
    mallory = tcp_client(web_server, "mallory")
    payload = "<script>alert(1)</script> <img src=x onerror=alert(2)> <b>bold?</b>"
    mallory.send(f"PRIVMSG #lobby :{payload}")
    mallory.send("PRIVMSG #lobby :see javascript:alert(3) and https://example.org/a_(b) and www.example.com.")
    line = frank.line("<script>alert(1)</script>")
    expect(line).to_be_visible()
    expect(line.locator(".text")).to_have_text(payload)
    messages = frank.page.locator("#messages")
    assert messages.locator("script").count() == 0
    assert messages.locator("img").count() == 0
    assert messages.locator("b").count() == 0
    links = frank.line("see javascript").locator("a")
    expect(links).to_have_count(2)
    assert links.nth(0).get_attribute("href") == "https://example.org/a_(b)"
    assert links.nth(1).get_attribute("href") == "http://www.example.com/"
    assert links.nth(1).get_attribute("rel") == "noopener noreferrer nofollow"
    # Nothing ran (no dialog: Person.close checks) and the page still works.
    frank.say("still fine")
    expect(frank.line("still fine")).to_be_visible()
    mallory.close()


def test_private_message_opens_a_conversation_with_unread_count_and_mention(
        browser: Any, web_server: WebServer, people: list[Person]) -> None:
    gina = Person(browser, web_server.url, "gina")
    people.append(gina)
    hank = tcp_client(web_server, "hank")
    hank.send("PRIVMSG gina :psst, gina")
    hank.send("PRIVMSG gina :are you there?")
    entry = gina.page.locator("#buffer-list button[data-name='hank']")
    expect(entry).to_have_class("buffer query mention")
    expect(entry.locator(".badge")).to_have_text("2")
    # A mention in a room marks that room too; a plain message only counts.
    hank.send("JOIN #side")
    gina.say("/join #side")
    expect(gina.page.locator("#buffer-title")).to_have_text("#side")
    gina.page.locator("#buffer-list button[data-name='#lobby']").click()
    hank.send("PRIVMSG #side :nothing special")
    side = gina.page.locator("#buffer-list button[data-name='#side']")
    expect(side.locator(".badge")).to_have_text("1")
    expect(side).not_to_have_class("buffer channel mention")
    hank.send("PRIVMSG #side :gina: look here")
    expect(side).to_have_class("buffer channel mention")
    # Opening the conversation clears its marks; the answer reaches the TCP client.
    entry.click()
    expect(gina.page.locator("#buffer-title")).to_have_text("hank")
    expect(entry.locator(".badge")).to_have_count(0)
    expect(gina.line("are you there?")).to_be_visible()
    gina.say("yes, here")
    assert hank.expect("PRIVMSG", p0="hank").params[1] == "yes, here"
    hank.close()


def test_phone_width_has_no_sideways_scroll_and_rooms_slide_in(browser: Any, web_server: WebServer,
                                                               people: list[Person]) -> None:
    ivy = Person(browser, web_server.url, "ivy", viewport={"width": 390, "height": 844})
    people.append(ivy)
    page = ivy.page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator("#message-input")).to_be_in_viewport()
    expect(page.locator("#buffer-list")).not_to_be_in_viewport()
    page.locator("#menu-button").click()
    expect(page.locator("#buffer-list")).to_be_in_viewport()
    page.locator("#buffer-list button[data-name='#lobby']").click()
    expect(page.locator("#buffer-list")).not_to_be_in_viewport()
    ivy.say("typed on a phone")
    expect(ivy.line("typed on a phone")).to_be_visible()
    # With the room list folded away, the menu button shows what is unread.
    jim = tcp_client(web_server, "jim")
    jim.send("PRIVMSG ivy :hello phone")
    expect(page.locator("#menu-badge")).to_have_text("1")
    expect(page.locator("#menu-badge")).to_have_class("badge mention")
    jim.close()


def test_page_reconnects_after_the_server_restarts(browser: Any, tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    server = start_web_server(tmp_path / "first", web_listen=address)
    person: Person | None = None
    try:
        person = Person(browser, server.url, "jack")
        person.say("before the restart")
        expect(person.line("before the restart")).to_be_visible()
        stop_web_server(server)
        expect(person.page.locator("#connection-banner")).to_be_visible()
        server = start_web_server(tmp_path / "second", web_listen=address)
        expect(person.page.locator("#connection-banner")).to_be_hidden(timeout=15000)
        expect(person.page.locator("#buffer-list button[data-name='#lobby']")).not_to_have_class(
            "buffer channel parted")
        kate = tcp_client(server, "kate")
        person.say("after the restart")
        assert kate.expect("PRIVMSG").params == ["#lobby", "after the restart"]
        kate.close()
    finally:
        if person is not None:
            person.errors = [e for e in person.errors if "WebSocket" not in e]  # the failed retries
            person.close()
        stop_web_server(server)


def test_on_a_postgresql_store_the_page_chats_and_finds_the_history_after_a_restart(
    browser: Any, tmp_path: Path, postgres_url: str
) -> None:
    """``--storage-backend postgresql`` end to end: a page and a TCP client chat; after a restart (a new
    data directory, the same database) a new page finds what was said in the channel's history."""
    address = f"127.0.0.1:{free_port()}"
    flags = ["--storage-backend", "postgresql", "--storage-url", postgres_url]
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    server = start_web_server(tmp_path / "first", *flags, web_listen=address)
    people: list[Person] = []
    try:
        alice = Person(browser, server.url, "alice")
        people.append(alice)
        carol = tcp_client(server, "carol")
        alice.say("kept in postgres")
        assert carol.expect("PRIVMSG").params == ["#lobby", "kept in postgres"]
        carol.send("PRIVMSG #lobby :and my answer too")
        expect(alice.line("and my answer too")).to_be_visible()
        carol.close()
        stop_web_server(server)
        server = start_web_server(tmp_path / "second", *flags, web_listen=address)
        dave = Person(browser, server.url, "dave")
        people.append(dave)
        expect(dave.line("kept in postgres")).to_be_visible()
        expect(dave.line("and my answer too")).to_be_visible()
    finally:
        for person in people:
            person.errors = [e for e in person.errors if "WebSocket" not in e]  # alice's page lost the server
            person.close()
        stop_web_server(server)
