"""Take the web chat's screenshots for the docs (not a test).

    .venv/bin/python -m tests.web.screenshots [OUTPUT_DIR]    # default: docs/

A server on free ports, a few people talking (browser pages and TCP clients; giulia registers her
nick from the page), then a desktop screenshot in the light theme and a phone one in the dark theme.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from salotto.passwords import hash_password
from tests.irc_client import RawClient
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, WebServer, start_web_server, stop_web_server


def _open(browser: object, server: WebServer, nick: str, viewport: dict[str, int], scheme: str,
          register_with: str = "") -> Page:
    context = browser.new_context(viewport=viewport, color_scheme=scheme, device_scale_factor=1)  # type: ignore[attr-defined]
    page: Page = context.new_page()
    page.goto(server.url)
    page.keyboard.type(nick)
    if register_with:
        page.locator("#password-input").fill(register_with)
        page.locator("#register-input").check()
    page.locator("#nick-input").press("Enter")
    expect(page.locator("#buffer-title")).to_have_text("#lobby")
    return page


def _bot(server: WebServer, nick: str) -> RawClient:
    client = server.irc.client()
    client.register(nick, caps=["message-tags"])
    client.expect("366")
    return client


def _say(page: Page, text: str) -> None:
    page.locator("#message-input").fill(text)
    page.locator("#message-input").press("Enter")
    expect(page.locator("#messages .line", has_text=text).first).to_be_visible()


def _line(page: Page, text: str) -> Any:
    line = page.locator("#messages .line", has_text=text).first
    expect(line).to_be_visible()
    return line


def _msgid(page: Page, text: str) -> str:
    return str(_line(page, text).get_attribute("data-msgid"))


def _react(page: Page, text: str, emoji: str) -> None:
    line = _line(page, text)
    line.hover()
    line.locator("button[data-action='react']").click()
    page.get_by_role("menuitem", name=f"React {emoji}").click()
    expect(line.locator(".reaction", has_text=emoji)).to_be_visible()


def _reply(page: Page, text: str, answer: str) -> None:
    line = _line(page, text)
    line.hover()
    line.locator("button[data-action='reply']").click()
    _say(page, answer)


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        oper = f'[opers.marco]\npassword_hash = "{hash_password("coffee")}"\n'
        server = start_web_server(Path(tmp), config_text=oper)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                giulia = _open(browser, server, "giulia", {"width": 1280, "height": 760}, "light",
                               register_with="projector-room-2")
                giulia.locator("#always-on-input").check()  # the sidebar shows her account always on
                expect(giulia.locator("#me-always-on")).to_be_visible()
                marco = _bot(server, "marco")
                marco.send("OPER marco coffee")
                marco.expect("381")
                marco.send("TOPIC #lobby :Welcome to the salotto! Notes at https://example.org/notes")
                sara = _open(browser, server, "sara", {"width": 390, "height": 844}, "dark")
                luca = _bot(server, "luca")
                time.sleep(0.3)
                marco.send("PRIVMSG #lobby :Good morning everyone! Coffee's on in the kitchen.")
                coffee = _msgid(giulia, "Coffee's on")
                luca.send(f"@+draft/react=☕;+draft/reply={coffee} TAGMSG #lobby")
                _react(giulia, "Coffee's on", "❤️")
                _say(giulia, "Morning! Is the projector in room 2 working again?")
                luca.send("PRIVMSG #lobby :giulia: yes, I replaced the cable yesterday")
                _reply(sara, "I replaced the cable", "Great, I'll book it for the 3 pm review")
                _react(giulia, "I replaced the cable", "👍")
                marco.send("PRIVMSG #lobby :\x01ACTION waves from the terminal\x01")
                luca.send("PRIVMSG #lobby :Slides are here: https://example.org/review.pdf")
                _say(giulia, "Thanks luca!")
                luca.send("PRIVMSG giulia :Can you send me the budget sheet later?")
                marco.send("PRIVMSG sara :Lunch at 1?")
                sara.locator("#message-input").press_sequentially("On my way")
                marco.send("@+typing=active TAGMSG #lobby")
                expect(giulia.locator("#typing")).to_contain_text("typing")
                expect(sara.locator("#typing")).to_contain_text("marco")
                giulia.mouse.move(5, 5)
                sara.mouse.move(5, 5)
                time.sleep(0.3)
                giulia.screenshot(path=str(out_dir / "web-desktop.png"))
                sara.screenshot(path=str(out_dir / "web-phone.png"))
                browser.close()
            for bot in (marco, luca):
                bot.close()
        finally:
            stop_web_server(server)
    print(f"wrote {out_dir / 'web-desktop.png'} and {out_dir / 'web-phone.png'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs"))
