"""jaraco's ``irc`` library (PyPI ``irc``), unchanged, against a real salotto server.

The library runs its reactor on a thread; every event it dispatches is recorded in an Inbox, and a
RawClient in the same channel checks the other side of each exchange.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import irc.client
import pytest

from tests.conftest import RunningServer
from tests.interop.conftest import LOBBY
from tests.interop.waiting import Inbox, expect_from
from tests.irc_client import RawClient

NICK = "jaraco"
PEER = "rawpeer"
# How long one reactor turn waits for data before checking whether the test is over.
REACTOR_TURN_S = 0.05


class ReactorThread:
    """An ``irc.client.Reactor`` with one server connection, pumped on a daemon thread."""

    def __init__(self, server: RunningServer, nick: str) -> None:
        self.inbox = Inbox()
        self.reactor = irc.client.Reactor()
        self.reactor.add_global_handler("all_events", self._record)
        self.connection = self.reactor.server().connect(server.host, server.port, nick, ircname="jaraco irc")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="irc-reactor", daemon=True)
        self._thread.start()

    def _record(self, connection: irc.client.ServerConnection, event: irc.client.Event) -> None:
        self.inbox.add(event.type, str(event.source or ""), event.target, list(event.arguments))

    def _pump(self) -> None:
        while not self._stop.is_set():
            self.reactor.process_once(REACTOR_TURN_S)

    def wait_for(self, kind: str, target: str | None, text: str | None = None, nick: str | None = None) -> None:
        def matches(event: tuple[object, ...]) -> bool:
            etype, source, etarget, args = event
            return (
                etype == kind
                and (target is None or str(etarget).lower() == target.lower())
                and (text is None or (bool(args) and args[0] == text))
                and (nick is None or str(source).split("!", 1)[0] == nick)
            )

        self.inbox.wait_for(matches, f"{kind} to {target} {text!r} from {nick}")

    def close(self) -> None:
        if self.connection.is_connected():
            self.connection.quit("done")
        self._stop.set()
        self._thread.join(timeout=5)
        self.connection.close()


@pytest.fixture
def jaraco(salotto_server: RunningServer) -> Iterator[Callable[[str], ReactorThread]]:
    clients: list[ReactorThread] = []

    def make(nick: str) -> ReactorThread:
        client = ReactorThread(salotto_server, nick)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_welcomed_and_auto_joined_to_lobby(
    jaraco: Callable[[str], ReactorThread], raw_peer: Callable[[str], RawClient]
) -> None:
    peer = raw_peer(PEER)
    client = jaraco(NICK)
    client.wait_for("welcome", NICK)
    client.wait_for("join", LOBBY, nick=NICK)
    expect_from(peer, "JOIN", NICK, p0=LOBBY)
    assert client.connection.get_nickname() == NICK


def test_channel_messages_both_ways(
    jaraco: Callable[[str], ReactorThread], raw_peer: Callable[[str], RawClient]
) -> None:
    peer = raw_peer(PEER)
    client = jaraco(NICK)
    expect_from(peer, "JOIN", NICK, p0=LOBBY)

    client.connection.privmsg(LOBBY, "hello from jaraco irc")
    expect_from(peer, "PRIVMSG", NICK, p0=LOBBY, p1="hello from jaraco irc")

    peer.send(f"PRIVMSG {LOBBY} :hello back, jaraco")
    client.wait_for("pubmsg", LOBBY, "hello back, jaraco", nick=PEER)


def test_private_messages_both_ways(
    jaraco: Callable[[str], ReactorThread], raw_peer: Callable[[str], RawClient]
) -> None:
    peer = raw_peer(PEER)
    client = jaraco(NICK)
    expect_from(peer, "JOIN", NICK, p0=LOBBY)

    client.connection.privmsg(PEER, "psst, raw peer")
    expect_from(peer, "PRIVMSG", NICK, p0=PEER, p1="psst, raw peer")

    peer.send(f"PRIVMSG {NICK} :psst yourself")
    client.wait_for("privmsg", NICK, "psst yourself", nick=PEER)


def test_joins_another_channel_and_talks_there(
    jaraco: Callable[[str], ReactorThread], raw_peer: Callable[[str], RawClient]
) -> None:
    peer = raw_peer(PEER)
    client = jaraco(NICK)
    client.wait_for("join", LOBBY, nick=NICK)
    peer.send("JOIN #interop")
    peer.expect("JOIN", p0="#interop")

    client.connection.join("#interop")
    client.wait_for("join", "#interop", nick=NICK)
    client.wait_for("namreply", NICK)
    expect_from(peer, "JOIN", NICK, p0="#interop")

    client.connection.privmsg("#interop", "over here")
    expect_from(peer, "PRIVMSG", NICK, p0="#interop", p1="over here")
    peer.send("PRIVMSG #interop :got it")
    client.wait_for("pubmsg", "#interop", "got it", nick=PEER)
