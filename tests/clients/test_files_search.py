"""Sharing files and searching history from the client core and the Tk window, against a real salotto
(its web port holds the file host): uploads through the API, thumbnails of PNG and GIF, links for other
files, refusals said clearly; /search and the search field, paging, jumping to last month's message."""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from salotto.clients.core import Client, LineKind, SessionConfig
from salotto.clients.core.files import file_name, filehost
from tests.clients.test_search_files_core import png
from tests.web.conftest import WebServer, start_web_server, stop_web_server
from tests.web.test_login import register_over_tcp

WAIT_S = 15.0
# Messages said in #lobby about a month ago, stored before the server starts (as if it had run then). The
# servers here keep history for the default time (history_max_age_s, a year), which must keep them.
OLD_DAYS = 31
CAKE_LINES = 60  # more than a page of results (SEARCH_PAGE is 50)
# A small per-file limit, and no files of unknown type (application/octet-stream), to see both refused.
MAX_FILE_BYTES = 200_000
CONFIG = f"""
login_attempts_per_ip = 100
upload_max_file_bytes = {MAX_FILE_BYTES}
upload_types = ["image/png", "image/gif", "image/jpeg", "text/plain", "application/pdf"]
"""


def seed_history(data_dir: Path) -> dict[str, str]:
    """Store last month's talk in #lobby; returns msgid -> text of the messages about the cake."""
    from salotto.storage import HistoryMessage, open_storage

    data_dir.mkdir(parents=True, exist_ok=True)
    start = (datetime.now(UTC) - timedelta(days=OLD_DAYS)).timestamp()
    cake: dict[str, str] = {}
    messages = []
    for i in range(CAKE_LINES):
        msgid = str(uuid.uuid4())
        text = f"cake recipe number {i:02d}: more chocolate"
        cake[msgid] = text
        messages.append(HistoryMessage(msgid, "#lobby", start + i * 60, "otto!otto@127.0.0.1", None, "PRIVMSG",
                                       text))
        messages.append(HistoryMessage(str(uuid.uuid4()), "#lobby", start + i * 60 + 30, "ann!ann@127.0.0.1",
                                       None, "PRIVMSG", f"unrelated chatter {i:02d}"))
    storage = open_storage("sqlite", data_dir)
    try:
        storage.append_messages(messages)
    finally:
        storage.close()
    return cake


@pytest.fixture(scope="module")
def share_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebServer, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("share")
    cake = seed_history(tmp / "data")
    server = start_web_server(tmp, config_text=CONFIG)
    yield server, cake
    stop_web_server(server)


def logged_in(server: WebServer, nick: str, password: str = "", *, register: bool = True) -> Client:
    """A client core logged in to the account ``nick`` (registered first), in #lobby with its backlog."""
    password = password or f"{nick}-secret-pw"
    if register:
        register_over_tcp(server, nick, password)
    client = Client(server.irc.host, server.irc.port, SessionConfig(nick=nick, sasl_account=nick,
                                                                    sasl_password=password))
    client.start()
    assert client.wait_until(lambda s: s.account == nick and s.get_buffer("#lobby") is not None
                             and s.get_buffer("#lobby").joined, WAIT_S)  # type: ignore[union-attr]
    return client


def needs_filehost(client: Client) -> None:
    if not filehost(client.session):
        pytest.skip("this salotto advertises no soju.im/FILEHOST yet (the files branch is not merged)")


def needs_search(client: Client) -> None:
    if "soju.im/search" not in client.session.caps_enabled:
        pytest.skip("this salotto offers no soju.im/search yet (the search branch is not merged)")


def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def own_texts(client: Client, name: str = "#lobby") -> list[str]:
    buf = client.session.get_buffer(name)
    return [line.text for line in buf.lines if line.own] if buf is not None else []


def errors(client: Client, name: str = "#lobby") -> list[str]:
    buf = client.session.get_buffer(name)
    return [line.text for line in buf.lines if line.kind is LineKind.ERROR] if buf is not None else []


# -- the core: what a script or bot gets ------------------------------------------------------------


def test_a_script_shares_a_file_and_the_others_see_its_link(share_server: tuple[WebServer, dict[str, str]],
                                                            tmp_path: Path) -> None:
    server, _ = share_server
    alice = logged_in(server, "alice")
    bob = logged_in(server, "bob")
    try:
        needs_filehost(alice)
        picture = tmp_path / "vacanza è bella; 2.png"
        picture.write_bytes(png(40, 30))
        transfer = alice.upload(picture, "#lobby")
        assert transfer is not None
        assert alice.wait_until(lambda _s: transfer.state != "sending", WAIT_S)
        assert transfer.state == "done", transfer.error
        assert transfer.sent == transfer.total == picture.stat().st_size
        assert "/files/" in transfer.url and transfer.url.startswith(server.url.rstrip("/"))
        assert file_name(transfer.url).startswith("vacanza"), transfer.url  # the name came through
        # The link goes to the channel as alice's message, and bob gets it.
        assert alice.wait_until(lambda _s: transfer.url in own_texts(alice), WAIT_S)
        assert bob.wait_until(lambda s: any(line.text == transfer.url for line in s.get_buffer("#lobby").lines),
                              WAIT_S)  # type: ignore[union-attr]
        assert bob.file_urls(f"look: {transfer.url}") == [transfer.url]
        # What is stored is the file, byte for byte.
        status, headers, body = http_get(transfer.url)
        assert status == 200 and body == picture.read_bytes()
        assert headers.get("content-type", "").startswith("image/png")
        # bob's client previews it: a PNG within the limits comes with its bytes and size.
        assert bob.preview(transfer.url) is None  # being fetched
        assert bob.wait_until(lambda _s: bob.previews.get(transfer.url) is not None, WAIT_S)
        preview = bob.previews[transfer.url]
        assert preview is not None and preview.image == picture.read_bytes()
        assert (preview.width, preview.height, preview.content_type) == (40, 30, "image/png")
    finally:
        alice.close()
        bob.close()


