"""The outbound half every transport shares: the per-pass outbox, the send queue limit, the flush hook.

A transport subclasses :class:`OutboxProtocol`, sets the attributes in its ``__init__`` and implements
``flush_now`` with :meth:`OutboxProtocol._take_output` (what this pass wrote, or None when there is
nothing or nobody to send it to) and :meth:`OutboxProtocol._check_sendq` after its write.
"""

from __future__ import annotations

import asyncio
import logging

from salotto.server.client import Client
from salotto.server.state import Server
from salotto.transport.flusher import Flusher
from salotto.transport.inbound import Fakelag

__all__ = ["IDLE", "OutboxProtocol"]

log = logging.getLogger("salotto.transport")


class _Idle(list[bytes]):
    """The outbox of every connection with nothing to send: always empty, so whoever writes asks the
    connection for a list first (Connection.mark_pending); appending to it is a bug, and says so."""

    __slots__ = ()

    def append(self, item: bytes) -> None:
        raise RuntimeError("append to an idle connection's outbox: call mark_pending() first")


IDLE = _Idle()


class OutboxProtocol(asyncio.Protocol):
    """A connection as the server sees it (:class:`~salotto.server.client.Connection`), minus flushing."""

    __slots__ = (
        "_closing", "_flusher", "_gate", "_lost_reason", "_max_sendq", "_transport", "client", "outbox", "peer_ip",
        "server",
    )  # fmt: skip
    server: Server
    client: Client | None
    peer_ip: str
    outbox: list[bytes]
    _flusher: Flusher
    _gate: Fakelag
    _max_sendq: int
    _transport: asyncio.Transport | None
    _closing: bool
    _lost_reason: str | None

    def write(self, data: bytes) -> None:
        if self._closing:
            return
        out = self.outbox
        if not out:
            out = self.mark_pending()
        # No byte counting here, on the path every recipient of every message takes (the fanout
        # appends to the outbox itself): the list holds references to bytes shared by all
        # recipients, and the send queue is checked once per pass, in flush_now.
        out.append(data)

    def mark_pending(self) -> list[bytes]:
        """A list for this pass's output (none is kept while idle: ``outbox`` is IDLE then)."""
        out = self.outbox = []
        self._flusher.add(self)  # type: ignore[arg-type]  # subclasses define flush_now
        return out

    def _take_output(self) -> bytes | None:
        """This pass's output, joined, the outbox IDLE again; None when
        there is nothing, or the peer is gone (what it did not get is dropped, not kept)."""
        out = self.outbox
        if not out:
            return None
        data = out[0] if len(out) == 1 else b"".join(out)
        self.outbox = IDLE
        transport = self._transport
        if transport is None or transport.is_closing() or self._closing:
            return None
        return data

    def _stop_input(self) -> None:
        """Nothing more this client sent reaches the server (a transport that is its own gate: stop())."""
        self._gate.stop()

    def _check_sendq(self, transport: asyncio.Transport, written: int) -> None:
        self.server.stats.bytes_out += written
        if transport.get_write_buffer_size() > self._max_sendq:
            self._sendq_exceeded()

    def _sendq_exceeded(self) -> None:
        """The client is not reading: drop it at once, nobody else waits for it."""
        self.outbox = IDLE
        self._closing = True
        self._stop_input()
        # The server hears of it in connection_lost, on a later loop pass: we may be in the middle
        # of a fanout over a channel this client is a member of.
        self._lost_reason = "SendQ exceeded"
        if self.client is not None:
            log.info("send queue of %s (%s) exceeded %d bytes", self.client.nick, self.peer_ip, self._max_sendq)
        else:
            log.info("send queue of an unregistered connection from %s exceeded %d bytes", self.peer_ip,
                     self._max_sendq)
        if self._transport is not None:
            self._transport.abort()
