"""The client core against live servers (ngircd from Debian and salotto): what two users do."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from salotto.clients.core import Buffer, BufferKind, Client, LineKind, Session, SessionConfig
from salotto.clients.core.history import START_OF_HISTORY
from tests.clients.conftest import HISTORY_LINES_SAID, IrcServer, numbered_line

WAIT_S = 10.0
Check = Callable[[Session], bool]
Connect = Callable[[str], Client]


def buffer(client: Client, name: str) -> Buffer:
    buf = client.session.get_buffer(name)
    assert buf is not None, f"no buffer {name}"
    return buf


def joined(channel: str) -> Check:
    def check(s: Session) -> bool:
        buf = s.get_buffer(channel)
        return buf is not None and buf.joined

    return check


def has_line(name: str, text: str, kind: LineKind | None = None) -> Check:
    def check(s: Session) -> bool:
        buf = s.get_buffer(name)
        return buf is not None and any(text in ln.text and kind in (None, ln.kind) for ln in buf.lines)

    return check


def has_member(channel: str, nick: str) -> Check:
    def check(s: Session) -> bool:
        buf = s.get_buffer(channel)
        return buf is not None and s.fold(nick) in buf.members

    return check


@pytest.fixture
def connect(irc_server: IrcServer) -> Iterator[Connect]:
    clients: list[Client] = []

    def make(nick: str) -> Client:
        client = Client("127.0.0.1", irc_server.port, SessionConfig(nick=nick))
        client.start()
        clients.append(client)
        assert client.wait_until(joined("#lobby"), WAIT_S), buffer(client, "*").lines
        return client

    yield make
    for client in clients:
        client.close()


def test_two_clients_chat_in_lobby(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    assert alice.wait_until(has_member("#lobby", "bob"), WAIT_S)
    bob.input("hello from bob")
    assert alice.wait_until(has_line("#lobby", "hello from bob", LineKind.MESSAGE), WAIT_S)
    line = next(ln for ln in buffer(alice, "#lobby").lines if "hello from bob" in ln.text)
    assert line.nick == "bob" and not line.own
    assert bob.wait_until(has_line("#lobby", "hello from bob"), WAIT_S)
    alice.input("/me waves")
    assert bob.wait_until(has_line("#lobby", "waves", LineKind.ACTION), WAIT_S)
    # A mention marks the buffer when it is not the one shown.
    bob.session.set_active("*")
    alice.input("bob: are you there?")
    assert bob.wait_until(lambda s: buffer(bob, "#lobby").mentioned, WAIT_S)
    assert buffer(bob, "#lobby").unread >= 1


def test_private_messages(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.input("/msg bob psst, bob")
    assert bob.wait_until(has_line("alice", "psst, bob"), WAIT_S)
    assert buffer(bob, "alice").kind is BufferKind.QUERY
    bob.session.set_active(bob.session.key("alice"))
    bob.input("hi alice, only you see this")
    assert alice.wait_until(has_line("bob", "only you see this"), WAIT_S)
    assert buffer(alice, "bob").kind is BufferKind.QUERY


def test_nick_change_seen_by_both(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    assert alice.wait_until(has_member("#lobby", "bob"), WAIT_S)
    bob.input("/nick robert")
    assert bob.wait_until(lambda s: s.nick == "robert", WAIT_S)
    assert alice.wait_until(has_member("#lobby", "robert"), WAIT_S)
    assert "bob" not in buffer(alice, "#lobby").members
    assert alice.wait_until(has_line("#lobby", "bob is now known as robert", LineKind.NICK), WAIT_S)


def test_join_topic_and_part(connect: Connect) -> None:
    alice, bob = connect("alice"), connect("bob")
    alice.input("/join #dev")
    assert alice.wait_until(joined("#dev"), WAIT_S)
    assert alice.session.active == alice.session.key("#dev")
    alice.input("/topic shipping the gui")
    assert alice.wait_until(lambda s: buffer(alice, "#dev").topic == "shipping the gui", WAIT_S)
    bob.input("/join #dev")
    assert bob.wait_until(lambda s: joined("#dev")(s) and buffer(bob, "#dev").topic == "shipping the gui", WAIT_S)
    assert bob.wait_until(has_member("#dev", "alice"), WAIT_S)
    assert buffer(bob, "#dev").members["alice"].prefixes == "@"
    bob.input("/part")
    assert alice.wait_until(has_line("#dev", "bob left", LineKind.PART), WAIT_S)
    bob.input("/bogus")
    assert bob.wait_until(has_line("#dev", "Unknown command /bogus", LineKind.ERROR), WAIT_S)
    bob.input("/kick alice")  # not an operator there: the server's refusal becomes a readable line
    assert bob.wait_until(lambda s: any(ln.kind is LineKind.ERROR and "#dev" in ln.text
                                        for buf in s.buffers.values() for ln in buf.lines), WAIT_S)


def test_reconnect_after_server_restart(irc_server: IrcServer) -> None:
    client = Client("127.0.0.1", irc_server.port, SessionConfig(nick="carol"), reconnect_delays_s=(0.2, 0.5))
    client.start()
    try:
        assert client.wait_until(joined("#lobby"), WAIT_S)
        client.input("/join #extra")
        assert client.wait_until(joined("#extra"), WAIT_S)
        irc_server.restart()
        assert client.wait_until(has_line("#lobby", f"Connection to 127.0.0.1:{irc_server.port} lost (",
                                          LineKind.ERROR), WAIT_S)
        # One server: back to the same one, after the first wait.
        assert client.wait_until(has_line("#lobby", f"connecting to 127.0.0.1:{irc_server.port} in 0.2 s...",
                                          LineKind.ERROR), WAIT_S)
        assert client.wait_until(lambda s: s.registered, WAIT_S)
        assert client.wait_until(joined("#lobby"), WAIT_S)
        assert client.wait_until(joined("#extra"), WAIT_S)
    finally:
        client.close()


def test_scrolling_back_to_the_start_of_history(history_server: IrcServer) -> None:
    """The backlog on join, then older lines request by request: all 150 lines, once each, in order."""
    client = Client("127.0.0.1", history_server.port, SessionConfig(nick="reader"))
    client.start()
    try:
        assert client.wait_until(has_line("#lobby", numbered_line(HISTORY_LINES_SAID)), WAIT_S)
        lobby = buffer(client, "#lobby")
        key = client.session.key("#lobby")
        requests = 0
        while not lobby.at_start_of_history:
            count = len(lobby.lines)
            assert client.session.request_older(key)
            assert not client.session.request_older(key)  # one at a time
            client.flush()
            requests += 1
            assert client.wait_until(lambda s, before=count: len(lobby.lines) > before, WAIT_S), requests
            assert requests <= HISTORY_LINES_SAID // 50 + 1, "the client keeps asking"
        said = [ln.text for ln in lobby.lines if ln.kind is LineKind.MESSAGE]
        assert said == [numbered_line(i) for i in range(1, HISTORY_LINES_SAID + 1)]
        assert [ln.text for ln in lobby.lines].count(START_OF_HISTORY) == 1
        assert lobby.lines[0].text == START_OF_HISTORY
        assert requests == 3  # 50 on join; 50, 50, then the empty reply
        assert not client.session.request_older(key)
    finally:
        client.close()


def test_logs_in_to_a_salotto_account_with_sasl(server_factory: Callable[[str], IrcServer]) -> None:
    server = server_factory("salotto")
    # Register the account with the client itself, as a user would: /quote REGISTER.
    first = Client("127.0.0.1", server.port, SessionConfig(nick="carol"))
    first.start()
    try:
        assert first.wait_until(joined("#lobby"), WAIT_S)
        first.input("/quote REGISTER * * carol-secret-pw")
        assert first.wait_until(has_line("*", "logged in as carol"), WAIT_S), buffer(first, "*").lines
    finally:
        first.close()
    again = Client("127.0.0.1", server.port,
                   SessionConfig(nick="carol_", sasl_account="carol", sasl_password="carol-secret-pw"))
    again.start()
    try:
        assert again.wait_until(joined("#lobby"), WAIT_S)
        assert again.wait_until(has_line("*", "logged in as carol"), WAIT_S), buffer(again, "*").lines
    finally:
        again.close()
    wrong = Client("127.0.0.1", server.port,
                   SessionConfig(nick="mallory", sasl_account="carol", sasl_password="not-it"))
    wrong.start()
    try:
        assert wrong.wait_until(has_line("*", "SASL"), WAIT_S), buffer(wrong, "*").lines
        assert not any("logged in as carol" in ln.text for ln in buffer(wrong, "*").lines)
    finally:
        wrong.close()