def test_uploads_that_cannot_happen_say_why(share_server: tuple[WebServer, dict[str, str]], tmp_path: Path) -> None:
    server, _ = share_server
    guest = Client(server.irc.host, server.irc.port, SessionConfig(nick="guest"))
    guest.start()
    member = logged_in(server, "carol")
    try:
        assert guest.wait_until(lambda s: s.get_buffer("#lobby") is not None and s.get_buffer("#lobby").joined,
                                WAIT_S)  # type: ignore[union-attr]
        needs_filehost(guest)
        note = tmp_path / "note.txt"
        note.write_text("hello\n")
        # Not logged in: nothing is sent, and the line says what to do.
        assert guest.upload(note, "#lobby") is None
        assert any("needs an account" in text for text in errors(guest)), errors(guest)
        # No such file.
        assert member.upload(tmp_path / "missing.png", "#lobby") is None
        assert any("Could not share missing.png: cannot read" in text for text in errors(member))
        # Too big, and of a type the server does not take: refused, with the server's reason.
        big = tmp_path / "big.txt"
        big.write_text("all work and no play\n" * (MAX_FILE_BYTES // 2))  # ten times the limit: refused early
        blob = tmp_path / "blob.bin"
        blob.write_bytes(bytes(range(256)) * 8)
        for path, why in ((big, "the file is too big for this server: The file is too big"),
                          (blob, "the server does not take this type of file: Files of this type")):
            transfer = member.upload(path, "#lobby")
            assert transfer is not None
            assert member.wait_until(lambda _s, t=transfer: t.state != "sending", WAIT_S)
            assert transfer.state == "failed" and transfer.error.startswith(why), transfer.error
            assert f"Could not share {path.name}: {transfer.error}." in errors(member)
        assert not [text for text in own_texts(member) if "/files/" in text]  # no link was sent
        # The server refuses a wrong password for uploads even if the IRC login was right earlier.
        member.session.config.sasl_password = "not the password"
        transfer = member.upload(note, "#lobby")
        assert transfer is not None
        assert member.wait_until(lambda _s: transfer.state != "sending", WAIT_S)
        assert transfer.state == "failed" and "login" in transfer.error, transfer.error
        assert any(text.startswith("Could not share note.txt: ") for text in errors(member))
    finally:
        guest.close()
        member.close()


# -- search from the core -----------------------------------------------------------------------------


def test_a_script_searches_last_months_messages_page_by_page(share_server: tuple[WebServer, dict[str, str]]) -> None:
    server, cake = share_server
    dora = logged_in(server, "dora")
    try:
        needs_search(dora)
        assert dora.session.search("chocolate", "#lobby")
        results = dora.session.search_results
        assert results is not None
        assert dora.wait_until(lambda _s: not results.pending, WAIT_S)
        assert not results.error, results.error
        first = len(results.results)
        assert 0 < first <= CAKE_LINES
        times = [r.time for r in results.results]
        assert times == sorted(times, reverse=True)  # newest first
        assert results.results[0].text == f"cake recipe number {CAKE_LINES - 1:02d}: more chocolate"
        assert all(r.buffer == "#lobby" and r.nick == "otto" and r.msgid in cake for r in results.results)
        while results.more:
            assert dora.session.search_more()
            assert dora.wait_until(lambda _s: not results.pending, WAIT_S)
        assert sorted(r.msgid for r in results.results) == sorted(cake)  # all of them, each once
    finally:
        dora.close()


def bomb_png(width: int, height: int) -> bytes:
    """A PNG of ``width`` x ``height`` black-and-white pixels, all black: tiny on disk, huge decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height, 9)) + chunk(b"IEND", b""))


def test_previews_are_bounded_and_only_for_the_servers_own_files(
        share_server: tuple[WebServer, dict[str, str]], tmp_path: Path) -> None:
    from salotto.clients.core.files import PREVIEW_MAX_PIXELS, fetch_preview

    server, _ = share_server
    erin = logged_in(server, "erin")
    try:
        needs_filehost(erin)
        bomb = tmp_path / "innocent.png"
        bomb.write_bytes(bomb_png(8000, 8000))  # 64 million pixels in a few kilobytes
        assert bomb.stat().st_size < MAX_FILE_BYTES and PREVIEW_MAX_PIXELS < 8000 * 8000
        transfer = erin.upload(bomb, "#lobby")
        assert transfer is not None
        assert erin.wait_until(lambda _s: transfer.state != "sending", WAIT_S)
        assert transfer.state == "done", transfer.error
        erin.preview(transfer.url)
        assert erin.wait_until(lambda _s: erin.previews.get(transfer.url) is not None, WAIT_S)
        preview = erin.previews[transfer.url]
        assert preview is not None and preview.image is None  # never handed to Tk to decode
        assert preview.error == "8000\u00d78000 pixels: too big for a preview"
        # A picture over the byte limit is not fetched either (HEAD says how big it is).
        small = fetch_preview(transfer.url, max_bytes=100)
        assert small.image is None and small.error == "too big for a preview"
        assert small.size == bomb.stat().st_size
        # A link to a file elsewhere gets no request at all: a bare link.
        elsewhere = "http://127.0.0.2:9/files/abc/cat.png"
        assert erin.file_urls(f"see {elsewhere}") == []
        bare = erin.preview(elsewhere)
        assert bare is not None and bare.image is None and bare.name == "cat.png"
        assert elsewhere not in erin.previews
    finally:
        erin.close()
