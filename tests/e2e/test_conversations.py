"""Replies, reactions and read markers over a real socket, kept across a restart of a real server process."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import start_server, stop_server

CAPS = ["message-tags", "echo-message", "server-time", "batch", "draft/chathistory", "draft/read-marker"]
PASSWORD = "correct-horse-battery"


def test_a_reply_and_a_reaction_survive_a_restart(tmp_path: Path, backend: list[str]) -> None:
    server = start_server(tmp_path, *backend)
    try:
        alice = server.client()
        alice.register("alice", caps=CAPS)
        alice.expect("366")
        alice.send("PRIVMSG #lobby :lunch at noon?")
        msgid = alice.expect("PRIVMSG").tags["msgid"]
        alice.send(f"@+draft/reply={msgid} PRIVMSG #lobby :or one?")
        alice.expect("PRIVMSG")
        alice.send(f"@+draft/react=👍;+draft/reply={msgid} TAGMSG #lobby")
        alice.expect("TAGMSG")
        alice.close()
    finally:
        stop_server(server)
    restarted = start_server(tmp_path, *backend)
    try:
        bob = restarted.client()
        bob.register("bob", caps=CAPS)
        bob.expect("366")
        bob.send("CHATHISTORY LATEST #lobby * 10")
        got = [m for m in bob.lines_until("BATCH", skip_first=True) if m.command in ("PRIVMSG", "TAGMSG")]
    finally:
        stop_server(restarted)
    assert [(m.command, m.params[-1] if m.command == "PRIVMSG" else "") for m in got] == [
        ("PRIVMSG", "lunch at noon?"), ("PRIVMSG", "or one?"), ("TAGMSG", "")
    ]
    assert got[0].tags["msgid"] == msgid
    assert got[1].tags["+draft/reply"] == msgid
    assert got[2].tags["+draft/reply"] == msgid and got[2].tags["+draft/react"] == "👍"


def test_a_read_marker_reaches_the_other_device_and_survives_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        laptop = server.client()
        laptop.register("alice", caps=CAPS)
        laptop.send(f"REGISTER * * :{PASSWORD}")
        laptop.expect("REGISTER", p0="SUCCESS")
        phone = server.client()
        phone.register("alicephone", caps=[*CAPS, "sasl"])
        phone.send("NICKSERV IDENTIFY alice " + PASSWORD)
        phone.expect("900")
        laptop.send("MARKREAD #lobby timestamp=2026-01-07T10:00:00.000Z")
        assert laptop.expect("MARKREAD").params == ["#lobby", "timestamp=2026-01-07T10:00:00.000Z"]
        assert phone.expect("MARKREAD").params == ["#lobby", "timestamp=2026-01-07T10:00:00.000Z"]
    finally:
        stop_server(server)
    restarted = start_server(tmp_path)
    try:
        again = restarted.client()
        again.register("alice", caps=[*CAPS, "sasl"])
        again.send("NICKSERV IDENTIFY alice " + PASSWORD)
        again.expect("900")
        again.send("PART #lobby")
        again.send("JOIN #lobby")
        lines = again.lines_until("366")
        markers = [m.params for m in lines if m.command == "MARKREAD"]
        assert markers == [["#lobby", "timestamp=2026-01-07T10:00:00.000Z"]]
    finally:
        stop_server(restarted)
