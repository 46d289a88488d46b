"""Running storage off the event loop: one writer thread, a small pool of readers.

The event loop never waits for SQLite. It hands work over as functions of a
:class:`~salotto.storage.base.Storage` and gets :class:`Outcome` values back through the ``call_soon``
function given at construction (``loop.call_soon_threadsafe`` in the server; calling directly on the
worker's thread in tests and scripts). Nothing here imports asyncio.

Writes: :meth:`StorageWorker.submit_write` only appends to a list; :meth:`StorageWorker.flush` hands that
list to the writer thread as one batch, and the writer commits everything that is waiting (several
batches if it fell behind) in one transaction; a failing write (a taken account name) gets its exception
back and does not undo the others. The server calls ``flush`` once per loop tick (the
``on_pending`` hook says when a tick has something to flush), so a tick costs one commit whatever its
number of messages.

Reads: :meth:`StorageWorker.read` runs on the reader pool, each read in one snapshot of a read-only
connection. A read submitted while writes are pending or in flight waits until they are committed, so a
client that sends a message and then asks CHATHISTORY LATEST sees it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Generic, TypeVar, cast

from salotto.storage.base import Storage

__all__ = ["Outcome", "StorageWorker", "WorkerClosed", "WorkerStats"]

log = logging.getLogger("salotto.storage")

T = TypeVar("T")

# Writes committed in one transaction at most; a backlog larger than this is split into several, so a
# burst does not hold one transaction (and the commit callbacks of its first writes) for long: 1000
# single-message writes take about 25 ms to run and commit.
DEFAULT_MAX_BATCH: Final = 1000
# Reader threads (and read-only connections). Chathistory queries take about a millisecond; two
# readers keep one slow query from delaying the others without competing much for the GIL.
DEFAULT_READERS: Final = 2


class WorkerClosed(RuntimeError):
    """The worker was closed; it takes no more work."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What a storage function returned, or the exception it raised."""

    value: T | None = None
    error: BaseException | None = None

    def unwrap(self) -> T:
        """The value; raises the function's exception if it failed."""
        if self.error is not None:
            raise self.error
        return cast(T, self.value)


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """Counters for /metrics."""

    writes: int  # committed writes (failed ones included: they ran)
    write_errors: int  # writes whose function raised (rolled back to its savepoint)
    commits: int
    commit_failures: int  # transactions that could not commit (disk full...): every write in them failed
    reads: int
    pending_writes: int  # submitted, not yet flushed
    max_commit_s: float  # slowest transaction so far, running the writes included


@dataclass(slots=True)
class _Write:
    fn: Callable[[Storage], Any]
    callback: Callable[[Outcome[Any]], None] | None
    direct: bool = False  # call the callback on the writer thread (run_sync), not through call_soon


@dataclass(slots=True)
class _Batch:
    writes: list[_Write]
    on_committed: list[Callable[[Outcome[None]], None]] = field(default_factory=list)
    reads: list[tuple[Callable[[Storage], Any], Callable[[Outcome[Any]], None]]] = field(default_factory=list)


class _WriteFailed(Exception):
    """A write of an all-together attempt raised: roll back and isolate each write."""


def call_directly(fn: Callable[[], None]) -> None:
    """The default ``call_soon``: run the callback at once, on whichever worker thread has the result."""
    fn()


