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
from tests.interop.conftest import LOBBY
from tests.interop.waiting import WAIT_S, Inbox, expect_from
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
    # The peer joins after pydle, so pydle learns of it from an extended-join JOIN. (Had the peer been
    # there first, pydle's NAMES handling races its own JOIN handling and may miss it: a pydle quirk.)
    peer = raw_peer(PEER)
    client.wait_for("join", LOBBY, PEER)
    assert PEER in client.client.channels[LOBBY]["users"]

    client.run(client.client.message(LOBBY, "hello from pydle"))
    expect_from(peer, "PRIVMSG", NICK, p0=LOBBY, p1="hello from pydle")
    # echo-message is on, so pydle learns about its own message from the server, tagged.
    client.wait_for("channel", LOBBY, NICK, "hello from pydle")

    peer.send(f"PRIVMSG {LOBBY} :hello back, pydle")
    client.wait_for("channel", LOBBY, PEER, "hello back, pydle")
    raw = client.wait_for("raw-privmsg", f"{PEER}!~{PEER}@127.0.0.1", LOBBY, "hello back, pydle")
    assert SERVER_TIME.match(raw[-1].get("time", "")), raw


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
