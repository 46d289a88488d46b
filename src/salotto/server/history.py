"""Message history: each pass's messages are durable before that pass's output leaves the server.

The promise is that nobody ever sees a message that a ``kill -9`` could lose. The transport calls
:meth:`Server.commit_pending` before it writes to any socket, so the first flush of a pass makes every
message recorded in that pass durable before a byte of them is sent: one ``write()`` of the pass's
messages to the journal (:mod:`salotto.storage.journal`). Nothing waits for the database after that.
Once ``history_store_interval_s`` has passed (or ``history_store_max_messages`` wait), after a pass's
output has left, the journal's messages are handed in one batch to the storer, a thread with a writer
connection of its own, and further appends go to the second journal; the storer empties the first once
its batch is in the database. A read runs on another connection, so :meth:`History.read` waits until
everything recorded is stored; at startup, :meth:`History.recover` stores what a crash left in the
journals.

Why not one database transaction per pass, on the loop: under the fanout benchmark (about 33 messages
per pass) that cost the loop some 220 us of CPU a pass, most of it per transaction whatever its size:
the locks, a WAL frame (4 KiB, two ``pwrite()``) for every page touched, and the ``(target, time_ms)``
index, whose last leaf overflows almost every pass and is rebalanced with its two siblings. In batches
of a few hundred a message costs a third of that; a journal record costs the loop some 15 us a pass in
a quiet process. Why the storer may be a thread when a writer thread holding the output was measured
to lose: nothing waits for it, and most of its work (SQLite's) runs without the GIL; what it does hold
the GIL for, it mostly gets while the loop waits for input.
Reads (CHATHISTORY, which may scan) run on a reader pool and come back as callbacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
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


class Storer(Protocol):
    """Where the database work runs: a one-thread executor in the server, in order of submission."""

    def submit(self, fn: Callable[[], T], /) -> Future[T]: ...

    def shutdown(self, wait: bool = True) -> None: ...


class History:
    __slots__ = (
        "_inflight", "_next_prune", "_next_store", "_pruning", "_spare", "_storer", "config", "failed_writes",
        "journal", "pending", "reader", "unstored", "writer", "written",
    )  # fmt: skip

    def __init__(
        self,
        config: Config,
        writer: Storage,
        reader: Reader,
        now: float,
        journals: tuple[Journal, Journal] | None = None,
        storer: Storer | None = None,
    ) -> None:
        """Without ``journals``, every pass's messages go into the database at once, one transaction each.
        With them, appends go to one journal while the other's messages are being stored. ``storer`` runs
        every use of ``writer``, which is then that thread's alone; without it, they run here."""
        self.config = config
        self.writer = writer
        self.reader = reader
        self.journal: Journal | None = None  # where this pass's messages are appended
        self._spare: Journal | None = None  # empty, or the journal of the batch being stored
        if journals is not None:
            self.journal, self._spare = journals
        self._storer = storer
        self._inflight: Future[None] | None = None  # the batch being stored
        self.pending: list[HistoryMessage] = []  # recorded in this pass
        self.unstored: list[HistoryMessage] = []  # in the journal, not yet handed to the storer
        self.written = 0
        self.failed_writes = 0
        self._next_prune = now
        self._next_store = now
        self._pruning = False

    def record(self, message: HistoryMessage) -> None:
        self.pending.append(message)

    def commit(self) -> None:
        """Make what this pass recorded durable: one journal record (or one transaction without journals)."""
        batch = self.pending
        self.pending = []
        journal = self.journal
        if journal is None:
            self._run(partial(self._store, batch)).result()
            return
        self.unstored += batch
        try:
            journal.append(batch)
        except JournalError as exc:
            log.error("history journal: %s; storing in the database at once", exc)
            self.store()

    def store_if_due(self, now: float) -> None:
        """Called after each pass's output has left, and by the timer tick: hand what waits in the journal
        to the storer, unless the last batch is still being stored (then on a later pass)."""
        waiting = len(self.unstored)
        if not waiting:
            return
        full = waiting >= self.config.history_store_max_messages
        if not full and self._inflight is not None and not self._inflight.done():
            return
        if full or now >= self._next_store:  # full: wait for the batch before if need be
            self._next_store = now + self.config.history_store_interval_s
            self._submit_store()

    def store(self) -> None:
        """Put every recorded message into the database and wait until it is there (before a read, on
        a journal error, at shutdown)."""
        if self.pending or self.unstored:
            self._submit_store()
        if self._inflight is not None:
            self._inflight.result()

    def _submit_store(self) -> None:
        batch = self.unstored + self.pending if self.pending else self.unstored
        self.unstored = []
        self.pending = []
        journal = self.journal
        if journal is not None:
            # The spare journal is empty once the batch before is stored: appends go on there.
            if self._inflight is not None:
                self._inflight.result()
            self.journal, self._spare = self._spare, journal
        self._inflight = self._run(partial(self._store_and_clear, batch, journal))

    def _store_and_clear(self, batch: list[HistoryMessage], journal: Journal | None) -> None:
        """On the storer: store ``batch``, then empty the journal that holds it (and nothing else)."""
        self._store(batch)
        if journal is not None and journal.size:
            # Also when the store failed: those messages are counted in failed_writes, like the
            # messages of a failed transaction without a journal, rather than retried for ever.
            try:
                journal.clear()
            except JournalError as exc:
                log.error("history journal: %s", exc)

    def _store(self, batch: list[HistoryMessage]) -> None:
        if not batch:
            return
        try:
            self.writer.append_messages(batch)
        except Exception as exc:  # StorageError, or the backend's own (sqlite3.Error: disk full...)
            # The messages are delivered anyway: refusing to chat because the disk is full would
            # lose more than it saves. The error is logged and counted for /metrics.
            self.failed_writes += len(batch)
            log.error("could not store %d messages in history: %s", len(batch), exc)
            return
        self.written += len(batch)

    def _run(self, fn: Callable[[], T]) -> Future[T]:
        if self._storer is not None:
            return self._storer.submit(fn)
        future: Future[T] = Future()
        try:
            future.set_result(fn())
        except Exception as exc:
            future.set_exception(exc)
        return future

    def recover(self) -> int:
        """Store what the journals hold from a run that ended without storing it (a crash); returns how
        many messages that was. Those stored before the crash are left out (they may be both)."""
        journals = [j for j in (self._spare, self.journal) if j is not None and j.size]
        if not journals:
            return 0

        def recover() -> int:
            writer = self.writer
            messages = [m for j in journals for m in j.read() if writer.get_message(m.msgid) is None]
            self._store(messages)
            for journal in journals:
                journal.clear()
            return len(messages)

        return self._run(recover).result()

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
            deleted = self._run(partial(self.writer.prune_history, cutoff, max_per_target, PRUNE_STEP_ROWS)).result()
        except Exception as exc:
            log.error("history retention failed: %s", exc)
            deleted = 0
        if deleted < PRUNE_STEP_ROWS:
            self._pruning = False

    def close(self) -> None:
        """Store what waits, stop the storer and close the journals (not the writer: the caller's)."""
        self.store()
        if self._storer is not None:
            self._storer.shutdown()
        for journal in (self.journal, self._spare):
            if journal is not None:
                journal.close()
