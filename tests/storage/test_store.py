"""The Store as the server uses it: nothing it is asked on the loop waits for the database."""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from salotto.config import load_config
from salotto.storage import HistoryMessage, Outcome, StorageError
from salotto.storage.sqlite import DB_FILENAME
from salotto.storage.store import open_store


def _message(i: int) -> HistoryMessage:
    return HistoryMessage(f"m{i}", "#chan", 1_700_000_000.0 + i, "alice!a@h", None, "PRIVMSG", f"text {i}")


def test_a_read_while_a_batch_is_stuck_in_the_database_returns_at_once_and_sees_every_message(
    tmp_path: Path,
) -> None:
    """A batch is being stored and the database is slow (locked here); more messages wait, and a client
    asks CHATHISTORY. Handing the new messages over would mean waiting for the stuck batch: the read
    waits instead, off the loop, and its answer has every message recorded before it."""
    config = load_config(None, {"data_dir": str(tmp_path)})
    results: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    store = open_store(config, tmp_path, 0.0, results.put)
    try:
        lock = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None, check_same_thread=False)
        lock.execute("BEGIN IMMEDIATE")
        store.record(_message(1))
        store.commit()
        store.store_if_due(10.0)  # the first batch goes to the storer, and waits on the lock
        store.record(_message(2))
        store.commit()
        got: list[Outcome[list[HistoryMessage]]] = []
        started = time.monotonic()
        store.read(lambda s: s.latest("#chan", 10), got.append)
        store.read(lambda s: s.latest("#chan", 1), got.append)  # (two readers: either may answer first)
        assert time.monotonic() - started < 0.1  # the loop did not wait for the lock
        time.sleep(0.3)
        assert got == []
        threading.Timer(0.2, lambda: (lock.execute("ROLLBACK"), lock.close())).start()
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                results.get(timeout=0.05)()
        assert sorted([m.msgid for m in outcome.unwrap()] for outcome in got) == [["m1", "m2"], ["m2"]]
    finally:
        store.close()


def test_messages_piling_up_behind_a_stuck_batch_do_not_hold_the_loop_until_the_bound(tmp_path: Path) -> None:
    """A batch is stuck in a locked database while more than history_store_max_messages pile up: the
    pass that finds them hands nothing over and returns at once (they go once the batch is stored). Only
    past history_max_waiting_messages does the loop wait for the database, as backpressure."""
    config = load_config(None, {"data_dir": str(tmp_path), "history_store_max_messages": 5,
                                "history_max_waiting_messages": 20})
    results: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    store = open_store(config, tmp_path, 0.0, results.put)
    lock = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None, check_same_thread=False)
    try:
        lock.execute("BEGIN IMMEDIATE")
        store.record(_message(0))
        store.commit()
        store.store_if_due(10.0)  # the first batch goes to the storer, and waits on the lock
        for i in range(1, 20):
            store.record(_message(i))
        store.commit()
        started = time.monotonic()
        store.store_if_due(10.01)  # 19 waiting: more than store_max, fewer than the bound
        assert time.monotonic() - started < 0.1
        store.record(_message(20))
        store.commit()
        threading.Timer(0.5, lambda: (lock.execute("ROLLBACK"), lock.close())).start()
        started = time.monotonic()
        store.store_if_due(10.02)  # 20 waiting: the bound, the loop waits for the batch in flight
        assert time.monotonic() - started > 0.3
        store.store()
        assert len(store.run_now(lambda s: s.latest("#chan", 100))) == 21
    finally:
        store.close()


def test_a_database_down_for_a_while_loses_no_message(tmp_path: Path) -> None:
    """The database refuses writes for a while (PostgreSQL restarting: connections refused at once): the
    messages are offered again every second, for history_store_retry_s, and all get in once it is back."""
    config = load_config(None, {"data_dir": str(tmp_path)})
    store = open_store(config, tmp_path, 0.0, lambda fn: fn())
    real = store.writer.append_messages
    down = [True]

    def append(batch: list[HistoryMessage]) -> None:
        if down[0]:
            raise StorageError("cannot connect to PostgreSQL: Connection refused")
        real(batch)

    store.writer.append_messages = append  # type: ignore[method-assign]
    try:
        now = 0.0
        for i in range(400):  # a pass every 25 ms for 10 s; the database is back after 3 s
            now += 0.025
            down[0] = now < 3.0
            store.record(_message(i))
            store.commit()
            store.store_if_due(now)
            time.sleep(0.001)  # (the storer thread's turn)
        store.store()
        assert store.failed_writes == 0
        assert len(store.run_now(lambda s: s.latest("#chan", 1000))) == 400
    finally:
        store.close()
