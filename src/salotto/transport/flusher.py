"""One flush per loop pass for every connection written to: coalesced writes, durable history first.

A fanout writes to hundreds of connections; each one only appends to its buffer and, the first time
in a pass, registers here. One callback per pass then makes the pass's messages durable in history (so
nothing leaves that a crash could lose), hands each buffer to its transport in one write, and lets
history store its journal in the database when that is due.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from salotto.server.state import Server

__all__ = ["Flushable", "Flusher"]

log = logging.getLogger("salotto.transport")


class Flushable(Protocol):
    def flush_now(self) -> None: ...


class Flusher:
    __slots__ = ("_dirty", "_last_commit", "_loop", "_scheduled", "_server")

    def __init__(self, server: Server, loop: asyncio.AbstractEventLoop) -> None:
        self._server = server
        self._loop = loop
        self._dirty: list[Flushable] = []
        self._scheduled = False
        self._last_commit = 0.0

    def add(self, connection: Flushable) -> None:
        """``connection`` has bytes to send; flush it at the end of this loop pass."""
        self._dirty.append(connection)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.run)

    def run(self) -> None:
        server = self._server
        if server.history is not None and server.history.pending:
            # Group commit: passes that follow each other closely share one journal write (a
            # syscall, whatever its size; see salotto.storage.store); output waits at most
            # history_commit_interval_s.
            now = self._loop.time()
            due = self._last_commit + server.config.history_commit_interval_s
            if now < due:
                self._loop.call_at(due, self.run)
                return
            self._last_commit = now
            server.commit_pending()  # nothing leaves before it is durable
        self._scheduled = False
        dirty = self._dirty
        self._dirty = []
        for connection in dirty:
            try:
                connection.flush_now()
            except Exception:  # our bug: log it, and let every other connection still get its output
                log.exception("internal error flushing a connection")
        if server.history is not None:
            # Into the database in batches, once the output has left: not on the way of any message.
            server.history.store_if_due(self._loop.time())
