"""StorageWorker: writes batched per flush and committed off the caller's thread, reads on a pool,
results handed back through ``call_soon``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from salotto.storage import (
    AlreadyExists,
    HistoryMessage,
    Outcome,
    Storage,
    StorageWorker,
    WorkerClosed,
    open_storage,
    open_worker,
)

from .conftest import message


class Loop:
    """A stand-in for ``loop.call_soon_threadsafe``: collects callbacks; ``run`` plays them on this thread."""

    def __init__(self) -> None:
        self.ready: list[Callable[[], None]] = []
        self.lock = threading.Lock()
        self.wakeup = threading.Condition(self.lock)

    def call_soon(self, fn: Callable[[], None]) -> None:
        with self.wakeup:
            self.ready.append(fn)
            self.wakeup.notify_all()

    def run_until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        while not done():
            with self.wakeup:
                if not self.ready and not self.wakeup.wait(timeout):
                    raise TimeoutError("no callback came back")
                ready, self.ready = self.ready, []
            for fn in ready:
                fn()


@pytest.fixture
def loop() -> Loop:
    return Loop()


@pytest.fixture
def worker(backend: str, location: str, loop: Loop) -> Iterator[StorageWorker]:
    w = open_worker(backend, location, call_soon=loop.call_soon)
    yield w
    w.close()


def append(*messages: HistoryMessage) -> Callable[[Storage], None]:
    return lambda s: s.append_messages(messages)


def test_writes_commit_on_flush_and_report_back(worker: StorageWorker, loop: Loop) -> None:
    outcomes: list[Outcome[Any]] = []
    committed: list[Outcome[None]] = []
    worker.submit_write(append(message(0)), outcomes.append)
    worker.submit_write(lambda s: s.create_account("alice", "h", 1.0), outcomes.append)
    worker.submit_write(lambda s: s.create_account("ALICE", "h", 1.0), outcomes.append)  # fails alone
    worker.submit_write(append(message(1)))
    worker.flush(committed.append)
    loop.run_until(lambda: len(committed) == 1)
    assert committed[0].error is None
    assert outcomes[0].unwrap() is None
    assert outcomes[1].unwrap().name == "alice"
    assert isinstance(outcomes[2].error, AlreadyExists)
    with pytest.raises(AlreadyExists):
        outcomes[2].unwrap()
    # The failed write rolled back to its savepoint only.
    assert [m.msgid for m in worker.run_sync(lambda s: s.latest("#chan", 10))] == ["m0000", "m0001"]
    stats = worker.stats()
    assert stats.write_errors == 1 and stats.commit_failures == 0 and stats.pending_writes == 0


def test_nothing_is_written_before_flush(worker: StorageWorker, loop: Loop, backend: str, location: str) -> None:
    worker.submit_write(append(message(0)))
    assert worker.stats().pending_writes == 1
    reader = open_storage(backend, location, readonly=True)
    try:
        assert reader.latest("#chan", 10) == []
        done: list[Outcome[None]] = []
        worker.flush(done.append)
        loop.run_until(lambda: bool(done))
        assert len(reader.latest("#chan", 10)) == 1
    finally:
        reader.close()


def test_a_read_sees_the_writes_submitted_before_it(worker: StorageWorker, loop: Loop) -> None:
    seen: dict[int, int] = {}

    def record(i: int, outcome: Outcome[list[HistoryMessage]]) -> None:
        seen[i] = len(outcome.unwrap())

    for i in range(20):
        worker.submit_write(append(message(i)))
        # Not flushed: the read flushes them and waits for their commit (it may see later ones too).
        worker.read(lambda s: s.latest("#chan", 100), partial(record, i))
    loop.run_until(lambda: len(seen) == 20)
    assert all(seen[i] >= i + 1 for i in range(20)), seen


def test_read_errors_come_back_as_outcomes(worker: StorageWorker, loop: Loop) -> None:
    results: list[Outcome[Any]] = []

    def broken(storage: Storage) -> None:
        raise RuntimeError("boom")

    worker.read(broken, results.append)
    worker.read(lambda s: s.get_account("nobody"), results.append)
    loop.run_until(lambda: len(results) == 2)
    errors = [r.error for r in results if r.error is not None]
    assert len(errors) == 1 and str(errors[0]) == "boom"
    assert worker.stats().reads == 2


def test_reads_do_not_wait_for_the_writer(worker: StorageWorker, loop: Loop) -> None:
    """A slow write holds the writer thread; a read that does not ask to follow writes still runs."""
    release = threading.Event()
    worker.submit_write(lambda s: release.wait(10))
    worker.flush()
    results: list[Outcome[Any]] = []
    worker.read(lambda s: s.latest("#chan", 1), results.append, after_writes=False)
    loop.run_until(lambda: bool(results))
    assert results[0].unwrap() == []
    release.set()


def test_on_pending_fires_once_per_tick(backend: str, location: str, loop: Loop) -> None:
    ticks: list[int] = []
    w = open_worker(backend, location, call_soon=loop.call_soon, on_pending=lambda: ticks.append(1))
    try:
        for i in range(3):
            w.submit_write(append(message(i)))
        assert len(ticks) == 1
        w.flush()
        w.submit_write(append(message(3)))
        assert len(ticks) == 2
    finally:
        w.close()


def test_many_small_batches_are_coalesced(worker: StorageWorker, loop: Loop) -> None:
    committed: list[Outcome[None]] = []
    for i in range(2000):
        worker.submit_write(append(message(i)))
        worker.flush(committed.append)
    loop.run_until(lambda: len(committed) == 2000)
    stats = worker.stats()
    assert stats.writes == 2000
    assert stats.commits < 2000  # the writer takes whatever is waiting in one transaction
    assert len(worker.run_sync(lambda s: s.latest("#chan", 5000))) == 2000


def test_close_commits_what_is_pending(backend: str, location: str) -> None:
    w = open_worker(backend, location)
    for i in range(100):
        w.submit_write(append(message(i)))
    w.close()
    w.close()  # idempotent
    with pytest.raises(WorkerClosed):
        w.submit_write(append(message(100)))
    with pytest.raises(WorkerClosed):
        w.read(lambda s: None, lambda o: None)
    storage = open_storage(backend, location)
    try:
        assert len(storage.latest("#chan", 1000)) == 100
    finally:
        storage.close()


def test_run_sync_raises_what_the_write_raised(worker: StorageWorker) -> None:
    worker.run_sync(lambda s: s.register_channel("#c", "alice", 1.0))
    with pytest.raises(AlreadyExists):
        worker.run_sync(lambda s: s.register_channel("#C", "bob", 1.0))
    assert [c.name for c in worker.run_sync(lambda s: s.list_channels())] == ["#c"]


def test_a_bad_store_fails_construction(backend: str, location: str) -> None:
    # The read-only opens need the file the writer creates; a failure closes what was opened.
    def no_reader() -> Storage:
        raise OSError("no readers today")

    with pytest.raises(OSError, match="no readers"):
        StorageWorker(lambda: open_storage(backend, location), no_reader)
