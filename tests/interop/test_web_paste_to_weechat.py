"""Several lines pasted in the web page (real Chromium) arrive as one message on the pages and as their
lines in WeeChat (weechat-headless, unchanged, which has no draft/multiline), on one real server."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer
from tests.interop.conftest import LOBBY
from tests.interop.test_weechat import WeeChat, wait_in_lobby
from tests.interop.test_weechat import weechat as weechat  # the fixture, on the web server's IRC port
from tests.interop.waiting import read_text
from tests.web.conftest import WebServer, start_web_server, stop_web_server
from tests.web.conftest import browser as browser  # the fixture

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import expect

from tests.web.test_browser import Person


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    server = start_web_server(tmp_path)
    yield server
    stop_web_server(server)


@pytest.fixture
def salotto_server(web: WebServer) -> RunningServer:
    """WeeChat's server: the web server's IRC side."""
    return web.irc


def test_a_paste_is_one_message_on_the_pages_and_its_lines_in_weechat(
        browser: Any, web: WebServer, weechat: WeeChat) -> None:
    wait_in_lobby(weechat)
    paula = Person(browser, web.url, "paula")
    quinn = Person(browser, web.url, "quinn")
    try:
        snippet = "first pasted line\n  indented second\n\nlast one"
        field = paula.page.locator("#message-input")
        field.focus()
        paula.page.keyboard.insert_text(snippet)
        field.press("Enter")
        for person in (paula, quinn):
            line = person.line("first pasted line")
            expect(line).to_have_count(1)
            assert line.locator(".text").inner_text() == snippet
        weechat.wait_for_line(LOBBY, r"paula\tlast one")
        said = re.findall(r"^[\d: -]+\tpaula\t(.*)$", read_text(weechat.log(LOBBY)), re.MULTILINE)
        assert said == ["first pasted line", "  indented second", "last one"]
    finally:
        paula.close()
        quinn.close()
