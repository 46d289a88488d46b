"""Message history: each pass's messages are durable before that pass's output leaves the server.

The promise is that nobody ever sees a message that a ``kill -9`` could lose. The transport calls
:meth:`Server.commit_pending` before it writes to any socket, so the first flush of a pass makes every
message recorded in that pass durable before a byte of them is sent: one ``write()`` of the pass's
messages to the journal (:mod:`salotto.storage.journal`). They go into the database in larger batches
afterwards, once ``history_store_interval_s`` has passed (or ``history_store_max_messages`` wait), after
the pass's output has left, and before any read: a read runs on another connection, so
:meth:`History.read` stores everything first. At startup, :meth:`History.recover` stores what a crash
left in the journal.

Why not one database transaction per pass: measured under the fanout benchmark (about 33 messages per
pass), a transaction cost the loop thread some 220 us of CPU, against about 80 us for the same messages
in a batch of a few hundred plus 15 us for the journal record. Most of a small transaction's cost does
not depend on its size: the locks, a WAL frame (4 KiB, two ``pwrite()``) for every page it touches,
and the ``(target, time_ms)`` index, whose last leaf overflows almost every pass and is rebalanced with
its two siblings (three leaves and their parent rewritten). Neither did a writer thread pay (it waits
for the GIL the busy loop holds, and every connection's output waits for it), nor SQLite fed from a
thread: on a machine whose cores are all busy, what counts is the CPU the work takes wherever it runs.
Reads (CHATHISTORY, which may scan) run on a reader pool and come back as callbacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from salotto.config import Config
from salotto.storage.base import HistoryMessage, Storage
from salotto.storage.journal import Journal, JournalError
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
    __slots__ = (
        "_next_prune", "_next_store", "_pruning", "config", "failed_writes", "journal", "pending", "reader",
        "unstored", "writer", "written",
    )  # fmt: skip

    def __init__(
        self, config: Config, writer: Storage, reader: Reader, now: float, journal: Journal | None = None
    ) -> None:
        """``journal`` None stores every pass's messages in the database at once (one transaction each)."""
        self.config = config
        self.writer = writer
        self.reader = reader
        self.journal = journal
        self.pending: list[HistoryMessage] = []  # recorded in this pass
        self.unstored: list[HistoryMessage] = []  # in the journal, not yet in the database
        self.written = 0
        self.failed_writes = 0
        self._next_prune = now
        self._next_store = now
        self._pruning = False

    def record(self, message: HistoryMessage) -> None:
        self.pending.append(message)

    def commit(self) -> None:
        """Make what this pass recorded durable: one journal record (or one transaction without a journal)."""
        batch = self.pending
        self.pending = []
        journal = self.journal
        if journal is None:
            self._store(batch)
            return
        self.unstored += batch
        try:
            journal.append(batch)
        except JournalError as exc:
            log.error("history journal: %s; storing in the database at once", exc)
            self.store()

    def store_if_due(self, now: float) -> None:
        """Called after each pass's output has left, and by the timer tick."""
        waiting = len(self.unstored)
        if waiting and (now >= self._next_store or waiting >= self.config.history_store_max_messages):
            self._next_store = now + self.config.history_store_interval_s
            self.store()

    def store(self) -> None:
        """Put every recorded message into the database, in one transaction, and empty the journal."""
        batch = self.unstored + self.pending if self.pending else self.unstored
        self.unstored = []
        self.pending = []
        if batch:
            self._store(batch)
        if self.journal is not None and self.journal.size:
            # Also when the store failed: those messages are counted in failed_writes, like the
            # messages of a failed transaction without a journal, rather than retried for ever.
            try:
                self.journal.clear()
            except JournalError as exc:
                log.error("history journal: %s", exc)

    def _store(self, batch: list[HistoryMessage]) -> None:
        try:
            self.writer.append_messages(batch)
        except Exception as exc:  # StorageError, or the backend's own (sqlite3.Error: disk full...)
            # The messages are delivered anyway: refusing to chat because the disk is full would
            # lose more than it saves. The error is logged and counted for /metrics.
            self.failed_writes += len(batch)
            log.error("could not store %d messages in history: %s", len(batch), exc)
            return
        self.written += len(batch)

    def recover(self) -> int:
        """Store what the journal holds from a run that ended without storing it (a crash); returns how
        many messages that was. Those stored before the crash are left out (they may be both)."""
        journal = self.journal
        if journal is None or not journal.size:
            return 0
        writer = self.writer
        messages = [m for m in journal.read() if writer.get_message(m.msgid) is None]
        if messages:
            self._store(messages)
        journal.clear()
        return len(messages)

    def read(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        """Run ``fn`` on a reader connection; it sees every message recorded so far."""
        self.store()
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
        self.store()
        if self.journal is not None:
            self.journal.close()
