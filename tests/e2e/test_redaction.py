"""REDACT over a real socket: a message deleted a moment after it was said (still in the history
journal) stays deleted across a restart, a clean one or a kill -9, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server

CAPS = ["draft/message-redaction", "message-tags", "echo-message", "draft/chathistory", "batch", "server-time"]
# Messages stay in the journal until something asks: the REDACT is what moves them into the database.
JOURNAL_ONLY = ["--history-store-interval-s", "3600", "--history-store-max-messages", "1000000"]


@pytest.mark.parametrize("stop", ["terminate", "kill -9"])
def test_a_redacted_message_is_gone_from_chathistory_after_a_restart(
    tmp_path: Path, backend: list[str], stop: str
) -> None:
    server = start_server(tmp_path, *JOURNAL_ONLY, *backend)
    try:
        alice = server.client()
        alice.register("alice", caps=CAPS)
        alice.expect("366")
        bob = server.client()
        bob.register("bob", caps=CAPS)
        bob.expect("366")
        msgids = []
        for text in ("keep this", "delete this", "keep that"):
            alice.send(f"PRIVMSG #lobby :{text}")
            msgids.append(alice.expect("PRIVMSG").tags["msgid"])
        alice.send(f"REDACT #lobby {msgids[1]} :typo")
        echo = alice.expect("REDACT")
        assert echo.params == ["#lobby", msgids[1], "typo"]
        relayed = bob.expect("REDACT")
        assert relayed.source is not None and relayed.source.startswith("alice!")
        assert relayed.params == ["#lobby", msgids[1], "typo"]
        if stop == "kill -9":
            server.process.kill()  # no shutdown: the next start replays what the journals hold
            server.process.wait(timeout=10)
    finally:
        stop_server(server)

    restarted = start_server(tmp_path, *JOURNAL_ONLY, *backend)
    try:
        reader = restarted.client()
        reader.register("reader", caps=CAPS)
        reader.expect("366")
        reader.send("CHATHISTORY LATEST #lobby * 10")
        history = [m for m in reader.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"]
        assert [(m.tags["msgid"], m.params[1]) for m in history] == [
            (msgids[0], "keep this"), (msgids[2], "keep that"),
        ]
        # Deleting it again: it is unknown now.
        reader.send(f"REDACT #lobby {msgids[1]}")
        assert reader.expect("FAIL").params[:3] == ["REDACT", "UNKNOWN_MSGID", "#lobby"]
    finally:
        stop_server(restarted)
