"""Take the web chat's screenshots for the docs (not a test).

    .venv/bin/python -m tests.web.screenshots [OUTPUT_DIR]    # default: docs/

A server on free ports, a few people talking (browser pages and TCP clients; giulia registers her
nick from the page), then a desktop screenshot in the light theme and a phone one in the dark theme.
Then, each on a server of its own and when the server offers it: a picture and a file shared
(web-sharing.png), search results (web-search.png), and the notifications switch on a phone
(web-notifications.png; Chromium here has no push service, so the page is given a subscription as
tests/web/test_push_page.py does).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from salotto.passwords import hash_password
from tests.irc_client import RawClient
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, WebServer, start_web_server, stop_web_server
from tests.web.test_login import register_over_tcp
from tests.web.test_push_page import FAKE_PUSH_SERVICE, PushService

FEATURES_CONFIG = """
flood_burst_lines = 1000
flood_lines_per_s = 1000.0
login_attempts_per_ip = 100
"""
# The push endpoint here is on loopback, over http.
PUSH_CONFIG = """
webpush_allow_http = true
webpush_allow_private_addresses = true
"""


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


def _offers(server: WebServer) -> tuple[set[str], set[str]]:
    """The server's capabilities and ISUPPORT names."""
    client = server.irc.client()
    client.send("CAP LS 302")
    caps = {item.split("=")[0]
            for m in client.lines_until("CAP") if m.command == "CAP" for item in m.params[-1].split()}
    client.send("CAP END")
    client.register("probe")
    tokens = {t.split("=")[0] for m in client.lines_until("376") if m.command == "005" for t in m.params[1:-1]}
    client.close()
    return caps, tokens


def _log_in(browser: Any, server: WebServer, nick: str, password: str, viewport: dict[str, int], scheme: str,
            init_script: str = "") -> Page:
    context = browser.new_context(viewport=viewport, color_scheme=scheme, device_scale_factor=1)
    if init_script:
        context.add_init_script(init_script)
    page: Page = context.new_page()
    page.goto(server.url)
    page.locator("#nick-input").fill(nick)
    page.locator("#password-input").fill(password)
    page.locator("#password-input").press("Enter")
    expect(page.locator("#buffer-title")).to_have_text("#lobby")
    return page


def _slide(browser: Any) -> bytes:
    """A picture to share: a slide, drawn by the browser."""
    page = browser.new_page(viewport={"width": 800, "height": 500}, device_scale_factor=1)
    page.set_content("""<body style="margin:0;font-family:sans-serif;background:linear-gradient(135deg,#2f6f5e,#1d5fa8);
        color:#fff;height:500px;display:flex;flex-direction:column;justify-content:center;padding:0 60px">
        <h1 style="font-size:56px;margin:0">Q4 review</h1><p style="font-size:28px;opacity:.85">Room 2 · 3 pm</p>
        <div style="display:flex;gap:18px;align-items:flex-end;height:140px">
        <div style="width:60px;height:60px;background:#f4efe6"></div>
        <div style="width:60px;height:95px;background:#f4efe6"></div>
        <div style="width:60px;height:80px;background:#f4efe6"></div>
        <div style="width:60px;height:130px;background:#fdecc8"></div>
        </div></body>""")
    data = page.screenshot(type="png")
    page.close()
    return data


