"""kill -9 under load loses nothing anyone saw: every message a client received is in history, with
SQLite and with PostgreSQL (a real server the tests start) as the store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from salotto.proto import parse
from salotto.storage import open_storage
from salotto.storage.journal import JOURNAL_FILENAMES
from tests.conftest import RunningServer, start_server, stop_server

SENDERS = 3
MESSAGES_PER_SENDER = 400
UNLIMITED = ["--flood-burst-lines", "100000", "--flood-lines-per-s", "100000", "--flood-max-queued-lines", "100000",
             "--chathistory-max-lines", "5000"]


def _send_all(server: RunningServer, nick: str, ready: threading.Barrier) -> None:
    client = server.client()
    try:
        client.register(nick)
        client.expect("366")
        ready.wait(timeout=10)
        for i in range(MESSAGES_PER_SENDER):
            client.send(f"PRIVMSG #lobby :{nick} says {i}")
        # Stay until the server dies: closing with unread data would reset the connection and the
        # kernel would drop what the server had not read yet.
        while client.read_line(timeout_s=10) is not None:
            pass
    except (OSError, ConnectionError, threading.BrokenBarrierError):
        pass  # the server was killed under us: that is the test
    finally:
        client.close()


# The second case keeps every message after the first pass in the journal until the kill: the restart
# must store them all from there.
@pytest.mark.parametrize(
    "store", [[], ["--history-store-interval-s", "3600", "--history-store-max-messages", "1000000"]],
    ids=["default", "all-in-journal"],
)
def test_kill_9_mid_stream_loses_no_delivered_message(tmp_path: Path, store: list[str], backend: list[str]) -> None:
    store = [*store, *backend]
    server = start_server(tmp_path, *UNLIMITED, *store)
    observer = server.client()
    observer.register("observer", caps=["message-tags"])
    observer.expect("366")
    ready = threading.Barrier(SENDERS + 1)
    senders = [threading.Thread(target=_send_all, args=(server, f"sender{i}", ready)) for i in range(SENDERS)]
    for thread in senders:
        thread.start()
    ready.wait(timeout=10)
    received: list[str] = []
    killed = False
    try:
        while True:
            line = observer.read_line()
            if line is None:
                break
            msg = parse(line)
            if msg.command == "PRIVMSG":
                received.append(msg.tags["msgid"])
                if len(received) == SENDERS * MESSAGES_PER_SENDER // 3 and not killed:
                    server.process.kill()  # SIGKILL: no shutdown, no flush, nothing
                    killed = True
    except (OSError, ConnectionError):
        pass
    for thread in senders:
        thread.join(timeout=30)
    stop_server(server)
    assert killed, f"only {len(received)} messages arrived before the kill"

    restarted = start_server(tmp_path, *UNLIMITED, *store)
    try:
        reader = restarted.client()
        reader.register("reader", caps=["draft/chathistory", "batch", "message-tags"])
        reader.expect("366")
        reader.send(f"CHATHISTORY LATEST #lobby * {SENDERS * MESSAGES_PER_SENDER}")
        stored = {m.tags["msgid"] for m in reader.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"}
    finally:
        stop_server(restarted)
    missing = [msgid for msgid in received if msgid not in stored]
    assert missing == [], f"{len(missing)} of {len(received)} delivered messages are not in history"


def test_the_running_server_moves_the_journal_into_the_database(tmp_path: Path, backend: list[str]) -> None:
    """While the server runs, what the journal holds goes into the database in batches, without a read
    asking for it; a clean stop leaves the journal empty."""
    server = start_server(tmp_path, "--history-store-interval-s", "0.05", *backend)
    try:
        alice = server.client()
        alice.register("alice")
        alice.expect("366")
        for i in range(20):
            alice.send(f"PRIVMSG #lobby :line {i}")
        alice.send("PING :sent")
        alice.expect("PONG")
        storage = (open_storage("postgresql", backend[-1], readonly=True) if backend
                   else open_storage("sqlite", server.data_dir, readonly=True))
        try:
            deadline = time.monotonic() + 5
            while len(storage.latest("#lobby", 50)) < 20 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [m.text for m in storage.latest("#lobby", 50)] == [f"line {i}" for i in range(20)]
        finally:
            storage.close()
    finally:
        stop_server(server)
    assert [(server.data_dir / name).stat().st_size for name in JOURNAL_FILENAMES] == [0, 0]
