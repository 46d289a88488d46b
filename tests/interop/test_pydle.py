"""pydle (PyPI ``pydle``), unchanged, with its IRCv3 features on, against a real salotto server.

pydle negotiates capabilities itself (CAP LS 302, then REQ of everything it supports); we add
server-time to what it asks for, so tagged lines reach its parser. Its asyncio loop runs on a thread
and its callbacks are recorded in an Inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pydle
import pytest

from tests.conftest import RunningServer
from tests.interop.accounts import PASSWORD
from tests.interop.conftest import LOBBY
from tests.interop.waiting import WAIT_S, Inbox, expect_from, wait_until
from tests.irc_client import RawClient

NICK = "pydler"
PEER = "rawpeer"
# Capabilities pydle 1.2 requests when offered, that salotto offers.
PYDLE_WANTS = {
    "away-notify", "cap-notify", "chghost", "echo-message", "extended-join", "invite-notify",
    "message-tags", "multi-prefix", "userhost-in-names",
}
# pydle quits and tears down in milliseconds; this only bounds a teardown that went wrong.
SHUTDOWN_S = 2.0
SERVER_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class RecordingClient(pydle.Client):
    """A stock pydle Client that also asks for server-time and records what it sees."""

    def __init__(self, nick: str, inbox: Inbox) -> None:
        super().__init__(nick, realname="pydle interop")
        self.inbox = inbox

    async def on_capability_server_time_available(self, value: str | None) -> bool:
        return True

    async def on_raw_cap(self, message: Any) -> None:
        self.inbox.add("cap", *message.params[1:])
        await super().on_raw_cap(message)

    async def on_raw_privmsg(self, message: Any) -> None:
        self.inbox.add("raw-privmsg", message.source, *message.params, dict(message.tags))
        await super().on_raw_privmsg(message)

    async def on_connect(self) -> None:
        await super().on_connect()
        # Not self.nickname: pydle handles each line in its own task, so it may not know it yet.
        self.inbox.add("connect")

    async def on_join(self, channel: str, user: str) -> None:
        await super().on_join(channel, user)
        self.inbox.add("join", channel, user)

    async def on_channel_message(self, target: str, by: str, message: str) -> None:
        await super().on_channel_message(target, by, message)
        self.inbox.add("channel", target, by, message)

    async def on_private_message(self, target: str, by: str, message: str) -> None:
        await super().on_private_message(target, by, message)
        self.inbox.add("private", target, by, message)

    async def on_raw_354(self, message: Any) -> None:
        await super().on_raw_354(message)  # first, so pydle's user data is updated once it is recorded
        self.inbox.add("whox", *message.params)

    async def on_user_online(self, nickname: str) -> None:
        await super().on_user_online(nickname)
        self.inbox.add("online", nickname)

    async def on_user_offline(self, nickname: str) -> None:
        await super().on_user_offline(nickname)
        self.inbox.add("offline", nickname)


class LoopThread:
    """One asyncio loop on a daemon thread, driving one pydle client."""

    def __init__(self, server: RunningServer, nick: str) -> None:
        self.inbox = Inbox()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pydle-loop", daemon=True)
        self._thread.start()
        self.client = RecordingClient(nick, self.inbox)
        self.run(self.client.connect(server.host, server.port, tls=False))

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT_S)

    def wait_for(self, *event: object) -> tuple[Any, ...]:
        return self.inbox.wait_for(lambda seen: seen[: len(event)] == event, f"pydle event {event}")

    async def _shutdown(self) -> None:
        """QUIT, then cancel pydle's own tasks (its reader and per-line handlers); bounded in time."""
        if self.client.connected:
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(self.client.quit("done"), SHUTDOWN_S)
        current = asyncio.current_task()
        others = [task for task in asyncio.all_tasks() if task is not current]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=SHUTDOWN_S)

    def close(self) -> None:
        try:
            self.run(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self.loop.close()


@pytest.fixture
def pydle_client(salotto_server: RunningServer) -> Iterator[Callable[[str], LoopThread]]:
    clients: list[LoopThread] = []

    def make(nick: str) -> LoopThread:
        client = LoopThread(salotto_server, nick)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_negotiates_ircv3_capabilities(pydle_client: Callable[[str], LoopThread]) -> None:
    client = pydle_client(NICK)
    client.wait_for("connect")
    caps = client.inbox.events()
    acked = {name for event in caps if event[:2] == ("cap", "ACK") for name in event[2].split()}
    naked = [event for event in caps if event[:2] == ("cap", "NAK")]
    assert not naked
    assert acked >= PYDLE_WANTS | {"server-time"}
    enabled = {name for name, on in client.client._capabilities.items() if on}
    assert enabled >= PYDLE_WANTS | {"server-time"}


def test_in_lobby_and_channel_messages_both_ways(
    pydle_client: Callable[[str], LoopThread], raw_peer: Callable[[str], RawClient]
) -> None:
    client = pydle_client(NICK)
    client.wait_for("join", LOBBY, NICK)
    # pydle handles each line in a task of its own. Its 001 handler, which sets its nickname, waits for a
    # WHOIS; once ISUPPORT says WHOX its JOIN handler no longer does, so the JOIN of the autojoin, in the
    # same burst, is handled first, as someone else's: pydle does not list #lobby among its channels
    # (a pydle race). It lists the channels it joins itself, and there its nicklist is checked below.
    peer = raw_peer(PEER)
    client.wait_for("join", LOBBY, PEER)

    client.run(client.client.message(LOBBY, "hello from pydle"))
    expect_from(peer, "PRIVMSG", NICK, p0=LOBBY, p1="hello from pydle")
    # echo-message is on, so pydle learns about its own message from the server, tagged.
    client.wait_for("channel", LOBBY, NICK, "hello from pydle")

    peer.send(f"PRIVMSG {LOBBY} :hello back, pydle")
    client.wait_for("channel", LOBBY, PEER, "hello back, pydle")
    raw = client.wait_for("raw-privmsg", f"{PEER}!~{PEER}@127.0.0.1", LOBBY, "hello back, pydle")
    assert SERVER_TIME.match(raw[-1].get("time", "")), raw

    # The peer joins after pydle, so pydle learns of it from an extended-join JOIN. (Had the peer been
    # there first, pydle's NAMES handling races its own JOIN handling and may miss it: a pydle quirk.)
    client.run(client.client.join("#pydle"))
    client.wait_for("join", "#pydle", NICK)
    peer.send("JOIN #pydle")
    client.wait_for("join", "#pydle", PEER)
    assert PEER in client.client.channels["#pydle"]["users"]


def test_private_messages_both_ways(
    pydle_client: Callable[[str], LoopThread], raw_peer: Callable[[str], RawClient]
) -> None:
    peer = raw_peer(PEER)
    client = pydle_client(NICK)
    expect_from(peer, "JOIN", NICK, p0=LOBBY)

    client.run(client.client.message(PEER, "psst, raw peer"))
    expect_from(peer, "PRIVMSG", NICK, p0=PEER, p1="psst, raw peer")

    peer.send(f"PRIVMSG {NICK} :psst yourself")
    client.wait_for("private", NICK, PEER, "psst yourself")


def test_joins_another_channel_and_talks_there(
    pydle_client: Callable[[str], LoopThread], raw_peer: Callable[[str], RawClient]
) -> None:
    peer = raw_peer(PEER)
    peer.send("JOIN #interop")
    peer.expect("JOIN", p0="#interop")
    client = pydle_client(NICK)
    client.wait_for("join", LOBBY, NICK)

    client.run(client.client.join("#interop"))
    client.wait_for("join", "#interop", NICK)
    expect_from(peer, "JOIN", NICK, p0="#interop")

    client.run(client.client.message("#interop", "over here"))
    expect_from(peer, "PRIVMSG", NICK, p0="#interop", p1="over here")
    peer.send("PRIVMSG #interop :got it")
    client.wait_for("channel", "#interop", PEER, "got it")


def test_whox_on_join_tells_pydle_who_is_logged_in(
    pydle_client: Callable[[str], LoopThread], raw_peer: Callable[[str], RawClient]
) -> None:
    # When pydle joins a channel it sends "WHO <channel> %tnurha,542" if ISUPPORT says WHOX (else a WHOIS
    # per nick), and takes each member's account from the 354 rows.
    peer = raw_peer(PEER)
    peer.send(f"REGISTER * * {PASSWORD}")
    peer.expect("REGISTER", p0="SUCCESS")
    stranger = raw_peer("stranger")
    for member in (peer, stranger):
        member.send("JOIN #whox")
        member.expect("JOIN", p0="#whox")
    client = pydle_client(NICK)
    client.wait_for("join", LOBBY, NICK)
    client.run(client.client.join("#whox"))
    rows = {}
    for nick in (PEER, "stranger", NICK):
        row = client.inbox.wait_for(lambda e, nick=nick: e[0] == "whox" and e[5:6] == (nick,), f"354 for {nick}")
        rows[nick] = row[2:]
    # <token> <user> <host> <nick> <account> :<realname>: the spec's order, whatever order pydle asked in
    assert rows[PEER] == ("542", f"~{PEER}", "127.0.0.1", PEER, PEER, f"{PEER} test")
    assert rows["stranger"][4] == "0"
    users = client.client.users
    assert users[PEER]["account"] == PEER and users[PEER]["identified"]
    assert users[PEER]["realname"] == f"{PEER} test"
    assert users["stranger"]["account"] is None and not users["stranger"]["identified"]


def test_monitor_tells_pydle_when_a_nick_comes_and_goes(
    pydle_client: Callable[[str], LoopThread], salotto_server: RunningServer
) -> None:
    client = pydle_client(NICK)
    client.wait_for("connect")
    assert client.run(client.client.monitor("Latecomer")) is True  # False: no MONITOR in ISUPPORT
    client.wait_for("offline", "Latecomer")

    late = salotto_server.client()
    late.register("latecomer")
    client.wait_for("online", "latecomer")
    assert client.client.users["latecomer"]["hostname"] == "127.0.0.1"  # from the 730's nick!user@host

    late.send("NICK elsewhere")
    late.expect("NICK")

    def offline_count() -> int:
        return sum(1 for event in client.inbox.events() if event == ("offline", "latecomer"))

    wait_until(lambda: offline_count() == 1, "731 for latecomer after its nick change",
               describe=lambda: repr(client.inbox.events()[-10:]))
    late.send("NICK latecomer")
    wait_until(lambda: sum(1 for e in client.inbox.events() if e == ("online", "latecomer")) == 2,
               "730 for latecomer again", describe=lambda: repr(client.inbox.events()[-10:]))
    late.send("QUIT :bye")
    wait_until(lambda: offline_count() == 2, "731 for latecomer after its quit",
               describe=lambda: repr(client.inbox.events()[-10:]))
    late.close()
