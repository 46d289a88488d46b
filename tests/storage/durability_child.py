"""The child of ``test_durability``: runs a server's store (journals, storer thread) until it is killed.

Usage: ``python -m tests.storage.durability_child BACKEND LOCATION DATA_DIR``. Each batch is 20 messages
(``b<batch>-<n>``) recorded and committed as one pass of the server's loop would; the line ``committed
<batch>`` is printed once :meth:`Store.commit` returned, which is the moment the server lets clients see
them. Every tenth batch also registers account ``user<batch>`` through :meth:`Store.write`, and
``account <batch>`` is printed when the store reports it written (when the server would answer).
"""

from __future__ import annotations

import queue
import sys
import time
from collections.abc import Callable

from salotto.config import load_config
from salotto.storage import HistoryMessage, Outcome, Storage
from salotto.storage.store import open_store

BATCH = 20


def main() -> None:
    backend, location, data_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    location_key = {"storage_url": location} if backend == "postgresql" else {}
    config = load_config(None, {"storage_backend": backend, "data_dir": data_dir, **location_key,
                                "history_store_interval_s": 0.005})
    results: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    store = open_store(config, location, time.monotonic(), results.put)
    store.recover()

    def registered(batch: int, outcome: Outcome[object]) -> None:
        outcome.unwrap()
        print(f"account {batch}", flush=True)

    batch = 0
    while True:
        for n in range(BATCH):
            store.record(HistoryMessage(f"b{batch}-{n}", "#lobby", time.time(), "nick!u@h", None, "PRIVMSG",
                                        f"{batch} {n}"))
        store.commit()
        print(f"committed {batch}", flush=True)
        if batch % 10 == 0:
            name = f"user{batch}"

            def register(storage: Storage, name: str = name) -> object:
                return storage.create_account(name, "hash", time.time())

            store.write(register, lambda outcome, batch=batch: registered(batch, outcome))
        store.store_if_due(time.monotonic())
        while True:
            try:
                results.get_nowait()()
            except queue.Empty:
                break
        batch += 1
        time.sleep(0.0005)


if __name__ == "__main__":
    main()
