"""Receive flood control shared by every transport: a token bucket per connection, with fakelag."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from salotto.proto.framing import LINE_TOO_LONG, LineSplitter, LineTooLong
from salotto.server.client import Client
from salotto.server.state import Server

__all__ = ["ConfiguredLines", "Fakelag", "FakelagGate", "prepare_socket", "unmapped"]


def prepare_socket(transport: asyncio.BaseTransport) -> str:
    """Set TCP_NODELAY on a new connection's socket and return the peer's IP address.

    Small lines must not wait for Nagle's 40 ms: latency is what chat users feel. An IPv4 client of a
    dual-stack IPv6 socket shows as ``::ffff:a.b.c.d``: it is ``a.b.c.d`` here, so that its limits are
    its own (ip_key would put every such address in one IPv6 /64), and ``throttle_exempt``,
    ``trusted_proxies``, bans and the log see the address everyone else would.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer = transport.get_extra_info("peername")
    if not isinstance(peer, tuple):
        return "unix"
    ip: str = peer[0]
    return unmapped(ip)


def unmapped(ip: str) -> str:
    """``ip`` with an IPv4-mapped IPv6 address (``::ffff:192.0.2.7``) as the IPv4 address it stands for."""
    if ip[:7].lower() == "::ffff:" and "." in ip:
        return ip[7:]
    return ip


class Fakelag:
    """Hands a connection's lines to the server at the pace its token bucket allows.

    Lines over the budget wait (fakelag); more than ``flood_max_queued_lines`` waiting means the
    client floods and it is disconnected with "Excess Flood". The same rules for every transport.

    A mixin without state of its own: :class:`FakelagGate` holds the state for the transports that keep a
    gate beside them, and the plain-TCP connection holds it itself (salotto.transport.reactor), one
    object per connection less. The bucket (``flood_lines_per_s``, ``flood_burst_lines``) is read from
    the config on each line, so a REHASH applies to every connection; no queue exists until a line has
    to wait.
    """

    if not TYPE_CHECKING:  # the state is the subclass's slots, which mypy cannot see from here
        __slots__ = ()
    _server: Server
    _loop: asyncio.AbstractEventLoop
    _tat: float
    _held: deque[bytes | LineTooLong] | None
    _drain_handle: asyncio.TimerHandle | None
    stopped: bool  # set when the connection closes: nothing more reaches the server

    def _start_gate(self, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._loop = loop
        self._tat = 0.0  # long past: the bucket is full
        self._held = None
        self._drain_handle = None
        self.stopped = False

    def _delay(self, now: float) -> float:
        """Let one line through and return 0.0, or return the seconds until one may go.

        The token bucket (``flood_burst_lines`` at once, then ``flood_lines_per_s``) as one number, the
        generic cell rate algorithm's: ``_tat``, when the bucket would be full again if nothing more came
        (one float per connection where tokens and their time stamp took two)."""
        config = self._server.config
        interval = 1.0 / config.flood_lines_per_s
        tat = self._tat if self._tat > now else now
        wait = tat - now - (config.flood_burst_lines - 1) * interval
        if wait > 0.0:
            return wait
        self._tat = tat + interval
        return 0.0

    def push(self, client: Client, lines: Sequence[bytes | LineTooLong]) -> None:
        if self.stopped or not lines:
            return
        if self._held:
            self._hold(client, lines)
            return
        now = self._loop.time()
        for i, line in enumerate(lines):
            delay = self._delay(now)
            if delay > 0.0:
                self._hold(client, lines[i:])
                if not self.stopped:
                    self._drain_handle = self._loop.call_later(delay, self._drain, client)
                return
            self._deliver(client, line)
            if self.stopped:
                return

    def stop(self) -> None:
        self.stopped = True
        self._held = None
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None

    def _deliver(self, client: Client, line: bytes | LineTooLong) -> None:
        if line is LINE_TOO_LONG:
            self._server.line_too_long(client)
        else:
            self._server.handle_line(client, line)  # type: ignore[arg-type]

    def _hold(self, client: Client, lines: Sequence[bytes | LineTooLong]) -> None:
        held = self._held
        if held is None:
            held = self._held = deque()
        held.extend(lines)
        if len(held) > self._server.config.flood_max_queued_lines:
            self._held = None
            self._server.disconnect(client, "Excess Flood")

    def _drain(self, client: Client) -> None:
        self._drain_handle = None
        while self._held and not self.stopped:
            delay = self._delay(self._loop.time())
            if delay > 0.0:
                self._drain_handle = self._loop.call_later(delay, self._drain, client)
                return
            self._deliver(client, self._held.popleft())
        self._held = None  # all delivered: no queue while the client keeps to its pace


class FakelagGate(Fakelag):
    """A connection's :class:`Fakelag`, for the transports that keep it beside them (TLS, WebSocket)."""

    __slots__ = ("_drain_handle", "_held", "_loop", "_server", "_tat", "stopped")

    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        self._start_gate(server, loop)


class ConfiguredLines(LineSplitter):
    """A line reader whose limits are the server's config (``_server``, as Fakelag's), read at each use: a
    REHASH applies to every connection. For the transports that are their own reader."""

    if not TYPE_CHECKING:  # the state is the subclass's slots
        __slots__ = ()
    _server: Server

    @property
    def max_line_bytes(self) -> int:  # type: ignore[override]  # read-only here: the config's
        return self._server.config.max_line_bytes

    @property
    def max_tags_bytes(self) -> int:  # type: ignore[override]
        return self._server.config.max_tags_bytes
