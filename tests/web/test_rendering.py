"""The page stays smooth with long histories (real Chromium, a real server): a buffer of 10,000 messages
scrolls from its end to its start, and takes 50 new messages a second, without a frame gap over
FRAME_GAP_LIMIT_MS, measured with requestAnimationFrame in the page; a new message adds its line and
leaves the others alone.

    PYTHONPATH=src .venv/bin/python -m pytest tests/web/test_rendering.py -q -s   # prints the figures
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import WebServer, start_web_server, stop_web_server

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, expect

from tests.web.test_browser import Person

HISTORY = 10_000
RATE_PER_S = 50
LIVE_S = 6
# Scrolling speed: 600 px a frame is 36,000 px a second, a fast fling (about 22 lines a frame).
SCROLL_PX = 600
# A frame at 60 Hz is 16.7 ms: a gap over ~50 ms is three frames lost, a stutter anyone sees.
# The median frame must come at 60 Hz: a page that redraws its lines for each message cannot (33-66 ms
# measured before it appended them). As the suite runs it, 99 frames in 100 come within
# FRAME_GAP_LIMIT_MS of the one before and none later than WORST_GAP_MS: loose, because a machine busy
# with other work keeps frames waiting for the CPU now and then (an idle page measured the same way
# shows such gaps too; the suite saw a p99 of 100 ms under four agents' load). The measurement of the
# figure itself (docs/web.md) runs alone with SALOTTO_FRAME_GAP_LIMIT_MS=50 SALOTTO_WORST_FRAME_GAP_MS=250.
FRAME_GAP_LIMIT_MS = float(os.environ.get("SALOTTO_FRAME_GAP_LIMIT_MS", "150"))
WORST_GAP_MS = float(os.environ.get("SALOTTO_WORST_FRAME_GAP_MS", "600"))
# The page keeps a window of a buffer's messages (view.js DOM_MAX).
DOM_MAX = 500

# The feeder sends its 10,000 lines at once: no fakelag for it, room in the page's send queue.
CONFIG = """
flood_burst_lines = 100000
flood_lines_per_s = 100000.0
flood_max_queued_lines = 100000
max_sendq_bytes = 67108864
"""

# In the page: every requestAnimationFrame's gap since the one before, until window.__stop is set.
# step_px: scroll the messages up by that much each frame (0: stay), until the top is reached.
MEASURE = """
([stepPx, until]) => new Promise((resolve) => {
  const box = document.getElementById("messages");
  const gaps = [];
  let last = null;
  window.__stop = false;
  const frame = (now) => {
    if (last !== null) gaps.push(now - last);
    last = now;
    if (stepPx) {
      box.scrollTop = Math.max(0, box.scrollTop - stepPx);
      const lines = box.querySelectorAll(".line.privmsg .text");
      const edge = stepPx > 0 ? lines[0] : lines[lines.length - 1];
      const there = stepPx > 0 ? box.scrollTop === 0 : box.scrollHeight - box.scrollTop - box.clientHeight < 2;
      if (there && edge && edge.textContent === until) window.__stop = true;
    }
    if (window.__stop || gaps.length > 5000) resolve(gaps);
    else requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})
"""


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("busy"), config_text=CONFIG)
    yield server
    stop_web_server(server)


def figures(gaps: list[float]) -> dict[str, float]:
    ordered = sorted(gaps)
    return {
        "frames": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def line_count(page: Page) -> int:
    count: int = page.evaluate("document.querySelectorAll('#messages .line').length")
    return count


def test_ten_thousand_messages_scroll_and_fifty_a_second_arrive_without_dropped_frames(
        browser: Any, busy_server: WebServer, tmp_path: Path) -> None:
    reader = Person(browser, busy_server.url, "reader")
    page = reader.page
    feeder = busy_server.irc.client()
    try:
        feeder.register("feeder", caps=[])
        feeder.expect("366", p1="#lobby")
        expect(page.locator("#nick-list")).to_contain_text("feeder")
        # 10,000 messages into the buffer, as fast as the server takes them.
        block = "".join(f"PRIVMSG #lobby :filler {i}\r\n" for i in range(HISTORY))
        feeder.send_raw(block.encode())
        expect(reader.line(f"filler {HISTORY - 1}")).to_be_visible(timeout=60_000)
        assert line_count(page) <= DOM_MAX, "the page holds a window, not every line"

        # Scrolling from the end to the very first message: the older lines come in as the reader goes.
        page.wait_for_timeout(500)
        up = figures(page.evaluate(MEASURE, [SCROLL_PX, "filler 0"]))
        print(f"\nframe gaps, scrolling up through {HISTORY} messages: {up}")
        expect(page.locator("#messages .line.privmsg .text").first).to_have_text("filler 0")
        assert line_count(page) <= DOM_MAX
        # And down again to the end, the newer lines coming back in.
        down = figures(page.evaluate(MEASURE, [-SCROLL_PX, f"filler {HISTORY - 1}"]))
        print(f"frame gaps, scrolling down through them: {down}")
        expect(reader.line(f"filler {HISTORY - 1}")).to_be_in_viewport()
        assert line_count(page) <= DOM_MAX

        # At the end, 50 new messages a second for a few seconds.
        marked = page.evaluate("""() => {
            const lines = document.querySelectorAll('#messages .line');
            window.__old = lines[lines.length - 1];
            return window.__old.textContent;
        }""")
        assert f"filler {HISTORY - 1}" in marked
        # Started, not awaited: the page measures while this thread sends.
        page.evaluate("() => { window.__done = null; (" + MEASURE + ")([0]).then((g) => { window.__done = g; }); }")
        sent = 0
        start = time.monotonic()
        while sent < RATE_PER_S * LIVE_S:
            due = start + sent / RATE_PER_S
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            feeder.send(f"PRIVMSG #lobby :live {sent}")
            sent += 1
        # Measured until the last one is drawn, not while the test looks at the page (Playwright's own
        # scripts run in it then).
        page.wait_for_timeout(300)
        page.evaluate("window.__stop = true")
        page.wait_for_function("() => window.__done !== null")
        expect(reader.line(f"live {sent - 1}")).to_be_in_viewport()
        live = figures(page.evaluate("window.__done"))
        # The line that was there before is the same node: new messages were appended, nothing redrawn.
        assert page.evaluate("window.__old.isConnected")
        assert line_count(page) <= DOM_MAX
        print(f"frame gaps, {RATE_PER_S} messages/s for {LIVE_S} s: {live}")

        # Reading further up while more keep coming: the page still holds a window, and ↓ Latest leads
        # to the newest.
        page.locator("#messages").evaluate("box => { box.scrollTop = box.scrollHeight / 2; }")
        feeder.send_raw("".join(f"PRIVMSG #lobby :while reading {i}\r\n" for i in range(DOM_MAX + 100)).encode())
        feeder.send("PING :sent")
        feeder.expect("PONG")
        expect(page.locator("#jump-latest")).to_be_visible()
        page.wait_for_timeout(500)
        assert line_count(page) <= DOM_MAX
        page.locator("#jump-latest").click()
        expect(reader.line(f"while reading {DOM_MAX + 99}")).to_be_in_viewport()
        assert line_count(page) <= DOM_MAX
        for measured in (up, down, live):
            assert measured["median_ms"] <= 17.5, (up, down, live)  # 60 frames a second
            assert measured["p99_ms"] <= FRAME_GAP_LIMIT_MS, (up, down, live)
            assert measured["max_ms"] <= WORST_GAP_MS, (up, down, live)
    finally:
        feeder.close()
        reader.close()
