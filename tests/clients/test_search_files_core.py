"""Search (soju.im/search) and file sharing (soju.im/FILEHOST) in the client core, without a network:
what the session sends, how it reads the replies, paging, jumping to a result; the file helpers."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from salotto.clients.core import ChangeKind, LineKind, Session
from salotto.clients.core.files import (
    content_disposition,
    explain_status,
    file_urls,
    filehost,
    human_size,
    image_size,
    upload_problem,
)
from salotto.clients.core.history import GAP_TEXT
from salotto.clients.core.search import SEARCH_PAGE, search_attributes
from tests.clients.test_session import feed, make, register

CAPS = "batch server-time message-tags echo-message chathistory soju.im/search"


def searcher() -> Session:
    session = make()
    register(session, CAPS)
    feed(session, ":me!u@h JOIN #lobby")
    session.take_outbox()
    session.take_changes()
    return session


def stamp(day: int, minute: int = 0) -> str:
    return f"2024-11-{day:02d}T10:{minute:02d}:00.000Z"


def reply(ref: str, *lines: tuple[str, str, str, str]) -> list[str]:
    """A search batch: each line (msgid, time, source, "COMMAND target :text")."""
    out = [f":srv BATCH +{ref} soju.im/search"]
    out += [f"@batch={ref};msgid={msgid};time={time} :{source} {rest}" for msgid, time, source, rest in lines]
    return [*out, f":srv BATCH -{ref}"]


def test_the_search_command_escapes_its_attributes_and_asks_for_a_page() -> None:
    assert search_attributes("cake; or pie", "#lobby", "otto") == (
        r"text=cake\:\sor\spie;in=#lobby;from=otto")
    assert search_attributes("x", before=datetime(2024, 11, 3, 10, 0, tzinfo=UTC), limit=5) == (
        "text=x;before=2024-11-03T10:00:00.000Z;limit=5")
    session = searcher()
    assert session.search("chocolate cake", "#lobby")
    assert session.take_outbox() == [f"SEARCH text=chocolate\\scake;in=#lobby;limit={SEARCH_PAGE}"]
    assert session.search_results is not None and session.search_results.pending
    # /search from the entry: everywhere, in one buffer, -here, -from.
    session.input("/search cake")
    assert session.take_outbox() == [f"SEARCH text=cake;limit={SEARCH_PAGE}"]
    session.active = "#lobby"
    session.input("/search -here -from otto the cake")
    assert session.take_outbox() == [f"SEARCH text=the\\scake;in=#lobby;from=otto;limit={SEARCH_PAGE}"]
    session.input("/search -in")
    assert session.take_outbox() == []
    assert "Usage: /search" in session.buffers["#lobby"].lines[-1].text


def test_results_are_read_from_the_batch_newest_first_with_their_buffer() -> None:
    session = searcher()
    session.search("cake")
    session.take_changes()
    feed(session, *reply("s1",
                         ("m1", stamp(1), "otto!o@h", "PRIVMSG #lobby :who brings the cake?"),
                         ("m2", stamp(2), "otto!o@h", "PRIVMSG me :a cake for you"),
                         ("m3", stamp(3), "me!u@h", "PRIVMSG otto :thanks for the cake"),
                         ("m4", stamp(4), "otto!o@h", "PRIVMSG #lobby :\x01ACTION bakes a cake\x01")))
    results = session.search_results
    assert results is not None and not results.pending and not results.more
    assert [(r.buffer, r.nick, r.text, r.msgid) for r in results.results] == [
        ("#lobby", "otto", "bakes a cake", "m4"),
        ("otto", "me", "thanks for the cake", "m3"),  # own private message: the other party's buffer
        ("otto", "otto", "a cake for you", "m2"),
        ("#lobby", "otto", "who brings the cake?", "m1"),
    ]
    assert results.results[0].time == datetime(2024, 11, 4, 10, 0, tzinfo=UTC)
    assert any(c.kind is ChangeKind.SEARCH for c in session.take_changes())
    # The results are not chat: no line was added to any buffer.
    assert not [ln for ln in session.buffers["#lobby"].lines if "cake" in ln.text]
    assert session.get_buffer("otto") is None


def test_more_asks_before_the_oldest_result_and_lists_each_message_once() -> None:
    session = searcher()
    session.search("line")
    session.take_outbox()
    first = [(f"m{i}", stamp(10, i), "otto!o@h", f"PRIVMSG #lobby :line {i}") for i in range(10, 10 + SEARCH_PAGE)]
    feed(session, *reply("a", *first))
    results = session.search_results
    assert results is not None and results.more and len(results.results) == SEARCH_PAGE
    assert session.search_more()
    assert session.take_outbox() == [f"SEARCH text=line;before={stamp(10, 10)};limit={SEARCH_PAGE}"]
    assert not session.search_more()  # one page at a time
    # "before" includes the instant itself: m10 comes again, and is listed once.
    second = [(f"m{i}", stamp(10, i), "otto!o@h", f"PRIVMSG #lobby :line {i}") for i in range(0, 11)]
    feed(session, *reply("b", *second))
    assert [r.text for r in results.results][-11:] == [f"line {i}" for i in range(10, -1, -1)]
    assert len(results.results) == SEARCH_PAGE + 10
    assert not results.more  # a short page: nothing older
    assert not session.search_more()


def test_a_refused_search_says_why_and_a_server_without_search_is_explained() -> None:
    session = searcher()
    session.search("x")
    feed(session, ":srv FAIL SEARCH INVALID_PARAMS :Invalid parameters")
    assert session.search_results is not None and session.search_results.error == "Invalid parameters"
    assert not session.search_results.pending
    plain = make()
    register(plain, "batch")
    assert not plain.search("cake")
    assert plain.take_outbox() == []
    assert plain.search_results is not None and "does not offer search" in plain.search_results.error


def test_jumping_to_a_result_fetches_the_lines_around_it_and_focuses_it() -> None:
    session = searcher()
    session.search("cake")
    feed(session, *reply("s", ("old1", stamp(1), "otto!o@h", "PRIVMSG #lobby :the cake of last month")))
    session.take_changes()
    result = session.search_results.results[0] if session.search_results else None
    assert result is not None
    assert session.jump_to(result)
    # The backlog asked on join is still on its way: AROUND waits for it (a reply names no request).
    assert session.take_outbox() == []
    assert feed(session, ":srv BATCH +l chathistory #lobby",
                f"@batch=l;msgid=new1;time={stamp(30)} :ann!a@h PRIVMSG #lobby :today's talk",
                ":srv BATCH -l") == ["CHATHISTORY AROUND #lobby msgid=old1 40"]
    feed(session, ":srv BATCH +h chathistory #lobby",
         f"@batch=h;msgid=old0;time={stamp(1, 0)} :ann!a@h PRIVMSG #lobby :before it",
         f"@batch=h;msgid=old1;time={stamp(1, 0)} :otto!o@h PRIVMSG #lobby :the cake of last month",
         ":srv BATCH -h")
    changes = session.take_changes()
    focus = [c for c in changes if c.kind is ChangeKind.FOCUS]
    assert len(focus) == 1 and focus[0].key == "#lobby" and focus[0].line is not None
    assert focus[0].line.msgid == "old1"
    assert session.active == "#lobby"
    # What came is a month older than what was loaded: a gap line between says so, and loads the rest.
    assert [(ln.kind, ln.text) for ln in session.buffers["#lobby"].lines if ln.kind is LineKind.GAP] == [
        (LineKind.GAP, GAP_TEXT)]
    lines = session.buffers["#lobby"].lines
    assert [ln.msgid for ln in lines if ln.kind is not LineKind.JOIN] == ["old0", "old1", "", "new1"]
    assert session.fill_gap("#lobby")
    assert session.take_outbox() == ["CHATHISTORY BETWEEN #lobby msgid=old1 msgid=new1 50"]
    assert not session.fill_gap("#lobby")  # one request at a time
    feed(session, ":srv BATCH +g chathistory #lobby",
         f"@batch=g;msgid=mid1;time={stamp(15)} :ann!a@h PRIVMSG #lobby :in between", ":srv BATCH -g")
    assert [ln.msgid for ln in session.buffers["#lobby"].lines if ln.kind is not LineKind.JOIN] == [
        "old0", "old1", "mid1", "new1"]  # a short page: the gap is closed
    # Jumping again to a line that is there asks nothing.
    assert session.jump_to(result)
    assert session.take_outbox() == []
    assert [c.kind for c in session.take_changes() if c.kind is ChangeKind.FOCUS] == [ChangeKind.FOCUS]


def test_a_private_result_opens_the_conversation() -> None:
    session = searcher()
    session.search("secret")
    feed(session, *reply("s", ("p1", stamp(1), "otto!o@h", "PRIVMSG me :the secret")))
    assert session.search_results is not None
    session.jump_to(session.search_results.results[0])
    assert session.take_outbox() == ["CHATHISTORY AROUND otto msgid=p1 40"]  # nothing pending for otto
    assert session.active == "otto"


def test_filehost_and_who_may_upload() -> None:
    session = make(sasl_account="kai", sasl_password="pw")
    register(session, "batch")
    assert upload_problem(session, False).startswith("this server does not take files")
    feed(session, r":srv 005 me soju.im/FILEHOST=http://chat.example:8080/upload\x3Bx :are supported")
    assert filehost(session) == "http://chat.example:8080/upload;x"
    assert "needs an account" in upload_problem(session, False)
    session.account = "kai"
    assert upload_problem(session, False) == ""
    assert "plain http while the chat connection is encrypted" in upload_problem(session, True)
    session.input("/upload")  # without a path: the GUI asks which file
    assert session.take_outbox() == []
    session.active = "#lobby"
    session.open_buffer("#lobby")
    session.take_changes()
    session.input("/upload")
    assert [c.kind for c in session.take_changes()] == [ChangeKind.PICK_FILE]
    session.input("/upload '/tmp/my cat.png'")
    assert session.uploads_wanted == [("/tmp/my cat.png", "#lobby")]


def test_links_to_the_file_host_are_recognised_and_others_are_not() -> None:
    host = "https://chat.example/upload"
    text = ("look https://chat.example/files/ab12/cat.png, and https://chat.example:443/files/x/y.pdf "
            "but not https://evil.example/files/a/b.png nor http://chat.example/files/c/d.png "
            "nor https://chat.example/about")
    assert file_urls(text, host) == ["https://chat.example/files/ab12/cat.png", "https://chat.example:443/files/x/y.pdf"]
    assert file_urls(text, "") == []


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_file_helpers() -> None:
    assert image_size(png(3, 2)) == ("image/png", 3, 2)
    assert image_size(b"GIF89a\x10\x00\x20\x00rest") == ("image/gif", 16, 32)
    assert image_size(b"<svg xmlns=...>") is None
    assert content_disposition("my cat.png") == 'attachment; filename="my cat.png"'
    assert content_disposition('my "cat".png') == (
        'attachment; filename="my \\"cat\\".png"; filename*=UTF-8\'\'my%20%22cat%22.png')
    assert content_disposition("gatto è.png") == (
        "attachment; filename=\"gatto _.png\"; filename*=UTF-8''gatto%20%C3%A8.png")
    assert [human_size(n) for n in (1, 532, 12 * 1024 + 300, 3_500_000)] == ["1 byte", "532 bytes", "12 KB", "3.3 MB"]
    assert explain_status(413, "Payload Too Large", "at most 10 MB per file") == (
        "the file is too big for this server: at most 10 MB per file")
    assert explain_status(418, "I'm a teapot", "") == "the server answered 418 I'm a teapot"


def test_the_status_line_tells_the_uploads_progress() -> None:
    from salotto.clients.core import Client, SessionConfig
    from salotto.clients.core.client import Transfer

    client = Client("127.0.0.1", 1, SessionConfig(nick="me"))
    client.status = "connected to 127.0.0.1:6667"
    assert client.status_text == "connected to 127.0.0.1:6667"
    client.transfers.append(Transfer("cat.png", "#lobby", 4 * 1024 * 1024, sent=1024 * 1024))
    assert client.status_text == "connected to 127.0.0.1:6667 \u00b7 uploading cat.png (4.0 MB): 25%"
    client.transfers.append(Transfer("dog.gif", "#lobby", 4 * 1024 * 1024, sent=3 * 1024 * 1024))
    assert client.activity == "uploading 2 files: 50%"
    for transfer in client.transfers:
        transfer.state = "done"
    assert client.activity == ""


def test_an_upload_to_a_stalled_file_host_can_be_cancelled(tmp_path: Path) -> None:
    """A file host that takes the request and then reads nothing: the send waits, cancel stops it."""
    import socket
    import threading
    import time

    from salotto.clients.core.files import Cancel, UploadCancelled, upload

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (32 * 1024 * 1024))  # far more than the socket buffers hold
    sent: list[int] = []
    outcome: list[BaseException | str] = []
    cancel = Cancel()

    def run() -> None:
        try:
            outcome.append(upload(f"http://127.0.0.1:{port}/upload", big, account="a", password="p",
                                  progress=lambda done, _total: sent.append(done), cancel=cancel))
        except BaseException as exc:  # the test looks at it
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until the buffers are full and the send waits
        before = len(sent)
        time.sleep(0.3)
        if sent and len(sent) == before:
            break
    assert sent and sent[-1] < big.stat().st_size
    cancel.cancel()
    worker.join(5)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], UploadCancelled), outcome
    # Cancelled before it starts: nothing is sent at all.
    early = Cancel()
    early.cancel()
    with pytest.raises(UploadCancelled):
        upload(f"http://127.0.0.1:{port}/upload", big, account="a", password="p", cancel=early)
    for sock in (*held, listener):
        sock.close()
