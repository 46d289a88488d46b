"""Message history: each tick's messages are committed before that tick's output leaves the server.

Why the writes run on the loop thread: the promise is that nobody ever sees a message that a
``kill -9`` could lose. The transport calls :meth:`Server.commit_pending` before it writes to any
socket, so the first flush of a tick commits every message recorded in that tick, in one transaction,
before a byte of them is sent. Doing the same from a writer thread would mean holding every
connection's output behind a cross-thread round trip; measured, that loses more than it saves (the
writer thread waits for the GIL the busy loop holds, at every statement). Neither did an append-only
file written on the loop with SQLite fed from a thread every 50 ms pay, nor one row per pass instead
of one per message: on a machine whose cores are all busy, what counts is the CPU a commit takes
wherever it runs, and most of it is per transaction, not per message. A commit in WAL mode with
synchronous=NORMAL does not fsync; inside the server under the fanout benchmark (about 33 messages per
commit) one takes some 200 us of CPU: 30 to BEGIN, 90 for the INSERTs, 75 to COMMIT (the page
writes). Reads (CHATHISTORY, which may scan) run on a reader pool and come back as callbacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from salotto.config import Config
from salotto.storage.base import HistoryMessage, Storage
from salotto.storage.worker import Outcome

__all__ = ["History", "Reader"]

log = logging.getLogger("salotto.history")

T = TypeVar("T")

# Rows one retention step deletes; steps repeat on the following ticks until nothing is left, so
# the loop is never held for long (about 5 ms per step here).
PRUNE_STEP_ROWS = 500


class Reader(Protocol):
    def read(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None: ...


class History:
    __slots__ = ("_next_prune", "_pruning", "config", "failed_writes", "pending", "reader", "writer", "written")

    def __init__(self, config: Config, writer: Storage, reader: Reader, now: float) -> None:
        self.config = config
        self.writer = writer
        self.reader = reader
        self.pending: list[HistoryMessage] = []
        self.written = 0
        self.failed_writes = 0
        self._next_prune = now
        self._pruning = False

    def record(self, message: HistoryMessage) -> None:
        self.pending.append(message)

    def commit(self) -> None:
        """Store what this tick recorded, in one transaction."""
        batch = self.pending
        self.pending = []
        try:
            self.writer.append_messages(batch)
        except Exception as exc:  # StorageError, or the backend's own (sqlite3.Error: disk full...)
            # The messages are delivered anyway: refusing to chat because the disk is full would
            # lose more than it saves. The error is logged and counted for /metrics.
            self.failed_writes += len(batch)
            log.error("could not store %d messages in history: %s", len(batch), exc)
            return
        self.written += len(batch)

    def read(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        self.reader.read(fn, callback)

    def retention_step(self, now: float, wall: float) -> None:
        """Called every tick: run a bounded retention step when one is due."""
        config = self.config
        if not self._pruning:
            if now < self._next_prune:
                return
            self._next_prune = now + config.history_prune_interval_s
            self._pruning = True
        cutoff = wall - config.history_max_age_s if config.history_max_age_s > 0 else None
        max_per_target = config.history_max_per_target or None
        if cutoff is None and max_per_target is None:
            self._pruning = False
            return
        try:
            deleted = self.writer.prune_history(cutoff, max_per_target, max_rows=PRUNE_STEP_ROWS)
        except Exception as exc:
            log.error("history retention failed: %s", exc)
            deleted = 0
        if deleted < PRUNE_STEP_ROWS:
            self._pruning = False

    def close(self) -> None:
        if self.pending:
            self.commit()
