"""draft/multiline through a real ``salotto serve`` process: relayed over raw sockets, kept across a restart."""

from __future__ import annotations

from pathlib import Path

from salotto.proto import Message
from tests.conftest import start_server, stop_server

CAPS = ["message-tags", "server-time", "batch", "draft/chathistory"]
MULTILINE = [*CAPS, "draft/multiline"]
LINES = ["def greet(name):", '    return "hello " + name', "", "and a sentence cut in ", "two"]


def _inner(messages: list[Message], ref: str) -> list[tuple[str, bool]]:
    return [(m.params[1], "draft/multiline-concat" in m.tags) for m in messages if m.tags.get("batch") == ref]


def test_a_multiline_message_survives_a_restart_as_one_message(tmp_path: Path, backend: list[str]) -> None:
    server = start_server(tmp_path, *backend)
    try:
        alice = server.client()
        alice.register("alice", caps=[*MULTILINE, "echo-message"])
        alice.expect("366")
        alice.send("BATCH +p1 draft/multiline #lobby")
        for i, line in enumerate(LINES):
            concat = ";draft/multiline-concat" if i == len(LINES) - 1 else ""
            alice.send(f"@batch=p1{concat} PRIVMSG #lobby :{line}")
        alice.send("BATCH -p1")
        echo = alice.expect("BATCH")
        msgid = echo.tags["msgid"]
        alice.expect("BATCH", p0="-" + echo.params[0][1:])
        alice.close()
    finally:
        stop_server(server)
    restarted = start_server(tmp_path, *backend)
    try:
        modern = restarted.client()
        modern.register("modern", caps=MULTILINE)
        modern.expect("366")
        modern.send("CHATHISTORY LATEST #lobby * 10")
        # Four BATCH lines: the history batch opens, the multiline batch opens and closes, the history one closes.
        got = modern.lines_until("BATCH", skip_first=True) + modern.lines_until("BATCH", skip_first=True)
        plain = restarted.client()
        plain.register("plain", caps=CAPS)
        plain.expect("366")
        plain.send("CHATHISTORY LATEST #lobby * 10")
        lines = [m for m in plain.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"]
    finally:
        stop_server(restarted)
    opening = next(m for m in got if m.command == "BATCH" and m.params[1:] == ["draft/multiline", "#lobby"])
    assert opening.tags["msgid"] == msgid and opening.tags.get("batch"), "one message, nested in the history batch"
    assert _inner(got, opening.params[0][1:]) == [
        ("def greet(name):", False), ('    return "hello " + name', False), ("", False),
        ("and a sentence cut in ", False), ("two", True)]
    assert [m.params[1] for m in lines] == ["def greet(name):", '    return "hello " + name', "and a sentence cut in ",
                                            "two"]
    assert [m.tags.get("msgid") for m in lines] == [msgid, None, None, None]
