"""The store as the server sees it: one writer, its journals, its readers; nothing here blocks the loop.

:func:`open_store` opens a backend (:mod:`salotto.storage`) and returns a :class:`Store`, the one object
the server talks to. The store has one writer connection, owned by a thread of its own (the storer),
which runs every write in the order it was handed over: message batches, retention steps, and the
account and channel writes of :meth:`Store.write`. Reads run on a pool of read-only connections
(:class:`~salotto.storage.readers.ReadPool`). Every result comes back to the loop as an
:class:`~salotto.storage.outcome.Outcome` through ``call_soon`` (``loop.call_soon_threadsafe``): with a
networked database each call is a round trip, and none of them may stall every client.

History: each pass's messages are durable before that pass's output leaves the server. The promise is
that nobody ever sees a message that a ``kill -9`` could lose. The transport calls
:meth:`Server.commit_pending` before it writes to any socket, so the first flush of a pass makes every
message recorded in that pass durable before a byte of them is sent: one ``write()`` of the pass's
messages to the journal (:mod:`salotto.storage.journal`). The loop does not wait for the database
after that. Once ``history_store_interval_s`` has passed (or ``history_store_max_messages`` wait), after
a pass's output has left, the journal's messages are handed in one batch to the storer, and further
appends go to the second journal; the storer empties the first once its batch is in the database. For
messages, the loop waits only to hand over a batch while the one before is still being stored (the
journals take turns), which a full journal or a read may ask for. Reads and retention steps are jobs of
the storer too, after the batches before them: a read (on a reader connection) sees every message
recorded before it. At startup, :meth:`Store.recover` stores what a crash left in the journals.

Why not one database transaction per pass, on the loop: under the fanout benchmark (about 33 messages
per pass) that cost the loop some 220 us of CPU a pass, most of it per transaction whatever its size:
the locks, a WAL frame (4 KiB, two ``pwrite()``) for every page touched, and the ``(target, time_ms)``
index, whose last leaf overflows almost every pass and is rebalanced with its two siblings. In batches
of a few hundred a message costs a third of that; a journal record costs the loop some 15 us a pass in
a quiet process. Why the storer may be a thread when a writer thread holding the output was measured
to lose: nothing waits for it, and most of its work (the database's) runs without the GIL; what it does
hold the GIL for, it mostly gets while the loop waits for input.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from salotto.storage.base import AlreadyExists, HistoryMessage, Storage, StorageError
from salotto.storage.journal import JOURNAL_FILENAMES, Journal, JournalError
from salotto.storage.outcome import Outcome
from salotto.storage.readers import ReadPool

if TYPE_CHECKING:
    from salotto.config import Config

__all__ = ["InlineReader", "Reader", "Store", "open_store"]

log = logging.getLogger("salotto.history")

T = TypeVar("T")

# Rows one retention step deletes; steps repeat on the following ticks until nothing is left, so
# the loop is never held for long (about 5 ms per step here).
PRUNE_STEP_ROWS = 500
# How often a batch the database refused (locked, full, unreachable) is offered again, for as long as
# history_store_retry_s allows: not every pass, which would hammer a database that is coming back.
STORE_RETRY_INTERVAL_S = 1.0


class Reader(Protocol):
    def read(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None: ...


class InlineReader:
    """Reads on one connection, at once, on the caller's thread: for tests and tools without a loop."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def read(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        callback(Outcome.of(fn, self.storage))


class Storer(Protocol):
    """Where the database work runs: a one-thread executor in the server, in order of submission."""

    def submit(self, fn: Callable[[], T], /) -> Future[T]: ...

    def shutdown(self, wait: bool = True) -> None: ...


