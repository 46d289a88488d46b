"""One benchmark IRC connection: register, join, then count or time what arrives.

An ``asyncio.Protocol`` rather than streams: the receive path is the generator's hot loop, so it works on
whole chunks (``bytes.count`` over a chunk for plain receivers) and parses lines only where it must
(latency probes, the witness that paces senders, PING, numerics during setup).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic_ns
from typing import cast

from bench.stats import LatencyHistogram

__all__ = ["BenchClient", "ClientError", "WorkerStats", "open_client"]

_PRIVMSG = b" PRIVMSG "
_RPL_WELCOME = b"001"
_RPL_ENDOFNAMES = b"366"
_NICK_ERRORS = (b"432", b"433", b"436")
_DRAIN_TOKEN = b"benchdrain"  # in a PING, so that its PONG is known (nicks and channels never contain it)
_JOIN_ERRORS = (b"403", b"405", b"471", b"473", b"474", b"475")


class ClientError(Exception):
    """The server refused or dropped a benchmark connection (nick in use, ERROR, connection closed)."""


@dataclass
class WorkerStats:
    """Counters shared by every connection of one worker process (one event loop, so no locking)."""

    delivered: int = 0
    last_delivery_ns: int = 0
    disconnected: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    received_bytes: int = 0  # counted in join mode only (the crowd's join phase)
    received_lines: int = 0

    def reset(self) -> None:
        self.delivered = 0
        self.last_delivery_ns = 0
        self.latency = LatencyHistogram()


# Called by the witness connection with (sender index, sequence number) of each channel message it sees.
AckCallback = Callable[[int, int], None]
# Called by a direct-message connection with the body of each private message it receives.
BodyCallback = Callable[["BenchClient", bytes], None]


class BenchClient(asyncio.Protocol):
    """A connection whose receive handler the worker switches between phases (setup, count, probe...)."""

    def __init__(self, nick: str, stats: WorkerStats) -> None:
        self.nick = nick
        self.stats = stats
        loop = asyncio.get_running_loop()
        self.registered: asyncio.Future[None] = loop.create_future()
        self.joined: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] | None = None  # see drain()
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.on_ack: AckCallback | None = None
        self.on_body: BodyCallback | None = None
        self._tail = b""
        self._handle: Callable[[bytes], None] = self._handle_setup

    # -- asyncio.Protocol ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass it

    def data_received(self, data: bytes) -> None:
        buf = self._tail + data if self._tail else data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            self._tail = buf
            return
        self._tail = buf[cut:]
        self._handle(buf[:cut])

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.stats.disconnected += 1
        self._fail(ClientError(f"{self.nick}: connection closed ({exc or 'by the server'})"))

    def _fail(self, error: ClientError) -> None:
        for future in (self.registered, self.joined, self.drained):
            if future is None:
                continue
            if not future.done():
                future.set_exception(error)
                future.exception()  # mark retrieved: nobody may be waiting on it any more

    # -- commands -------------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def register(self) -> None:
        nick = self.nick.encode()
        self.send(b"NICK %s\r\nUSER %s 0 * :%s\r\n" % (nick, nick, nick))

    def join(self, channel: str) -> None:
        self.send(b"JOIN %s\r\n" % channel.encode())

    def drain(self) -> asyncio.Future[None]:
        """Send a PING whose PONG comes after everything the server queued for this client before it."""
        self.drained = asyncio.get_running_loop().create_future()
        self.send(b"PING :%s\r\n" % _DRAIN_TOKEN)
        return self.drained

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    # -- receive handlers -----------------------------------------------------------------------------------

    def count_mode(self) -> None:
        """Count channel messages per chunk without parsing them (the cheap path for most receivers)."""
        self._handle = self._handle_count

    def probe_mode(self) -> None:
        """Parse each channel message for its timestamp and, for the witness, its sender and sequence."""
        self._handle = self._handle_probe

    def join_mode(self) -> None:
        """Count bytes and lines; parse lines only until this client's own JOIN is answered (366).

        For a crowd joining one channel, where a server that shows every JOIN to every member sends
        N²/2 lines in all: most chunks are only counted and searched for PING and ERROR.
        """
        self._handle = self._handle_join

    def direct_mode(self) -> None:
        """Hand the body of each private message to ``on_body`` (request/response pairs)."""
        self._handle = self._handle_direct

    def _handle_setup(self, chunk: bytes) -> None:
        for raw in chunk.split(b"\n"):
            line = raw.rstrip(b"\r")
            if line:
                self._control_line(line)

    def _control_line(self, line: bytes) -> None:
        rest = line.partition(b" ")[2] if line[:1] == b":" else line
        command, _, params = rest.partition(b" ")
        if command == b"PING":
            self.send(b"PONG " + params + b"\r\n")
        elif command == _RPL_WELCOME:
            if not self.registered.done():
                self.registered.set_result(None)
        elif command == _RPL_ENDOFNAMES:
            if not self.joined.done():
                self.joined.set_result(None)
        elif command in _NICK_ERRORS and not self.registered.done():
            self.registered.set_exception(ClientError(f"{self.nick}: {line.decode(errors='replace')}"))
        elif command in _JOIN_ERRORS and not self.joined.done():
            self.joined.set_exception(ClientError(f"{self.nick}: {line.decode(errors='replace')}"))
        elif command == b"ERROR":
            self._fail(ClientError(f"{self.nick}: {line.decode(errors='replace')}"))
        elif command == b"PONG" and _DRAIN_TOKEN in params and self.drained and not self.drained.done():
            self.drained.set_result(None)

    def _control_lines(self, chunk: bytes) -> None:
        """Answer PING (and notice ERROR) inside a chunk that is otherwise channel traffic."""
        for raw in chunk.split(b"\n"):
            if raw.startswith((b"PING", b"ERROR")):
                self._control_line(raw.rstrip(b"\r"))

    def _handle_count(self, chunk: bytes) -> None:
        count = chunk.count(_PRIVMSG)
        if count:
            stats = self.stats
            stats.delivered += count
            stats.last_delivery_ns = monotonic_ns()
        if b"PING" in chunk or b"ERROR" in chunk:
            self._control_lines(chunk)

    def _handle_probe(self, chunk: bytes) -> None:
        now = monotonic_ns()
        stats = self.stats
        add_latency = stats.latency.add
        on_ack = self.on_ack
        for line in chunk.split(b"\n"):
            at = line.find(_PRIVMSG)
            if at < 0:
                if line.startswith((b"PING", b"ERROR")):
                    self._control_line(line.rstrip(b"\r"))
                continue
            body = line[line.index(b" :", at) + 2 :]
            sender, seq, sent_ns = body.split(b" ", 3)[:3]
            add_latency((now - int(sent_ns)) // 1000)
            stats.delivered += 1
            if on_ack is not None:
                on_ack(int(sender), int(seq))
        stats.last_delivery_ns = now

    def _handle_join(self, chunk: bytes) -> None:
        stats = self.stats
        stats.received_bytes += len(chunk)
        stats.received_lines += chunk.count(b"\n")
        if not self.joined.done() or _DRAIN_TOKEN in chunk:
            self._handle_setup(chunk)
        elif b"PING" in chunk or b"ERROR" in chunk:
            self._control_lines(chunk)

    def _handle_direct(self, chunk: bytes) -> None:
        on_body = self.on_body
        for line in chunk.split(b"\n"):
            at = line.find(_PRIVMSG)
            if at < 0:
                if line.startswith((b"PING", b"ERROR")):
                    self._control_line(line.rstrip(b"\r"))
                continue
            if on_body is not None:
                on_body(self, line[line.index(b" :", at) + 2 :].rstrip(b"\r"))


async def open_client(
    host: str, port: int, nick: str, stats: WorkerStats, source_addr: str | None, timeout_s: float
) -> BenchClient:
    """Connect, register and wait for 001 (RPL_WELCOME).

    Raises:
        ClientError: the server refused the nick or closed the connection.
        TimeoutError: no 001 within ``timeout_s``.
    """
    loop = asyncio.get_running_loop()
    local_addr = (source_addr, 0) if source_addr else None
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: BenchClient(nick, stats), host, port, local_addr=local_addr), timeout_s
    )
    client.register()
    try:
        await asyncio.wait_for(asyncio.shield(client.registered), timeout_s)
    except BaseException:
        client.close()
        raise
    return client
