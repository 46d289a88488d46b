"""IRC over a byte stream (plain TCP or TLS), as an asyncio Protocol.

``data_received`` feeds the line reader and hands lines to the server; what the server writes is
coalesced into one ``transport.write`` per loop pass. Receive flood control (a token bucket with
fakelag) and the send queue limit are enforced here.
"""

from __future__ import annotations

import asyncio

from salotto.proto.framing import LineReader
from salotto.server.client import Client
from salotto.server.state import Server
from salotto.transport.flusher import Flusher
from salotto.transport.inbound import FakelagGate, prepare_socket
from salotto.transport.outbound import OutboxProtocol

__all__ = ["CLOSE_GRACE_S", "LISTEN_BACKLOG", "IrcStreamProtocol"]


# Pending connections the kernel queues per listener; a connect storm of thousands needs more
# than Python's default of 100.
LISTEN_BACKLOG = 4096
# Seconds a closing connection has to take its last lines (the ERROR) before it is cut.
CLOSE_GRACE_S = 5.0


class IrcStreamProtocol(OutboxProtocol):
    """One client connection over TCP or TLS."""

    __slots__ = ("_loop", "_reader", "transport_name")  # the rest are OutboxProtocol's

    def __init__(self, server: Server, transport_name: str, flusher: Flusher) -> None:
        self.server = server
        self._flusher = flusher
        self.transport_name = transport_name
        self.peer_ip = "?"
        self.client: Client | None = None
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        config = server.config
        self._reader = LineReader(config.max_line_bytes, config.max_tags_bytes)
        # Read once per connection: write() is on the fanout path. A REHASH applies to new connections.
        self._max_sendq = config.max_sendq_bytes
        self._gate = FakelagGate(server, self._loop)
        self.outbox: list[bytes] = []
        self._closing = False
        self._lost_reason: str | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but offer the same methods.
        self._transport = transport  # type: ignore[assignment]
        self.peer_ip = prepare_socket(transport)
        self.client = self.server.accept(self)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None or self._closing:
            return
        self.server.stats.bytes_in += len(data)
        lines = self._reader.feed(data)
        if lines:
            self._gate.push(client, lines)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._gate.stop()
        if self.client is not None:
            if self._lost_reason is not None:
                reason = self._lost_reason
            elif exc is None:
                reason = "Connection closed"
            else:
                reason = f"Connection error: {_describe(exc)}"
            self.server.connection_lost(self.client, reason)

    # -- salotto.server.client.Connection ---------------------------------------------------------

    def flush_now(self) -> None:
        """Hand what this loop pass wrote to the transport, in one write (the Flusher calls it)."""
        data = self._take_output()
        if data is not None and self._transport is not None:
            self._transport.write(data)
            self._check_sendq(self._transport, len(data))

    def close(self, reason: str) -> None:
        if self._closing:
            return
        self.server.commit_pending()
        self.flush_now()
        self._closing = True
        self._gate.stop()
        if self._transport is not None:
            self._transport.close()
            # close() waits for the peer to take what is queued; a peer that never reads would
            # keep the socket open for ever.
            self._loop.call_later(CLOSE_GRACE_S, self._transport.abort)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