class Store:
    __slots__ = (
        "_call_soon", "_closers", "_failing_since", "_given_up", "_held_reads", "_inflight", "_left_out", "_next_prune",
        "_next_store", "_now", "_prune", "_pruning", "_spare", "_storer", "config", "journal", "on_commit",
        "pending", "reader", "record", "unstored", "writer", "written",
    )  # fmt: skip

    def __init__(
        self,
        config: Config,
        writer: Storage,
        reader: Reader,
        now: float,
        journals: tuple[Journal, Journal] | None = None,
        storer: Storer | None = None,
        call_soon: Callable[[Callable[[], None]], Any] | None = None,
    ) -> None:
        """Without ``journals``, every pass's messages go into the database at once, one transaction each.
        With them, appends go to one journal while the other's messages are being stored. ``storer`` runs
        every use of ``writer``, which is then that thread's alone, and ``call_soon`` brings the results
        of :meth:`write` back to the loop; without a storer, everything runs here, at once."""
        self.config = config
        self.writer = writer
        self.reader = reader
        self._call_soon = call_soon
        self._closers: list[Callable[[], None]] = []  # run by close(), after the storer stopped
        self.journal: Journal | None = None  # where this pass's messages are appended
        self._spare: Journal | None = None  # empty, or the journal of the batch being stored
        if journals is not None:
            self.journal, self._spare = journals
        self._storer = storer
        self._inflight: Future[list[HistoryMessage]] | None = None  # the batch being stored
        # Reads (and writes after history) that came while a batch was in flight and more messages
        # waited: they go once it is stored.
        self._held_reads: list[Callable[[], None]] | None = None
        self._failing_since: float | None = None  # when the database first refused the messages waiting
        self._now = now  # the clock of the last store_if_due
        self.pending: list[HistoryMessage] = []  # recorded in this pass
        # record(message): a message relayed in this pass, to be stored. The list's own append, not a
        # method that calls it: this runs for every message the server relays (a Python call costs
        # some 600 instructions). commit() gives it each new list.
        self.record: Callable[[HistoryMessage], None] = self.pending.append
        self.unstored: list[HistoryMessage] = []  # in the journal, not yet handed to the storer
        # Told of each pass's messages as they are made durable here (a cluster node keeps a copy in Redis
        # until they are stored: another node stores them if this one dies first).
        self.on_commit: Callable[[list[HistoryMessage]], None] | None = None
        # Counted by one thread each: stored and refused one by one by the storer, given up by the loop.
        self.written = 0
        self._left_out = 0
        self._given_up = 0
        self._next_prune = now
        self._next_store = now
        self._pruning = False  # a retention round is under way (it takes as many steps as it needs)
        self._prune: Future[int] | None = None  # the retention step being run

    @property
    def failed_writes(self) -> int:
        """Messages that are not in history and will not be (for /metrics)."""
        return self._left_out + self._given_up

    def commit(self) -> None:
        """Make what this pass recorded durable: one journal record (or one transaction without journals)."""
        batch = self.pending
        if not batch:
            return
        self.pending = []
        self.record = self.pending.append
        if self.on_commit is not None:
            self.on_commit(batch)
        journal = self.journal
        if journal is None:
            failed = self._run(partial(self._store_and_clear, batch, None)).result()
            self._given_up += len(failed)
            return
        self.unstored += batch
        try:
            journal.append(batch)
        except JournalError as exc:
            log.error("history journal: %s; storing in the database at once", exc)
            self._submit_store()
            self._wait()

    def store_if_due(self, now: float) -> None:
        """Called after each pass's output has left, and by the timer tick: hand what waits in the journal
        to the storer, unless the last batch is still being stored (then on a later pass, once it is).
        Never what this pass recorded and did not journal yet: its output may still leave before the
        storer runs.

        The loop does not wait for the database here, but past ``history_max_waiting_messages`` waiting
        (a database that is slow or unreachable for long): then it waits for the batch in flight, and the
        server slows to the database's pace rather than grow without end."""
        self._now = now
        if self._inflight is not None and self._inflight.done():
            self._wait()
        waiting = len(self.unstored)
        if not waiting:
            return
        config = self.config
        if waiting < config.history_max_waiting_messages:
            if self._inflight is not None:
                return
            full = waiting >= config.history_store_max_messages and self._failing_since is None
            if not full and now < self._next_store:
                return
        retrying = self._failing_since is not None
        self._next_store = now + (STORE_RETRY_INTERVAL_S if retrying else config.history_store_interval_s)
        self._submit_store()

    def store(self) -> None:
        """Put every recorded message into the database and wait until it is there (at shutdown)."""
        self.commit()
        if self.unstored:
            self._submit_store()
        self._wait()

    def _wait(self) -> None:
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            self._take_back(inflight.result())

    def _submit_store(self) -> None:
        """Hand every journaled message to the storer, with the journal that holds them; appends go on in
        the other journal, once the batch before is stored (all it holds is then stored or handed over)."""
        self._wait()
        batch = self.unstored
        self.unstored = []
        journal = self.journal
        if journal is not None:
            self.journal, self._spare = self._spare, journal
        self._inflight = self._run(partial(self._store_and_clear, batch, journal))

    def _take_back(self, failed: list[HistoryMessage]) -> None:
        """The messages of a batch that failed for want of the database (locked, full, unreachable) are
        tried again with the next one, every STORE_RETRY_INTERVAL_S, until they have waited
        ``history_store_retry_s``: their journal keeps them until then (and for a restart meanwhile).
        Then they are given up, and counted (``failed_writes``)."""
        if not failed:
            self._failing_since = None
            return
        if self._failing_since is None:
            self._failing_since = self._now
        waited = self._now - self._failing_since
        if waited >= self.config.history_store_retry_s:
            self._failing_since = None
            self._given_up += len(failed)
            log.error("gave up storing %d messages in history after %.0f s of refusals", len(failed), waited)
            return
        self.unstored[:0] = failed

    def _store_and_clear(self, batch: list[HistoryMessage], journal: Journal | None) -> list[HistoryMessage]:
        """On the storer: store ``batch``, then empty the journal that holds it (and nothing else). Returns
        the messages to try again: the whole batch when the database could not be written."""
        try:
            self._store(batch)
        except Exception as exc:  # StorageError, or the backend's own (sqlite3.Error: disk full...)
            # The messages were delivered anyway: refusing to chat because the disk is full would lose
            # more than it saves. Logged, and counted for /metrics if they never get in.
            log.error("could not store %d messages in history: %s", len(batch), exc)
            return batch
        if journal is not None and journal.size:
            try:
                journal.clear()
            except JournalError as exc:
                log.error("history journal: %s", exc)
        return []

    def _store(self, batch: list[HistoryMessage]) -> None:
        """Store ``batch``; a message the backend refuses (a duplicate msgid...) is left out alone, not
        with its batch. Raises when the database cannot be written at all."""
        if not batch:
            return
        try:
            self.writer.append_messages(batch)
        except (AlreadyExists, ValueError):
            # One bad message rolls its whole transaction back: store them one by one.
            for message in batch:
                try:
                    self.writer.append_messages([message])
                except (AlreadyExists, ValueError) as exc:
                    self._left_out += 1
                    log.error("could not store message %s in history: %s", message.msgid, exc)
                else:
                    self.written += 1
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
        many messages that was. Those stored before the crash are left out (they may be both).

        Raises:
            JournalError: a journal cannot be read, or the database cannot take its messages; the journals
                are kept for the next start."""
        journals = [j for j in (self._spare, self.journal) if j is not None and j.size]
        if not journals:
            return 0

        def recover() -> int:
            writer = self.writer
            messages = [m for j in journals for m in j.read() if writer.get_message(m.msgid) is None]
            # Nor those redacted since: a redaction runs after its message's batch, and that batch's
            # journal is emptied first, but not when emptying it failed, nor for a message that a refused
            # batch left in a journal while it was stored with a later one.
            redacted = writer.redacted(m.msgid for m in messages) if messages else set()
            if redacted:
                messages = [m for m in messages if m.msgid not in redacted]
            try:
                self._store(messages)
            except Exception as exc:
                names = ", ".join(str(j.path) for j in journals)
                raise JournalError(f"cannot store the {len(messages)} messages of {names}: {exc}") from None
            for journal in journals:
                journal.clear()
            return len(messages)

        return self._run(recover).result()

    def write(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        """Run ``fn`` on the writer connection, after the jobs handed over before; ``callback`` gets what
        it returned (or raised) on the loop. ``fn`` must only use the store it is given.

        Nothing waits for it: the caller that must answer after the write holds its connection's input
        meanwhile (``Context.wait``). The backend's own errors come as they are (AlreadyExists...), any
        other failure (the database locked or full, the store closed) as a :class:`StorageError`."""

        def run() -> Outcome[T]:
            outcome = Outcome.of(fn, self.writer)
            if outcome.error is None or isinstance(outcome.error, StorageError):
                return outcome
            # The backend's own (sqlite3.Error, psycopg.Error...).
            error = StorageError(f"could not write to the store: {outcome.error}")
            error.__cause__ = outcome.error
            return Outcome(error=error)

        if self._storer is None:
            callback(run())
            return
        if self._call_soon is None:  # no loop (tools, tests): the storer answers on its thread, as a read does
            self._run(lambda: callback(run()))
            return
        try:
            future = self._storer.submit(run)
        except RuntimeError:  # shut down: the server is stopping
            callback(Outcome(error=StorageError("the store is closed")))
            return
        call_soon = self._call_soon

        def back(done: Future[Outcome[T]]) -> None:
            _call_soon_unless_closed(call_soon, partial(callback, done.result()))

        future.add_done_callback(back)

    def run_now(self, fn: Callable[[Storage], T]) -> T:
        """Run ``fn`` on the writer connection and wait for it: at startup, before the server serves, and
        in tools; never from the loop while it serves."""
        return self._run(partial(fn, self.writer)).result()

    def read(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        """Run ``fn`` on a reader connection once every message recorded so far is stored: the storer runs
        its jobs in order, so the read is its job after the batch (the loop does not wait for either)."""
        def job() -> None:
            self._run(partial(self.reader.read, fn, callback))

        self._after_history(job)

    def write_after_history(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        """:meth:`write`, once every message recorded so far is stored (as :meth:`read` waits for them): for
        a change to a message that may still be in the journal, not yet in the database (a redaction)."""
        self._after_history(lambda: self.write(fn, callback))

    def _after_history(self, job: Callable[[], None]) -> None:
        """Run ``job`` (on the loop; it hands its work to the storer) once every message recorded so far
        has been handed to the storer, so that the storer's work comes after theirs."""
        self.commit()  # journaled first: this pass's output may leave before the storer gets to them
        if self._held_reads is not None:  # after those: they go as soon as the batch in flight is stored
            self._held_reads.append(job)
            return
        self._held_reads = [job]
        self._release_reads()

    def _release_reads(self) -> None:
        """Hand the storer what waits, then the held reads (and writes) after it; while that means waiting
        for the batch in flight (its journal takes the messages next), they wait instead, and this runs
        again on the loop once that batch is stored: the loop never waits for the database here."""
        jobs, self._held_reads = self._held_reads or [], None
        inflight = self._inflight
        if self.unstored and inflight is not None and not inflight.done() and self._call_soon is not None:
            self._held_reads = jobs
            call_soon = self._call_soon
            inflight.add_done_callback(lambda _: _call_soon_unless_closed(call_soon, self._release_reads))
            return
        if self.unstored:
            self._submit_store()
        for job in jobs:
            job()

    def retention_step(self, now: float, wall: float) -> None:
        """Called every tick: hand the storer a bounded retention step when one is due (the loop never
        waits for it: its outcome is looked at on a later tick)."""
        config = self.config
        if self._prune is not None:
            if not self._prune.done():
                return
            prune, self._prune = self._prune, None
            try:
                deleted = prune.result()
            except Exception as exc:
                log.error("history retention failed: %s", exc)
                deleted = 0
            if deleted < PRUNE_STEP_ROWS:
                self._pruning = False
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
        self._prune = self._run(partial(self.writer.prune_history, cutoff, max_per_target, PRUNE_STEP_ROWS))

    def close(self) -> None:
        """Store what waits, stop the storer, close the journals and everything :func:`open_store` opened.
        What cannot be stored stays in the journals, for the next start."""
        self.store()
        if self.unstored:
            log.error("%d messages could not be stored; the history journal keeps them", len(self.unstored))
        for job in self._held_reads or ():
            job()
        self._held_reads = None
        if self._storer is not None:
            self._storer.shutdown()
        for journal in (self.journal, self._spare):
            if journal is not None:
                journal.close()
        for close in self._closers:
            close()
        self._closers.clear()


