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
from salotto.storage import HistoryMessage, Outcome
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
