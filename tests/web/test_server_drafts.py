"""The page with the server's drafts, in real Chromium against a real server: deleting a message
(draft/message-redaction), read markers shared by two devices of one account (draft/read-marker), and a
pasted snippet sent as one multiline message (draft/multiline)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from tests.irc_client import RawClient
from tests.web.conftest import WebServer, start_web_server, stop_web_server

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import expect

from tests.web.test_browser import Person

CONFIG = """
login_attempts_per_ip = 100
multiline_max_lines = 5
"""


@pytest.fixture(scope="module")
def drafts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("drafts"), config_text=CONFIG)
    yield server
    stop_web_server(server)



def tcp_client(server: WebServer, nick: str, caps: list[str], channel: str = "#lobby") -> RawClient:
    client = server.irc.client()
    client.register(nick, caps=caps)
    client.expect("366", p1="#lobby")
    if channel != "#lobby":
        client.send(f"JOIN {channel}")
        client.expect("366", p1=channel)
    return client


def join(person: Person, channel: str) -> None:
    person.say(f"/join {channel}")
    expect(person.page.locator("#buffer-title")).to_have_text(channel)


def delete(person: Person, text: str) -> None:
    line = person.line(text)
    line.hover()
    button = line.locator(".line-actions button[data-action='delete']")
    button.click()
    expect(button).to_have_text("Delete?")
    button.click()


def test_deleting_own_messages_and_as_operator_anyones(browser: Any, drafts_server: WebServer,
                                                       people: list[Person]) -> None:
    alice = Person(browser, drafts_server.url, "alice")
    bob = Person(browser, drafts_server.url, "bob")
    people += [alice, bob]
    join(alice, "#deleting")  # first in: alice is the channel's operator
    join(bob, "#deleting")
    carol = tcp_client(drafts_server, "carol", ["message-tags", "draft/message-redaction"], "#deleting")

    bob.say("bob's typo here")
    alice.say("alice's own slip")
    expect(alice.line("bob's typo here")).to_be_visible()
    expect(bob.line("alice's own slip")).to_be_visible()
    # Bob may delete his own line only: no delete on alice's.
    bob.line("alice's own slip").hover()
    expect(bob.line("alice's own slip").locator("button[data-action='reply']")).to_be_visible()
    expect(bob.line("alice's own slip").locator("button[data-action='delete']")).to_be_hidden()

    delete(alice, "alice's own slip")
    redact = carol.expect("REDACT")
    assert redact.params[0] == "#deleting"
    for person in (alice, bob):
        expect(person.line("alice's own slip")).to_have_count(0)
    # The operator deletes bob's line; it goes from every page.
    delete(alice, "bob's typo here")
    assert carol.expect("REDACT").params[0] == "#deleting"
    for person in (alice, bob):
        expect(person.line("bob's typo here")).to_have_count(0)
    # A deletion by an IRC client reaches the pages too.
    carol.send("PRIVMSG #deleting :carol was here")
    expect(bob.line("carol was here")).to_be_visible()
    msgid = bob.line("carol was here").get_attribute("data-msgid")
    carol.send(f"REDACT #deleting {msgid} :never mind")
    for person in (alice, bob):
        expect(person.line("carol was here")).to_have_count(0)
    # Someone who joins later does not find them in the history either.
    dave = Person(browser, drafts_server.url, "dave")
    people.append(dave)
    bob.say("still here")
    join(dave, "#deleting")
    expect(dave.line("still here")).to_be_visible()
    for text in ("alice's own slip", "bob's typo here", "carol was here"):
        expect(dave.line(text)).to_have_count(0)
    carol.close()


def sasl_client(server: WebServer, nick: str, account: str, password: str) -> RawClient:
    """A second device of the account: an IRC client with read markers."""
    client = server.irc.client()
    client.send("CAP LS 302")
    client.send("CAP REQ :sasl draft/read-marker message-tags server-time batch")
    client.expect("CAP", p1="ACK")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{account}\0{password}".encode()).decode())
    client.expect("903")
    client.send("CAP END")
    client.expect("366", p1="#lobby")
    return client


def test_read_markers_are_shared_with_the_accounts_other_device(browser: Any, drafts_server: WebServer,
                                                                people: list[Person]) -> None:
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(drafts_server.url)
        page.locator("#nick-input").fill("nora")
        page.locator("#password-input").fill("reading-glasses-7")
        page.locator("#register-input").check()
        page.locator("#password-input").press("Enter")
        expect(page.locator("#me-account")).to_have_text("logged in as nora")
        phone = sasl_client(drafts_server, "nora_phone", "nora", "reading-glasses-7")
        oscar = tcp_client(drafts_server, "oscar", ["message-tags"])
        page.locator("#message-input").fill("/join #side")
        page.locator("#message-input").press("Enter")
        expect(page.locator("#buffer-title")).to_have_text("#side")
        lobby = page.locator("#buffer-list button[data-name='#lobby']")
        oscar.send("PRIVMSG #lobby :one for nora")
        oscar.send("PRIVMSG #lobby :two for nora")
        expect(lobby.locator(".badge")).to_have_text("2")
        # Read on the phone: the page's count goes too.
        seen = phone.expect("PRIVMSG", p1="two for nora")
        phone.send(f"MARKREAD #lobby timestamp={seen.tags['time']}")
        expect(lobby.locator(".badge")).to_have_count(0)
        expect(page).to_have_title("salotto")
        # Read on the page: the phone is told up to which message.
        oscar.send("PRIVMSG #lobby :three for nora")
        three = phone.expect("PRIVMSG", p1="three for nora")
        expect(lobby.locator(".badge")).to_have_text("1")
        lobby.click()
        marker = phone.expect("MARKREAD", p0="#lobby")
        assert marker.params[1] == f"timestamp={three.tags['time']}"
        # The page comes back later (a reload, logged in again): what came meanwhile is under a
        # "New messages" line in the room it lands in.
        context.close()
        oscar.send("PRIVMSG #lobby :four while nora was away")
        oscar.send("PRIVMSG #lobby :five while nora was away")
        phone.expect("PRIVMSG", p1="five while nora was away")
        phone.send("QUIT")
        context = browser.new_context(viewport={"width": 1200, "height": 760})
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(drafts_server.url)
        page.locator("#nick-input").fill("nora")
        page.locator("#password-input").fill("reading-glasses-7")
        page.locator("#password-input").press("Enter")
        expect(page.locator("#me-account")).to_have_text("logged in as nora")
        expect(page.locator("#buffer-title")).to_have_text("#lobby")
        expect(page.locator("#messages .new-marker")).to_be_visible()
        assert page.evaluate("document.querySelector('#messages .new-marker').nextElementSibling.textContent"
                             ).endswith("four while nora was away")
        for client in (phone, oscar):
            client.close()
    finally:
        context.close()
    assert not errors, errors


def from_paula(client: RawClient, count: int) -> list[str]:
    """The next ``count`` PRIVMSG texts from paula (not the channel's history replayed on join)."""
    texts: list[str] = []
    while len(texts) < count:
        msg = client.expect("PRIVMSG")
        if msg.source and msg.source.startswith("paula!"):
            texts.append(msg.params[1])
    return texts


def test_pasted_lines_go_as_one_multiline_message(browser: Any, drafts_server: WebServer,
                                                   people: list[Person]) -> None:
    paula = Person(browser, drafts_server.url, "paula")
    quinn = Person(browser, drafts_server.url, "quinn")
    people += [paula, quinn]
    modern = tcp_client(drafts_server, "modern", ["message-tags", "batch", "draft/multiline"])
    plain = tcp_client(drafts_server, "plain", [])
    snippet = "def hello():\n    print('hi')\n\nhello()"
    paula.page.locator("#message-input").focus()
    paula.page.keyboard.insert_text(snippet)
    paula.page.locator("#message-input").press("Enter")
    start = modern.expect("BATCH", p1="draft/multiline")
    assert start.params[2] == "#lobby" and start.source and start.source.startswith("paula!")
    lines = modern.lines_until("BATCH")
    assert [m.params[1] for m in lines if m.command == "PRIVMSG"] == ["def hello():", "    print('hi')", "", "hello()"]
    # An IRC client without the capability gets its lines (the blank one left out).
    assert from_paula(plain, 3) == ["def hello():", "    print('hi')", "hello()"]
    # On the pages: one message, its lines kept.
    for person in (paula, quinn):
        line = person.line("def hello():")
        expect(line).to_have_count(1)
        assert line.locator(".text").inner_text() == snippet
    # Over the server's max-lines (5 here): separate messages instead.
    paula.page.locator("#message-input").focus()
    paula.page.keyboard.insert_text("\n".join(f"row {i}" for i in range(7)))
    paula.page.locator("#message-input").press("Enter")
    assert from_paula(plain, 7) == [f"row {i}" for i in range(7)]
    for i in range(7):
        expect(quinn.line(f"row {i}")).to_have_count(1)
    for client in (modern, plain):
        client.close()