def _call_soon_unless_closed(call_soon: Callable[[Callable[[], None]], Any], fn: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to answer
        call_soon(fn)


def open_store(
    config: Config,
    location: str | Path,
    now: float,
    call_soon: Callable[[Callable[[], None]], Any],
    *,
    journals: bool = True,
) -> Store:
    """Open ``config.storage_backend`` at ``location`` (the data directory, or the database's URL) as the
    server uses it: migrated, its writer on a storer thread of its own with the backend's upkeep running,
    a pool of readers, and with ``journals`` (history on) the two journals in ``config.data_dir``.

    Raises :class:`~salotto.storage.base.StorageError` (SchemaTooNew, a database that cannot be opened) or
    :class:`~salotto.storage.journal.JournalError`; what was opened is closed again."""
    from salotto.storage import open_storage  # (the package imports this module)

    backend = config.storage_backend
    writer = open_storage(backend, location, search=config.search)
    opened: list[Callable[[], None]] = [writer.close]
    try:
        opened.insert(0, writer.start_maintenance())
        reader = ReadPool(partial(open_storage, backend, location, readonly=True), call_soon)
        opened.insert(0, reader.close)
        pair: tuple[Journal, Journal] | None = None
        if journals:  # (with PostgreSQL nothing else made the data directory)
            Path(config.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
            first = Journal(Path(config.data_dir) / JOURNAL_FILENAMES[0])
            opened.insert(0, first.close)
            second = Journal(Path(config.data_dir) / JOURNAL_FILENAMES[1])
            opened.insert(0, second.close)
            pair = (first, second)
    except BaseException:
        for close in opened:
            close()
        raise
    storer = ThreadPoolExecutor(1, thread_name_prefix="salotto-store")
    store = Store(config, writer, reader, now, pair, storer, call_soon)
    store._closers = [reader.close, *opened[-2:]]  # the upkeep's stop and the writer, after the readers
    return store
