"""Searching from the web page (soju.im/search), in real Chromium against a real server: in one
conversation and everywhere, the words marked in the results, more results page by page, and a click
that opens the conversation on the message (loaded from history around it when the page does not hold
it) and lights it up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.irc_client import RawClient
from tests.web.conftest import WebServer, start_web_server, stop_web_server

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Locator, Page, expect

from tests.web.test_browser import Person

expect.set_options(timeout=8000)

CONFIG = """
flood_burst_lines = 1000
flood_lines_per_s = 1000.0
search_per_ip = 1000
"""
PAGE = 25  # the page's SEARCH limit (main.js SEARCH_PAGE)


@pytest.fixture(scope="module")
def search_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    try:
        server = start_web_server(tmp_path_factory.mktemp("search-page"), config_text=CONFIG)
    except RuntimeError as exc:
        if "unknown key" in str(exc):  # (its config keys are not there either)
            pytest.skip("this server does not offer soju.im/search yet (the search branch)")
        raise
    client = server.irc.client()
    client.send("CAP LS 302")
    caps = " ".join(m.params[-1] for m in client.lines_until("CAP") if m.command == "CAP")
    client.close()
    try:
        assert "soju.im/search" in caps  # its config keys are known: it must be offered
        yield server
    finally:
        stop_web_server(server)


def talker(server: WebServer, nick: str, *channels: str) -> RawClient:
    client = server.irc.client()
    client.register(nick, caps=["message-tags", "echo-message", "server-time"])
    client.expect("366", p1="#lobby")
    for channel in channels:
        client.send(f"JOIN {channel}")
        client.expect("366", p1=channel)
    return client


def say(client: RawClient, target: str, text: str) -> str:
    client.send(f"PRIVMSG {target} :{text}")
    return client.expect("PRIVMSG", p1=text).tags["msgid"]


def test_search_in_a_room_and_everywhere_page_through_and_jump_to_a_message(
        browser: Any, search_server: WebServer, people: list[Person]) -> None:
    luca = talker(search_server, "luca", "#office")
    first = say(luca, "#office", "the projector in room 2 is broken")
    for i in range(120):  # the old message is far out of what the page loads on joining
        say(luca, "#office", f"projector note {i}" if i % 2 == 0 else f"chatter {i}")
    say(luca, "#lobby", "who took the projector remote?")

    giulia = Person(browser, search_server.url, "giulia")
    people.append(giulia)
    page = giulia.page
    giulia.say("/join #office")
    expect(page.locator("#buffer-title")).to_have_text("#office")
    expect(giulia.line("projector note 118")).to_be_visible()
    expect(page.locator(f"#messages .line[data-msgid='{first}']")).to_have_count(0)

    # In this room: newest first, a page at a time, the words marked.
    page.locator("#search-button").click()
    panel = page.locator("#search-panel")
    expect(panel).to_be_visible()
    expect(page.locator("#search-scope")).to_have_value("here")
    expect(page.locator("#search-here")).to_have_text("In #office")
    page.locator("#search-input").fill("projector")
    page.locator("#search-input").press("Enter")
    results = page.locator("#search-results .search-result")
    expect(results).to_have_count(PAGE)
    expect(page.locator("#search-status")).to_have_text(f"{PAGE}+ found for “projector” in #office")
    expect(results.first).to_contain_text("projector note 118")
    expect(results.first.locator(".result-where")).to_have_text("#office")
    expect(results.first.locator(".nick")).to_have_text("luca")
    expect(results.first.locator("mark")).to_have_text("projector")
    more = page.locator("#search-more")
    more.click()
    expect(results).to_have_count(2 * PAGE - 1)  # (before= takes in the oldest one again: shown once)
    more.click()
    expect(results).to_have_count(61)  # 60 notes and the old message, each once
    expect(more).to_be_hidden()
    expect(page.locator("#search-status")).to_have_text("61 found for “projector” in #office")
    expect(results.last).to_contain_text("the projector in room 2 is broken")
    texts = results.locator(".result-text").all_inner_texts()
    assert len(set(texts)) == len(texts)
    assert not any("remote" in t for t in texts)  # #lobby's is not in #office

    # The oldest result: #office opens on it, loaded from the history around it, and lit up.
    results.last.click()
    line = page.locator(f"#messages .line[data-msgid='{first}']")
    expect(line).to_be_in_viewport()
    expect(line).to_contain_text("the projector in room 2 is broken")
    expect(line).to_have_class("line privmsg flash")
    # Between the window around it and the latest messages: a gap, which a click fills.
    gap = page.locator("#messages .gap-button")
    expect(gap).to_have_count(1)
    expect(giulia.line("chatter 51")).to_have_count(0)
    gap.click()
    expect(gap).to_have_count(0)
    expect(giulia.line("chatter 51")).to_have_count(1)
    notes = page.locator("#messages .line .text").all_inner_texts()
    numbers = [int(t.split()[-1]) for t in notes if t.startswith(("projector note", "chatter"))]
    assert numbers == sorted(numbers) and len(numbers) == len(set(numbers)), numbers

    # Everywhere: #lobby's too.
    page.locator("#search-scope").select_option("all")
    page.locator("#search-input").fill("remote")
    page.locator("#search-submit").click()
    expect(results).to_have_count(1)
    expect(results.first.locator(".result-where")).to_have_text("#lobby")
    results.first.click()
    expect(page.locator("#buffer-title")).to_have_text("#lobby")
    expect(giulia.line("who took the projector remote?")).to_have_class("line privmsg flash")

    # Nothing found says so; Escape closes the panel.
    page.locator("#search-input").fill("xylophone")
    page.locator("#search-input").press("Enter")
    expect(page.locator("#search-status")).to_have_text("Nothing found for “xylophone”.")
    expect(results).to_have_count(0)
    page.locator("#search-input").press("Escape")
    expect(panel).to_be_hidden()
    luca.close()


def test_a_search_whose_answer_the_lost_connection_took_does_not_swallow_the_next_ones(
        browser: Any, search_server: WebServer) -> None:
    """The connection drops right after a SEARCH went: no answer will come for it. Once the page is back,
    the search it shows says so, and the next searches show their own results (they used to wait for the
    lost answer first: "Searching…" for good, every search after)."""
    luca = talker(search_server, "marta")
    say(luca, "#lobby", "the kettle is on the second floor")
    context = browser.new_context()
    cut = {"next_search": True}

    def route(ws: Any) -> None:  # the network between the page and the server
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if cut["next_search"] and isinstance(message, str) and message.startswith("SEARCH "):
                cut["next_search"] = False
                ws.close()  # (the line never reached the server)
                server.close()
                return
            server.send(message)

        ws.on_message(from_page)

    context.route_web_socket(search_server.ws_url, route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(search_server.url)
        page.keyboard.type("pietro")
        page.keyboard.press("Enter")
        expect(page.locator("#buffer-title")).to_have_text("#lobby")
        page.locator("#search-button").click()
        page.locator("#search-input").fill("kettle")
        page.locator("#search-input").press("Enter")
        expect(page.locator("#connection-banner")).to_be_visible()
        expect(page.locator("#connection-banner")).to_be_hidden(timeout=15000)
        status = page.locator("#search-status")
        expect(status).to_have_text("The connection was lost before the answer came: search again.")
        results = page.locator("#search-results .search-result")
        for _ in range(2):
            page.locator("#search-input").press("Enter")
            expect(results).to_have_count(1)
            expect(status).to_have_text("1 found for “kettle” in #lobby")
        assert not errors, errors
    finally:
        context.close()
        luca.close()


def test_a_failed_search_answered_after_a_newer_one_was_asked_is_not_shown_as_the_newer_ones(
        browser: Any, search_server: WebServer, people: list[Person]) -> None:
    """Two searches asked one after the other before any answer: the first fails (FAIL SEARCH: no word to
    search for). Its error is not the second one's, and the second one's results are shown (they used to be
    dropped as the first one's answer)."""
    luca = talker(search_server, "teo")
    say(luca, "#lobby", "the plants need water on friday")
    person = Person(browser, search_server.url, "sara")
    people.append(person)
    page = person.page
    page.locator("#search-button").click()
    expect(page.locator("#search-panel")).to_be_visible()
    page.evaluate("""() => {
        const input = document.getElementById("search-input");
        const form = document.getElementById("search-form");
        input.value = "!!!";  // no word in it: the server says FAIL SEARCH INVALID_PARAMS
        form.requestSubmit();
        input.value = "plants";  // asked at once, before that answer came
        form.requestSubmit();
    }""")
    results = page.locator("#search-results .search-result")
    expect(results).to_have_count(1)
    expect(page.locator("#search-status")).to_have_text("1 found for “plants” in #lobby")
    expect(page.locator("#search-status")).not_to_have_class("search-status error")
    luca.close()


def test_in_this_conversation_names_the_conversation_on_show_while_the_panel_stays_open(
        browser: Any, search_server: WebServer, people: list[Person]) -> None:
    """The panel stays open beside the chat: another conversation picked meanwhile is the one "In ..."
    names and searches (it used to keep the name of the one open when the panel was, and search the other)."""
    luca = talker(search_server, "ugo", "#kitchen")
    say(luca, "#kitchen", "the oven timer beeps twice")
    say(luca, "#lobby", "the oven in the lobby? no")
    person = Person(browser, search_server.url, "vera")
    people.append(person)
    page = person.page
    person.say("/join #kitchen")
    expect(page.locator("#buffer-title")).to_have_text("#kitchen")
    page.locator("#search-button").click()
    expect(page.locator("#search-here")).to_have_text("In #kitchen")
    page.locator("#buffer-list button[data-name='#lobby']").click()
    expect(page.locator("#buffer-title")).to_have_text("#lobby")
    expect(page.locator("#search-panel")).to_be_visible()
    expect(page.locator("#search-here")).to_have_text("In #lobby")
    page.locator("#search-input").fill("oven")
    page.locator("#search-input").press("Enter")
    results = page.locator("#search-results .search-result")
    expect(page.locator("#search-status")).to_have_text("1 found for “oven” in #lobby")
    expect(results.first).to_contain_text("the oven in the lobby? no")
    luca.close()


def _jump_to_the_one_old_result(page: Page, server: WebServer, nick: str, channel: str, word: str,
                                msgid: str) -> Locator:
    """Log in as ``nick``, join ``channel`` (its latest notes shown), search ``word`` there and click its one
    result (the message ``msgid``, older than what was loaded): the gap line under it, once."""
    page.goto(server.url)
    page.keyboard.type(nick)
    page.keyboard.press("Enter")
    expect(page.locator("#buffer-title")).to_have_text("#lobby")
    page.locator("#message-input").fill(f"/join {channel}")
    page.locator("#message-input").press("Enter")
    expect(page.locator("#buffer-title")).to_have_text(channel)
    expect(page.locator("#messages .line", has_text=f"{channel[1:]} note 119")).to_be_visible()
    page.locator("#search-button").click()
    page.locator("#search-input").fill(word)
    page.locator("#search-input").press("Enter")
    results = page.locator("#search-results .search-result")
    expect(results).to_have_count(1)
    results.first.click()
    expect(page.locator(f"#messages .line[data-msgid='{msgid}']")).to_be_visible()
    gap = page.locator("#messages .gap-button")
    expect(gap).to_have_count(1)
    return gap


def test_a_gap_whose_messages_the_lost_connection_took_stays_and_fills_once_back(
        browser: Any, search_server: WebServer) -> None:
    """The connection drops while a gap's messages are on their way (CHATHISTORY BETWEEN). Back online,
    the gap is still there and a click fills it. (The answer to the page's first history request on the
    new connection, its room's latest messages, used to be taken for the gap's: the gap went, and the
    messages in it were never loaded, a silent hole in the conversation.)"""
    nino = talker(search_server, "nino", "#garage")
    first = say(nino, "#garage", "the red bicycle has a flat tyre")
    for i in range(120):
        say(nino, "#garage", f"garage note {i}")
    context = browser.new_context()
    cut = {"armed": False}

    def route(ws: Any) -> None:  # the network between the page and the server
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if cut["armed"] and isinstance(message, str) and message.startswith("CHATHISTORY BETWEEN "):
                cut["armed"] = False
                ws.close()  # (the line never reached the server)
                server.close()
                return
            server.send(message)

        ws.on_message(from_page)

    context.route_web_socket(search_server.ws_url, route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        gap = _jump_to_the_one_old_result(page, search_server, "olivia", "#garage", "bicycle", first)
        cut["armed"] = True
        gap.click()
        expect(page.locator("#connection-banner")).to_be_visible()
        expect(page.locator("#connection-banner")).to_be_hidden(timeout=15000)
        expect(page.locator("#messages .line", has_text="You joined #garage")).to_have_count(2)  # (joined again)
        page.wait_for_timeout(1000)  # (the room joined again, its latest messages asked for and in)
        expect(gap).to_have_count(1)
        expect(gap).to_be_enabled()
        gap.click()
        expect(gap).to_have_count(0)
        notes = page.locator("#messages .line .text").all_inner_texts()
        numbers = [int(t.split()[-1]) for t in notes if t.startswith("garage note")]
        assert numbers == list(range(120)), numbers
        assert not errors, errors
    finally:
        context.close()
        nino.close()


def test_a_gap_clicked_while_the_page_is_offline_can_be_clicked_again_once_back(
        browser: Any, search_server: WebServer) -> None:
    """A click on a gap while the connection is down asks nothing (it cannot): the button says so by
    staying clickable, and works once the page is back. (It used to say "Loading…", disabled, for good.)"""
    rita = talker(search_server, "rita", "#attic")
    first = say(rita, "#attic", "the old lamp is in the blue box")
    for i in range(120):
        say(rita, "#attic", f"attic note {i}")
    context = browser.new_context()
    state = {"cut": False, "hold": False}
    held: list[Any] = []

    def route(ws: Any) -> None:  # the network between the page and the server
        if state["hold"]:  # offline: the page's socket opens onto nothing
            held.append(ws)
            ws.on_message(lambda message: None)
            return
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            tunnel = isinstance(message, str) and message.startswith("PRIVMSG #attic :going through a tunnel")
            if state["cut"] and tunnel:
                state["cut"] = False
                state["hold"] = True
                ws.close()
                server.close()
                return
            server.send(message)

        ws.on_message(from_page)

    context.route_web_socket(search_server.ws_url, route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        gap = _jump_to_the_one_old_result(page, search_server, "sofia", "#attic", "lamp", first)
        state["cut"] = True
        page.locator("#message-input").fill("going through a tunnel")
        page.locator("#message-input").press("Enter")
        expect(page.locator("#connection-banner")).to_be_visible()
        expect(page.locator("#connection-banner")).to_contain_text("Reconnecting")
        gap.click()
        expect(gap).to_be_enabled()
        state["hold"] = False
        held[-1].close()  # back online: the page's next try reaches the server
        expect(page.locator("#connection-banner")).to_be_hidden(timeout=15000)
        expect(page.locator("#messages .line", has_text="You joined #attic")).to_have_count(2)
        gap.click()
        expect(gap).to_have_count(0)
        notes = page.locator("#messages .line .text").all_inner_texts()
        numbers = [int(t.split()[-1]) for t in notes if t.startswith("attic note")]
        assert numbers == list(range(120)), numbers
        assert not errors, errors
    finally:
        context.close()
        rita.close()
