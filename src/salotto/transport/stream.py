"""IRC over a byte stream (plain TCP or TLS), as an asyncio Protocol.

``data_received`` feeds the line reader and hands lines to the server; what the server writes is
coalesced into one ``transport.write`` per loop pass. Receive flood control (a token bucket with
fakelag) and the send queue limit are enforced here.

A ``proxy_listen`` port starts each connection with :class:`ProxiedStreamProtocol` instead: it reads the
PROXY protocol header a trusted proxy writes first, then hands the transport to an
:class:`IrcStreamProtocol` for the client the header names. Ordinary listeners never see that step.
"""

from __future__ import annotations

import asyncio
import logging

from salotto.proto.framing import LineReader
from salotto.server.client import Client
from salotto.server.state import Server
from salotto.transport.flusher import Flusher
from salotto.transport.forwarded import is_trusted
from salotto.transport.inbound import FakelagGate, prepare_socket
from salotto.transport.outbound import IDLE, OutboxProtocol
from salotto.transport.proxy_protocol import ProxyHeaderError, ProxyHeaderParser

__all__ = ["CLOSE_GRACE_S", "LISTEN_BACKLOG", "PROXY_HEADER_TIMEOUT_S", "IrcStreamProtocol", "ProxiedStreamProtocol"]

log = logging.getLogger("salotto.transport")


# Pending connections the kernel queues per listener; a connect storm of thousands needs more
# than Python's default of 100.
LISTEN_BACKLOG = 4096
# Seconds a closing connection has to take its last lines (the ERROR) before it is cut.
CLOSE_GRACE_S = 5.0
# A proxy writes its PROXY header at once on connecting; a connection without one by then is closed.
PROXY_HEADER_TIMEOUT_S = 5.0


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
        self.outbox: list[bytes] = IDLE  # a list only while this pass has output (mark_pending)
        self._closing = False
        self._lost_reason: str | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but offer the same methods.
        self.start(transport, prepare_socket(transport))  # type: ignore[arg-type]

    def start(self, transport: asyncio.Transport, peer_ip: str) -> None:
        """Serve ``transport`` as a client from ``peer_ip`` (a proxied connection, once its header is read)."""
        self._transport = transport
        self.peer_ip = peer_ip
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


class ProxiedStreamProtocol(asyncio.Protocol):
    """A connection to a ``proxy_listen`` port, until its PROXY header is read.

    Only a peer in ``trusted_proxies`` may send one; anyone else is closed at once, as is a header that
    is not valid or not complete within :data:`PROXY_HEADER_TIMEOUT_S`. Then an :class:`IrcStreamProtocol`
    for the client the header names takes the transport over (``set_protocol``), with the bytes that
    followed the header, and the server accepts the client: from there on the connection costs what
    a direct one does.
    """

    __slots__ = ("_done", "_flusher", "_loop", "_parser", "_server", "_socket_ip", "_timer", "_transport")

    def __init__(self, server: Server, flusher: Flusher) -> None:
        self._server = server
        self._flusher = flusher
        self._loop = asyncio.get_running_loop()
        self._parser = ProxyHeaderParser()
        self._socket_ip = "?"
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._done = False  # the header was read (another protocol has the transport) or we closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._socket_ip = prepare_socket(transport)
        if transport.get_extra_info("peername") is None:
            # Gone already (reset before we got here: HAProxy's health checks close that way).
            self._done = True
            log.debug("connection to a proxy_listen port closed before it could be read")
            transport.close()
            return
        if not is_trusted(self._socket_ip, self._server.trusted_proxies):
            self._refuse("not in trusted_proxies", "This port takes connections from the server's proxy only")
            return
        self._timer = self._loop.call_later(PROXY_HEADER_TIMEOUT_S, self._timed_out)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        try:
            header = self._parser.feed(data)
        except ProxyHeaderError as exc:
            self._refuse(f"bad PROXY header: {exc}", "Bad PROXY protocol header")
            return
        if header is None:
            return
        self._done = True
        self._cancel_timer()
        client_ip = header.source or self._socket_ip
        log.debug("PROXY v%d header from %s: client %s", header.version, self._socket_ip, client_ip)
        transport = self._transport
        assert transport is not None
        protocol = IrcStreamProtocol(self._server, "tcp", self._flusher)
        transport.set_protocol(protocol)
        protocol.start(transport, client_ip)
        if header.rest:
            protocol.data_received(header.rest)

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if not self._done:
            self._done = True
            # A proxy's plain TCP health check connects and closes: not worth more than debug.
            log.debug("connection from %s closed before its PROXY header", self._socket_ip)

    def _timed_out(self) -> None:
        self._timer = None
        self._refuse(f"no complete PROXY header within {PROXY_HEADER_TIMEOUT_S:g} s", "PROXY header timeout")

    def _refuse(self, why: str, told: str) -> None:
        self._done = True
        self._cancel_timer()
        self._server.stats.connections_refused += 1
        log.info("refused connection from %s on a proxy_listen port: %s", self._socket_ip, why)
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(f"ERROR :Closing link: {self._socket_ip} ({told})\r\n".encode())
            transport.close()
            self._loop.call_later(CLOSE_GRACE_S, transport.abort)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _describe(exc: Exception) -> str:
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
