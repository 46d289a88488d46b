"""Fixtures for the web tests: a salotto with its web port, and a headless Chromium (Debian's)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningServer, start_server, stop_server

CHROMIUM = os.environ.get("SALOTTO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@dataclass
class WebServer:
    irc: RunningServer
    url: str  # http://127.0.0.1:PORT/

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):] + "irc"

    @property
    def web_port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].strip("/"))


def start_web_server(
    tmp_path: Path, *extra: str, web_listen: str = "127.0.0.1:0", config_text: str | None = None
) -> WebServer:
    """``salotto serve`` with IRC and web listeners (free ports by default); the web URL read from its stdout."""
    irc = start_server(tmp_path, "--web-listen", web_listen, *extra, config_text=config_text)
    assert irc.process.stdout is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = irc.process.stdout.readline()
        if not line:
            break
        match = re.search(r"Web chat: (http://\S+)", line)
        if match:
            return WebServer(irc, match.group(1))
    stop_server(irc)
    raise RuntimeError(f"salotto printed no web chat URL: {irc.log()}")


def stop_web_server(server: WebServer) -> None:
    stop_server(server.irc)


def masked_frame(payload: bytes, first: int = 0x81) -> bytes:
    """A client's WebSocket frame as RFC 6455 wants it, masked (``first``: FIN and opcode; a text frame by
    default), payload under 126 bytes: for raw-socket tests that send what the library would not."""
    mask = os.urandom(4)
    return bytes((first, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def free_port() -> int:
    """A port free right now, for a server that must come back on the same address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("web"))
    yield server
    stop_web_server(server)


def _chromium_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _chromium_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def people(browser: Any) -> Iterator[list[Any]]:
    """The pages a test opens (tests.web.test_browser.Person), each closed at the end: which checks it had
    no script errors and no dialogs."""
    opened: list[Any] = []
    yield opened
    for person in opened:
        person.close()