class StorageWorker:
    """Owns the backend's one writer connection (on a dedicated thread) and its reader connections.

    Args:
        open_writer: opens the read-write connection; called once, here, so a bad database (a schema
            too new) fails the construction.
        open_reader: opens one read-only connection; called ``readers`` times, here.
        call_soon: how a callback reaches the caller's thread (``loop.call_soon_threadsafe``).
        readers: reader threads and connections.
        max_batch: writes committed in one transaction at most.
        on_pending: called (on the submitting thread) when :meth:`submit_write` finds nothing pending,
            so the caller can schedule a :meth:`flush` for the end of the tick.
    """

    def __init__(
        self,
        open_writer: Callable[[], Storage],
        open_reader: Callable[[], Storage],
        *,
        call_soon: Callable[[Callable[[], None]], None] = call_directly,
        readers: int = DEFAULT_READERS,
        max_batch: int = DEFAULT_MAX_BATCH,
        on_pending: Callable[[], None] | None = None,
    ) -> None:
        if readers < 1 or max_batch < 1:
            raise ValueError("readers and max_batch must be at least 1")
        self._call_soon = call_soon
        self._max_batch = max_batch
        self._on_pending = on_pending
        self._writer = open_writer()
        self._readers: queue.SimpleQueue[Storage] = queue.SimpleQueue()
        self._reader_list: list[Storage] = []
        try:
            for _ in range(readers):
                reader = open_reader()
                self._reader_list.append(reader)
                self._readers.put(reader)
        except BaseException:
            for reader in self._reader_list:
                reader.close()
            self._writer.close()
            raise
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="salotto-storage-read")
        self._lock = threading.Lock()  # guards the fields below, shared by submitters and the writer
        self._pending: list[_Write] = []
        self._pending_reads: list[tuple[Callable[[Storage], Any], Callable[[Outcome[Any]], None]]] = []
        self._in_flight = 0  # batches with writes handed to the writer and not yet committed
        self._closed = False
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._writes = self._write_errors = self._commits = self._commit_failures = self._reads = 0
        self._max_commit_s = 0.0
        self._thread = threading.Thread(target=self._write_loop, name="salotto-storage-write", daemon=True)
        self._thread.start()

    # -- the caller's side -----------------------------------------------------------------------

    def submit_write(
        self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None] | None = None
    ) -> None:
        """Queue ``fn(storage)`` for the next :meth:`flush`; ``callback`` gets its outcome once committed.

        ``fn`` may run twice (when another write of its transaction fails, see :meth:`_run_transaction`):
        it must act only on the storage it is given."""
        with self._lock:
            if self._closed:
                raise WorkerClosed("storage worker is closed")
            first = not self._pending
            self._pending.append(_Write(fn, cast(Callable[[Outcome[Any]], None] | None, callback)))
        if first and self._on_pending is not None:
            self._on_pending()

    def flush(self, on_committed: Callable[[Outcome[None]], None] | None = None) -> None:
        """Hand the pending writes to the writer thread as one batch.

        ``on_committed`` gets ``Outcome(None)`` once they are durable (see the durability note in
        :mod:`salotto.storage.sqlite`), or the commit's exception. With nothing pending it is still
        called, after everything flushed before."""
        with self._lock:
            if self._closed:
                raise WorkerClosed("storage worker is closed")
            self._flush_locked(on_committed)

    def read(
        self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None], *, after_writes: bool = True
    ) -> None:
        """Run ``fn(storage)`` on a reader, in one snapshot, and pass the outcome to ``callback``.

        With ``after_writes`` (the default) a read submitted while writes are pending or in flight runs
        after they commit (pending ones are flushed now), so it sees them."""
        task = (cast(Callable[[Storage], Any], fn), cast(Callable[[Outcome[Any]], None], callback))
        with self._lock:
            if self._closed:
                raise WorkerClosed("storage worker is closed")
            if after_writes and (self._pending or self._in_flight):
                self._pending_reads.append(task)
                self._flush_locked(None)
                return
        self._pool.submit(self._run_read, *task)

    def run_sync(self, fn: Callable[[Storage], T], timeout: float | None = None) -> T:
        """Run a write on the writer thread and wait for its commit: for startup, shutdown and tests,
        never from the event loop. Raises what ``fn`` raised, or TimeoutError."""
        done = threading.Event()
        box: list[Outcome[Any]] = []

        def finish(outcome: Outcome[Any]) -> None:
            box.append(outcome)
            done.set()

        with self._lock:
            if self._closed:
                raise WorkerClosed("storage worker is closed")
            self._pending.append(_Write(fn, finish, direct=True))
            self._flush_locked(None)
        if not done.wait(timeout):
            raise TimeoutError("storage write did not finish in time")
        return cast(T, box[0].unwrap())

    def close(self, timeout: float | None = 30.0) -> None:
        """Graceful shutdown: flush what is pending, wait for the writer to commit it and for running
        reads to end, then close every connection. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked(None)
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("storage writer did not finish within %s s; its last batch may be lost", timeout)
        else:
            self._writer.close()
        self._pool.shutdown(wait=True)
        for reader in self._reader_list:
            reader.close()

    def stats(self) -> WorkerStats:
        with self._lock:
            return WorkerStats(
                self._writes, self._write_errors, self._commits, self._commit_failures, self._reads,
                len(self._pending), self._max_commit_s,
            )

    # -- internals -------------------------------------------------------------------------------

    def _flush_locked(self, on_committed: Callable[[Outcome[None]], None] | None) -> None:
        batch = _Batch(self._pending, [on_committed] if on_committed else [], self._pending_reads)
        self._pending = []
        self._pending_reads = []
        if batch.writes:
            self._in_flight += 1
        if batch.writes or batch.on_committed or batch.reads:
            self._queue.put(batch)

    def _deliver(self, callback: Callable[[Outcome[Any]], None], outcome: Outcome[Any]) -> None:
        try:
            self._call_soon(partial(callback, outcome))
        except Exception:  # the loop is gone (shutdown): nobody is left to tell
            log.exception("storage: cannot deliver a result")

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batches = [first]
            count = len(first.writes)
            while count < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batches.append(more)
                count += len(more.writes)
            self._commit(batches)

    def _commit(self, batches: list[_Batch]) -> None:
        writes = [w for batch in batches for w in batch.writes]
        outcomes: list[Outcome[Any]] = []
        started = time.perf_counter()
        commit_error: BaseException | None = None
        try:
            if writes:
                outcomes = self._run_transaction(writes)
        except Exception as exc:
            log.exception("storage: commit of %d writes failed", len(writes))
            commit_error = exc
            outcomes = [Outcome(error=exc)] * len(writes)
        errors = sum(1 for outcome in outcomes if outcome.error is not None) if commit_error is None else 0
        elapsed = time.perf_counter() - started
        with self._lock:
            self._in_flight -= sum(1 for batch in batches if batch.writes)
            self._writes += len(writes)
            self._write_errors += errors
            if writes:
                self._commits += commit_error is None
                self._commit_failures += commit_error is not None
            self._max_commit_s = max(self._max_commit_s, elapsed)
        for write, outcome in zip(writes, outcomes, strict=True):
            if write.callback is None:
                continue
            if write.direct:
                write.callback(outcome)
            else:
                self._deliver(write.callback, outcome)
        done: Outcome[None] = Outcome(error=commit_error)
        for batch in batches:
            for callback in batch.on_committed:
                self._deliver(callback, done)
            for read in batch.reads:
                self._pool.submit(self._run_read, *read)

    def _run_transaction(self, writes: list[_Write]) -> list[Outcome[Any]]:
        """Run the writes in one transaction and commit it.

        First all together, with no savepoints: every statement releases and retakes the GIL, and a
        busy event loop can make each retake wait for the interpreter's switch interval, so fewer
        statements per write is what keeps a commit short. If a write raises, that attempt is rolled
        back and the batch runs again with a savepoint around each write, so the failure undoes only
        its own write (which is why a write function must have no effect outside the storage)."""
        try:
            with self._writer.transaction():
                try:
                    return [Outcome(write.fn(self._writer)) for write in writes]
                except Exception as exc:
                    raise _WriteFailed from exc
        except _WriteFailed:
            pass
        outcomes: list[Outcome[Any]] = []
        with self._writer.transaction():
            for write in writes:
                try:
                    with self._writer.transaction():  # a savepoint
                        outcomes.append(Outcome(write.fn(self._writer)))
                except Exception as exc:
                    outcomes.append(Outcome(error=exc))
        return outcomes

    def _run_read(self, fn: Callable[[Storage], Any], callback: Callable[[Outcome[Any]], None]) -> None:
        storage = self._readers.get()
        try:
            with storage.transaction():  # one snapshot for the whole function
                outcome: Outcome[Any] = Outcome(fn(storage))
        except Exception as exc:
            outcome = Outcome(error=exc)
        finally:
            self._readers.put(storage)
        with self._lock:
            self._reads += 1
        self._deliver(callback, outcome)