def sharing_shot(browser: Any, out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_web_server(Path(tmp), config_text=FEATURES_CONFIG)
        try:
            if "soju.im/FILEHOST" not in _offers(server)[1]:
                print("web-sharing.png: this server does not take files (soju.im/FILEHOST): skipped")
                return
            register_over_tcp(server, "giulia", "projector-room-2")
            register_over_tcp(server, "marco", "coffee-and-slides")
            giulia = _log_in(browser, server, "giulia", "projector-room-2", {"width": 1280, "height": 760}, "light")
            marco = _log_in(browser, server, "marco", "coffee-and-slides", {"width": 1280, "height": 760}, "light")
            luca = _bot(server, "luca")
            luca.send("PRIVMSG #lobby :Can someone share the slides for the review?")
            _line(giulia, "share the slides")
            giulia.locator("#file-input").set_input_files(files=[
                {"name": "q4-review.png", "mimeType": "image/png", "buffer": _slide(browser)}])
            expect(giulia.locator("#messages img.thumb")).to_be_visible()
            marco.locator("#file-input").set_input_files(files=[
                {"name": "budget-2027.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n" + b"0" * 182_000}])
            expect(giulia.locator("#messages .file-chip .file-size")).to_have_text("182 kB")
            luca.send("PRIVMSG #lobby :Thanks both! giulia: the chart on the right is the new one?")
            _say(giulia, "Yes, updated this morning")
            giulia.wait_for_function("() => [...document.querySelectorAll('img.thumb')].every(i => i.complete)")
            giulia.mouse.move(5, 5)
            time.sleep(0.3)
            giulia.screenshot(path=str(out_dir / "web-sharing.png"))
            print(f"wrote {out_dir / 'web-sharing.png'}")
            luca.close()
        finally:
            stop_web_server(server)


def search_shot(browser: Any, out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_web_server(Path(tmp), config_text=FEATURES_CONFIG)
        try:
            if "soju.im/search" not in _offers(server)[0]:
                print("web-search.png: this server does not offer search (soju.im/search): skipped")
                return
            luca = _bot(server, "luca")
            marco = _bot(server, "marco")
            for who, text in [
                (luca, "The projector in room 2 flickers again"), (marco, "I'll ask facilities"),
                (marco, "Facilities say a new projector cable comes on Monday"), (luca, "Lunch anyone?"),
                (luca, "Projector fixed: it was the HDMI cable"), (marco, "Booking room 2 for the Q4 review"),
                (luca, "Remember to bring the remote for the projector"), (marco, "Coffee's on in the kitchen"),
            ]:
                who.send(f"PRIVMSG #lobby :{text}")
                time.sleep(0.05)  # (two connections: in this order)
            time.sleep(0.3)
            giulia = _open(browser, server, "giulia", {"width": 1280, "height": 760}, "light")
            giulia.locator("#search-button").click()
            giulia.locator("#search-input").fill("projector cable")
            giulia.locator("#search-scope").select_option("all")
            giulia.locator("#search-input").press("Enter")
            expect(giulia.locator("#search-status")).to_contain_text("found")
            giulia.locator("#search-results .search-result").last.click()
            expect(giulia.locator("#messages .line.flash")).to_be_visible()
            giulia.mouse.move(640, 5)
            time.sleep(0.2)
            giulia.screenshot(path=str(out_dir / "web-search.png"))
            print(f"wrote {out_dir / 'web-search.png'}")
            for bot in (luca, marco):
                bot.close()
        finally:
            stop_web_server(server)


def notifications_shot(browser: Any, out_dir: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            server = start_web_server(Path(tmp), config_text=FEATURES_CONFIG + PUSH_CONFIG)
        except RuntimeError:
            print("web-notifications.png: this server has no push notifications (webpush_* keys): skipped")
            return
        service = PushService()
        try:
            caps = _offers(server)[0]
            if "soju.im/webpush" not in caps and "draft/webpush" not in caps:
                print("web-notifications.png: this server does not offer push (soju.im/webpush): skipped")
                return
            register_over_tcp(server, "sara", "sara-on-the-phone")
            script = FAKE_PUSH_SERVICE % json.dumps(f"{service.url}/push/sara")
            sara = _log_in(browser, server, "sara", "sara-on-the-phone", {"width": 390, "height": 844}, "dark", script)
            sara.context.grant_permissions(["notifications"])
            sara.locator("#menu-button").click()
            sara.locator("#always-on-input").check()
            sara.locator("#push-input").check()
            expect(sara.locator("#push-status")).to_contain_text("On:")
            time.sleep(0.4)
            sara.screenshot(path=str(out_dir / "web-notifications.png"))
            print(f"wrote {out_dir / 'web-notifications.png'}")
        finally:
            service.close()
            stop_web_server(server)


def features(out_dir: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        sharing_shot(browser, out_dir)
        search_shot(browser, out_dir)
        notifications_shot(browser, out_dir)
        browser.close()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = Path(args[0]) if args else Path("docs")
    if "--features-only" not in sys.argv:
        main(target)
    features(target)
