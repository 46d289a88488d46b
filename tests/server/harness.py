"""Drive a :class:`~salotto.server.state.Server` in memory: connections that record what they get.

The server logic is the thing under test; these connections stand in for the transport only, the
way h11's tests feed bytes without a socket. The clock is ours, so timers are tested without sleeping.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from salotto.config import load_config
from salotto.mail import send_code
from salotto.proto import Message, parse
from salotto.server.accounts import Accounts
from salotto.server.client import Client
from salotto.server.state import Server
from salotto.storage import Storage, open_storage
from salotto.storage.store import InlineReader, Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryConnection:
    transport_name = "memory"

    def __init__(self, ip: str) -> None:
        self.peer_ip = ip
        self.data = bytearray()
        self.outbox: list[bytes] = []
        self.closed: str | None = None

    def mark_pending(self) -> list[bytes]:
        """Unlike a transport, deliver at once: tests read what was written after each command."""
        return self.outbox

    def write(self, data: bytes) -> None:
        self.outbox.append(data)
        self.drain()

    def drain(self) -> None:
        if self.closed is None:
            self.data += b"".join(self.outbox)
        self.outbox.clear()

    def close(self, reason: str) -> None:
        self.drain()
        self.closed = reason


class User:
    """One connected client: send lines, read what came back."""

    def __init__(self, server: Server, ip: str, settle: Callable[[], None] = lambda: None) -> None:
        self.server = server
        self.settle = settle  # runs what the store answered meanwhile (a deferred store's harness)
        self.conn = MemoryConnection(ip)
        client = server.accept(self.conn)
        assert client is not None, "connection refused"
        self.client: Client = client
        self._read = 0

    def send(self, line: str) -> None:
        """Handle ``line``, then let the store answer what it asked (see :meth:`Harness.settle`)."""
        self.server.handle_line(self.client, line.encode())
        self.settle()

    def send_unsettled(self, line: str) -> None:
        """Handle ``line`` only: with a deferred store, its writes are still on their way when this returns."""
        self.server.handle_line(self.client, line.encode())

    def lines(self) -> list[str]:
        """Lines received since the last call (once the store answered what it was asked)."""
        self.settle()
        self.conn.drain()
        text = bytes(self.conn.data[self._read :]).decode("utf-8", "replace")
        self._read = len(self.conn.data)
        return [line for line in text.split("\r\n") if line]

    def messages(self) -> list[Message]:
        return [parse(line) for line in self.lines()]

    def commands(self) -> list[str]:
        return [m.command for m in self.messages()]

    def numerics(self) -> list[str]:
        return [c for c in self.commands() if c.isdigit()]


class Harness:
    def __init__(self, **overrides: Any) -> None:
        self.clock = Clock()
        self.wall = [1_700_000_000.0]
        config = load_config(None, overrides)
        self.server = Server(config, clock=self.clock, wallclock=lambda: self.wall[0])
        self._storer: ThreadPoolExecutor | None = None
        self._results: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.server.mailer = send_code

    def attach_store(self, data_dir: Path, *, deferred: bool = False) -> Storage:
        """Accounts, services and registered channels on a real SQLite file in ``data_dir``; password
        hashing runs inline (the server's InlineOffload).

        Without ``deferred`` the store runs every write at once, so replies arrive before ``send``
        returns. With it, as in the server: writes run on a storer thread and their results wait in a
        queue until :meth:`settle` (``User.lines`` calls it) runs them, as the event loop would, so a
        test can do things between a write and its answer."""
        store = open_storage("sqlite", data_dir)
        if deferred:
            self._storer = ThreadPoolExecutor(1, thread_name_prefix="harness-store")
            writer = Store(self.server.config, store, InlineReader(store), self.clock(), storer=self._storer,
                           call_soon=self._results.put)
        else:
            writer = Store(self.server.config, store, InlineReader(store), self.clock())
        self.server.attach_accounts(Accounts.load(store, writer, self.server.offload))
        return store

    def settle(self) -> None:
        """Run the store's answers, as the loop would, until the store has nothing left on its way."""
        storer = self._storer
        if storer is None:
            return
        while True:
            storer.submit(lambda: None).result()  # every write before it is done, its result queued
            if self._results.empty():
                return
            while not self._results.empty():
                self._results.get()()

    def attach_refusing_store(self, data_dir: Path) -> None:
        """Accounts on a read-only connection to the store in ``data_dir``: every write fails, as on a
        locked or full database, and the directory holds what the store held."""
        store = open_storage("sqlite", data_dir, readonly=True)
        writer = Store(self.server.config, store, InlineReader(store), self.clock())
        self.server.attach_accounts(Accounts.load(store, writer, self.server.offload))

    def connect(self, ip: str = "127.0.0.1") -> User:
        return User(self.server, ip, self.settle)

    def user(self, nick: str, *, caps: list[str] | None = None, ip: str = "127.0.0.1") -> User:
        """A registered user (autojoined as configured), its welcome burst already read."""
        user = self.connect(ip)
        if caps:
            user.send("CAP LS 302")
            user.send("CAP REQ :" + " ".join(caps))
        user.send(f"NICK {nick}")
        user.send(f"USER {nick.lower()} 0 * :{nick} Realname")
        if caps:
            user.send("CAP END")
        assert user.client.registered, user.lines()
        user.lines()
        return user
