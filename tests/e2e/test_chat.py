"""People chatting through a real ``salotto serve`` process over raw sockets."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, start_server, stop_server
from tests.e2e.helpers import joined, read_until_closed, wait_for_log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("chat"))
    yield running
    stop_server(running)


def test_two_clients_register_and_chat_in_lobby(server: RunningServer) -> None:
    alice = joined(server, "alice")
    bob = joined(server, "bob")
    join = alice.expect("JOIN")
    assert join.source is not None and join.source.startswith("bob!") and join.params[0] == "#lobby"
    names = " ".join(" ".join(msg.params) for msg in bob.received if msg.command == "353")
    assert "alice" in names.split() and "bob" in names.split()

    alice.send("PRIVMSG #lobby :hello bob")
    msg = bob.expect("PRIVMSG")
    assert msg.source is not None and msg.source.startswith("alice!")
    assert msg.params == ["#lobby", "hello bob"]
    bob.send("PRIVMSG #lobby :hi alice")
    assert alice.expect("PRIVMSG").params == ["#lobby", "hi alice"]
    # And privately.
    bob.send("PRIVMSG alice :just you")
    assert alice.expect("PRIVMSG").params == ["alice", "just you"]
    assert alice.nothing_more(0.2) == []  # no echo of one's own messages without echo-message
    for client in (alice, bob):
        client.send("QUIT")
        read_until_closed(client)  # gone before the next test's clients join


@pytest.mark.parametrize(
    ("how", "reason"),
    [("close", "Connection closed"), ("reset", "Connection error: connection reset by peer")],
)
def test_abrupt_disconnect_is_noticed_and_others_see_quit(server: RunningServer, how: str, reason: str) -> None:
    watcher = joined(server, f"watch-{how}")
    gone = joined(server, f"gone-{how}")
    watcher.expect("JOIN")
    if how == "reset":
        gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        gone.nothing_more(0.3)  # read what is in flight (the history replay): unread data turns close into reset
    gone.sock.close()  # no QUIT

    quit_msg = watcher.expect("QUIT")
    assert quit_msg.source is not None and quit_msg.source.startswith(f"gone-{how}!")
    assert quit_msg.params == [reason]
    wait_for_log(server, f"disconnected gone-{how} (127.0.0.1): {reason}")
    # Removed: the nick is free again and WHOIS does not find it.
    watcher.send(f"WHOIS gone-{how}")
    watcher.expect("401")
    again = joined(server, f"gone-{how}")
    again.send("QUIT")
    read_until_closed(again)
    # Seen gone before the test ends, so its QUIT cannot reach the next test's clients.
    assert watcher.expect("QUIT").source.startswith(f"gone-{how}!")
    watcher.send("QUIT")
    read_until_closed(watcher)


def test_quit_with_a_message_shows_it_to_others(server: RunningServer) -> None:
    stays = joined(server, "stays")
    leaves = joined(server, "leaves")
    leaves.send("QUIT :off to lunch")
    lines = read_until_closed(leaves)
    assert lines and lines[-1].startswith("ERROR"), lines
    quit_msg = stays.expect("QUIT")
    assert quit_msg.source is not None and quit_msg.source.startswith("leaves!")
    assert quit_msg.params == ["Quit: off to lunch"]
    leaves2 = joined(server, "leaves2")
    leaves2.send("QUIT")
    assert stays.expect("QUIT").params == ["Quit"]
    stays.send("QUIT")
    read_until_closed(stays)


def test_log_has_one_line_per_connection_registration_and_disconnection(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        alice = joined(running, "alice")
        bob = joined(running, "bob")
        alice.send("QUIT :bye")
        read_until_closed(alice)
        bob.expect("QUIT")  # unread data would make close() send a reset
        bob.sock.close()
        idle = running.client()
        idle.close()
        wait_for_log(running, "disconnected", count=3)
    finally:
        stop_server(running)
    lines = running.log().splitlines()
    assert len([line for line in lines if "connection from 127.0.0.1 (tcp)" in line]) == 3
    assert [line.split(" INFO    ")[-1] for line in lines if " registered " in line] == [
        "registered alice!~alice@127.0.0.1 (tcp)",
        "registered bob!~bob@127.0.0.1 (tcp)",
    ]
    disconnections = [line.split(" INFO    ")[-1] for line in lines if "disconnected" in line]
    assert sorted(disconnections) == [
        "disconnected alice (127.0.0.1): Quit: bye",
        "disconnected bob (127.0.0.1): Connection closed",
        "disconnected unregistered 127.0.0.1: Connection closed",
    ]
    assert "Traceback" not in running.log()
