"""Replies, reactions, unread marks, notifications and pasted lines on the web page, in real Chromium
against a real server, with a TCP client on the other side to see what goes over the wire."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.irc_client import RawClient
from tests.web.conftest import WebServer, start_web_server, stop_web_server

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import expect

from tests.web.test_browser import Person

# The TCP side sends a screenful of lines at once.
CONFIG = """
flood_burst_lines = 1000
flood_lines_per_s = 1000.0
"""


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("replies"), config_text=CONFIG)
    yield server
    stop_web_server(server)



def tcp_client(server: WebServer, nick: str, channel: str = "#lobby") -> RawClient:
    client = server.irc.client()
    client.register(nick, caps=["message-tags", "echo-message", "server-time"])
    client.expect("366", p1="#lobby")
    if channel != "#lobby":
        client.send(f"JOIN {channel}")
        client.expect("366", p1=channel)
    return client


def say_from(client: RawClient, channel: str, text: str) -> str:
    """Send a message and return its msgid (from the echo)."""
    client.send(f"PRIVMSG {channel} :{text}")
    echo = client.expect("PRIVMSG", p1=text)
    return echo.tags["msgid"]


def line_action(person: Person, text: str, action: str) -> None:
    line = person.line(text)
    line.hover()
    line.locator(f".line-actions button[data-action='{action}']").click()


def test_reply_is_sent_with_its_tag_shown_with_a_preview_and_jumps_to_the_original(
        browser: Any, chat_server: WebServer, people: list[Person]) -> None:
    alice = Person(browser, chat_server.url, "alice")
    bob = Person(browser, chat_server.url, "bob")
    people += [alice, bob]
    carol = tcp_client(chat_server, "carol", "#replies")
    for person in (alice, bob):
        person.say("/join #replies")
        expect(person.page.locator("#buffer-title")).to_have_text("#replies")
    question = say_from(carol, "#replies", "what's for lunch today?")
    for i in range(60):  # the question scrolls out of sight
        carol.send(f"PRIVMSG #replies :chatter {i}")
    expect(alice.line("chatter 59")).to_be_visible()
    expect(alice.line("what's for lunch today?")).not_to_be_in_viewport()

    alice.page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
    line_action(alice, "what's for lunch today?", "reply")
    expect(alice.page.locator("#reply-bar")).to_be_visible()
    expect(alice.page.locator("#reply-bar")).to_contain_text("carol")
    expect(alice.page.locator("#reply-bar")).to_contain_text("what's for lunch today?")
    alice.say("pizza, as every Friday")
    expect(alice.page.locator("#reply-bar")).to_be_hidden()
    sent = carol.expect("PRIVMSG", p1="pizza, as every Friday")
    assert sent.tags["+draft/reply"] == question

    # Bob sees the answer with a quote of the question above it; a click brings the question back.
    answer = bob.line("pizza, as every Friday")
    expect(answer).to_be_in_viewport()
    preview = answer.locator(".reply-preview")
    expect(preview).to_contain_text("carol")
    expect(preview).to_contain_text("what's for lunch today?")
    original = bob.page.locator(f"#messages .line[data-msgid='{question}']")
    expect(original).not_to_be_in_viewport()
    preview.click()
    expect(original).to_be_in_viewport()
    expect(original).to_have_class("line privmsg flash")
    # Away from the end, a button leads back to the latest line.
    latest = bob.page.locator("#jump-latest")
    expect(latest).to_be_visible()
    latest.click()
    expect(answer).to_be_in_viewport()
    expect(latest).to_be_hidden()

    # A reply from an IRC client shows the same way; Escape drops a reply being written.
    carol.send(f"@+draft/reply={sent.tags['msgid']} PRIVMSG #replies :with extra cheese")
    expect(alice.line("with extra cheese").locator(".reply-preview")).to_contain_text("pizza, as every Friday")
    line_action(alice, "with extra cheese", "reply")
    expect(alice.page.locator("#reply-bar")).to_be_visible()
    alice.page.locator("#message-input").press("Escape")
    expect(alice.page.locator("#reply-bar")).to_be_hidden()
    alice.say("no tag on this one")
    assert "+draft/reply" not in carol.expect("PRIVMSG", p1="no tag on this one").tags
    carol.close()


def test_reactions_one_click_away_counted_with_names_and_replayed_from_history(
        browser: Any, chat_server: WebServer, people: list[Person]) -> None:
    dora = Person(browser, chat_server.url, "dora")
    erin = Person(browser, chat_server.url, "erin")
    people += [dora, erin]
    frank = tcp_client(chat_server, "frank", "#reactions")
    for person in (dora, erin):
        person.say("/join #reactions")
        expect(person.page.locator("#buffer-title")).to_have_text("#reactions")
    msgid = say_from(frank, "#reactions", "I passed the exam!")

    line_action(dora, "I passed the exam!", "react")
    picker = dora.page.locator("#reaction-picker")
    expect(picker).to_be_visible()
    picker.get_by_role("menuitem", name="React 🎉").click()
    expect(picker).to_be_hidden()
    tag = frank.expect("TAGMSG")
    assert tag.params == ["#reactions"]
    assert tag.tags["+draft/react"] == "🎉" and tag.tags["+draft/reply"] == msgid

    chip = erin.line("I passed the exam!").locator(".reaction", has_text="🎉")
    expect(chip).to_have_text("🎉1")
    expect(chip).to_have_attribute("title", "dora")
    # Erin adds hers with a click on the same reaction; an IRC client's reaction counts too.
    chip.click()
    frank.send(f"@+draft/react=🎉;+draft/reply={msgid} TAGMSG #reactions")
    frank.send(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG #reactions")
    for person in (dora, erin):
        line = person.line("I passed the exam!")
        expect(line.locator(".reaction", has_text="🎉")).to_have_text("🎉3")
        expect(line.locator(".reaction", has_text="🎉")).to_have_attribute("title", "dora, erin, frank")
        expect(line.locator(".reaction", has_text="👍")).to_have_text("👍1")
        expect(line.locator(".reaction.mine")).to_have_count(1)
    # Someone who comes later finds them in the channel's history, aggregated the same way.
    gina = Person(browser, chat_server.url, "gina")
    people.append(gina)
    gina.say("/join #reactions")
    line = gina.line("I passed the exam!")
    expect(line.locator(".reaction", has_text="🎉")).to_have_text("🎉3")
    expect(line.locator(".reaction", has_text="👍")).to_have_attribute("title", "frank")
    frank.close()


def test_unread_count_in_the_title_and_a_new_messages_line(
        browser: Any, chat_server: WebServer, people: list[Person]) -> None:
    hank = Person(browser, chat_server.url, "hank")
    people.append(hank)
    ivan = tcp_client(chat_server, "ivan")
    page = hank.page
    ivan.send("PRIVMSG #lobby :seen already")
    expect(hank.line("seen already")).to_be_visible()
    hank.say("/join #elsewhere")
    expect(page.locator("#buffer-title")).to_have_text("#elsewhere")
    for text in ("first unread", "second unread", "third unread"):
        ivan.send(f"PRIVMSG #lobby :{text}")
    expect(page).to_have_title("(3) salotto")
    ivan.send("PRIVMSG hank :a word in private")
    expect(page).to_have_title("(4) salotto")
    page.locator("#buffer-list button[data-name='#lobby']").click()
    expect(page).to_have_title("(1) salotto")
    marker = page.locator("#messages .new-marker")
    expect(marker).to_have_text("New messages")
    # The line sits right above the first unread message.
    assert page.evaluate("document.querySelector('#messages .new-marker').nextElementSibling.textContent"
                         ).endswith("first unread")
    page.locator("#buffer-list button[data-name='ivan']").click()
    expect(page).to_have_title("salotto")
    ivan.close()


def test_a_mention_while_the_page_is_hidden_shows_a_desktop_notification(
        browser: Any, chat_server: WebServer) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    context.grant_permissions(["notifications"])
    # Record what the page shows, and still show it. Headless Chromium never hides a page (another tab
    # in front leaves document.hidden false), so the page is told it is hidden as a browser would.
    context.add_init_script("""
        window.__hidden = false;
        Object.defineProperty(Document.prototype, 'hidden', { get: () => window.__hidden });
        Object.defineProperty(Document.prototype, 'visibilityState', {
          get: () => (window.__hidden ? 'hidden' : 'visible') });
        window.__shown = [];
        const Real = window.Notification;
        window.Notification = class extends Real {
          constructor(title, options) { super(title, options); window.__shown.push([title, options.body]); }
        };
        Object.defineProperty(window.Notification, 'permission', { get: () => Real.permission });
        window.Notification.requestPermission = (...a) => Real.requestPermission(...a);
    """)
    page = context.new_page()
    try:
        page.goto(chat_server.url)
        page.keyboard.type("julia")
        page.keyboard.press("Enter")
        expect(page.locator("#buffer-title")).to_have_text("#lobby")
        # Permission is asked on a click, never at load: here it was granted, so no button.
        expect(page.locator("#notify-button")).to_be_hidden()
        kim = tcp_client(chat_server, "kim")
        kim.send("PRIVMSG #lobby :julia: visible page, no notification")
        expect(page.locator("#messages .line", has_text="visible page")).to_be_visible()
        page.evaluate("() => { window.__hidden = true; document.dispatchEvent(new Event('visibilitychange')); }")
        kim.send("PRIVMSG #lobby :nothing to notify")
        kim.send("PRIVMSG #lobby :julia: are you coming?")
        kim.send("PRIVMSG julia :a private word")
        page.wait_for_function("() => window.__shown.length >= 2")
        assert page.evaluate("window.__shown") == [
            ["kim in #lobby", "julia: are you coming?"], ["kim", "a private word"]]
        # Meanwhile the title counts them; back on the page, the room is read.
        expect(page).to_have_title("(3) salotto")
        page.evaluate("() => { window.__hidden = false; document.dispatchEvent(new Event('visibilitychange')); }")
        expect(page).to_have_title("(1) salotto")
        kim.close()
    finally:
        context.close()


def test_notification_permission_is_asked_on_a_click_not_at_load(browser: Any, chat_server: WebServer) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    context.add_init_script("""
        window.__asked = 0;
        Object.defineProperty(Notification, 'permission', { get: () => (window.__asked ? 'denied' : 'default') });
        Notification.requestPermission = async () => { window.__asked++; return 'denied'; };
    """)
    page = context.new_page()
    try:
        page.goto(chat_server.url)
        page.keyboard.type("nina")
        page.keyboard.press("Enter")
        expect(page.locator("#buffer-title")).to_have_text("#lobby")
        button = page.locator("#notify-button")
        expect(button).to_be_visible()
        assert page.evaluate("window.__asked") == 0
        button.click()
        expect(button).to_be_hidden()  # answered (here: no): not offered again
        assert page.evaluate("window.__asked") == 1
    finally:
        context.close()


def test_pasted_lines_go_as_separate_messages_without_multiline(
        browser: Any, chat_server: WebServer, people: list[Person]) -> None:
    lara = Person(browser, chat_server.url, "lara")
    people.append(lara)
    mike = tcp_client(chat_server, "mike")
    field = lara.page.locator("#message-input")
    field.focus()
    lara.page.keyboard.insert_text("first pasted line\nsecond pasted line\n\nthird pasted line")
    # Shift+Enter adds a line; Enter sends.
    lara.page.keyboard.press("Shift+Enter")
    lara.page.keyboard.insert_text("typed after")
    field.press("Enter")
    received: list[str] = []
    while len(received) < 4:
        msg = mike.expect("PRIVMSG")
        if msg.source and msg.source.startswith("lara!"):  # not the channel's replayed history
            received.append(msg.params[1])
    assert received == ["first pasted line", "second pasted line", "third pasted line", "typed after"]
    expect(field).to_have_value("")
    mike.close()


def test_scrolling_up_brings_older_history_from_the_server_and_keeps_the_place(
        browser: Any, chat_server: WebServer, people: list[Person]) -> None:
    oscar = tcp_client(chat_server, "oscar", "#archive")
    for i in range(130):
        oscar.send(f"PRIVMSG #archive :archived {i}")
    oscar.send("PING :done")
    oscar.expect("PONG")
    pia = Person(browser, chat_server.url, "pia")
    people.append(pia)
    pia.say("/join #archive")
    page = pia.page
    expect(pia.line("archived 129")).to_be_in_viewport()
    expect(pia.line("archived 79")).to_have_count(0)  # the last 50 on joining (CHATHISTORY LATEST)
    box = page.locator("#messages")
    for oldest in ("archived 30", "archived 0"):
        # The line at the top stays where the reader sees it while older ones come in above it.
        msgid = page.locator("#messages .line.privmsg").first.get_attribute("data-msgid")
        box.evaluate("box => { box.scrollTop = 0; }")
        expect(pia.line(oldest)).to_have_count(1)
        expect(page.locator(f"#messages .line[data-msgid='{msgid}']")).to_be_in_viewport()
        assert box.evaluate("box => box.scrollTop") > 0
    lines = page.locator("#messages .line.privmsg .text").all_inner_texts()
    assert lines[:3] == ["archived 0", "archived 1", "archived 2"]
    assert lines.index("archived 129") == 129  # in order, none twice
    oscar.close()


def test_after_leaving_and_coming_back_the_actions_work_once(browser: Any, chat_server: WebServer,
                                                             people: list[Person]) -> None:
    rosa = Person(browser, chat_server.url, "rosa")
    people.append(rosa)
    page = rosa.page
    rosa.say("/quit")
    expect(page.locator("#login")).to_be_visible()
    page.locator("#nick-input").fill("rosa")
    page.locator("#nick-input").press("Enter")
    expect(page.locator("#buffer-title")).to_have_text("#lobby")
    sam = tcp_client(chat_server, "sam")
    msgid = say_from(sam, "#lobby", "react to me once")
    line_action(rosa, "react to me once", "react")
    expect(page.locator(".reaction-picker")).to_have_count(1)
    page.get_by_role("menuitem", name="React 😮").click()
    tag = sam.expect("TAGMSG")
    assert tag.tags["+draft/reply"] == msgid
    expect(rosa.line("react to me once").locator(".reaction")).to_have_text("😮1")
    assert not [line for line in sam.nothing_more() if "TAGMSG" in line], "one reaction sent, not one per page load"
    sam.close()
