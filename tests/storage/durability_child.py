"""The child of ``test_durability``: writes batches through a StorageWorker until it is killed.

Usage: ``python -m tests.storage.durability_child BACKEND LOCATION`` (a data directory or a URL).
Each batch is 20 messages (``b<batch>-<n>``), and every tenth also registers account ``user<batch>``;
the line ``committed <batch>`` is printed once the worker reports the batch committed, which is the
moment the server would let clients see it.
"""

from __future__ import annotations

import sys
import time
from functools import partial

from salotto.storage import HistoryMessage, Outcome, Storage, open_worker

BATCH = 20


def append(msg: HistoryMessage, storage: Storage) -> None:
    storage.append_messages([msg])


def register(name: str, storage: Storage) -> None:
    storage.create_account(name, "hash", time.time())


def main() -> None:
    backend, location = sys.argv[1], sys.argv[2]
    worker = open_worker(backend, location)
    committed = -1

    def report(batch: int, outcome: Outcome[None]) -> None:
        nonlocal committed
        outcome.unwrap()
        committed = batch
        print(f"committed {batch}", flush=True)

    batch = 0
    while True:
        for n in range(BATCH):
            msg = HistoryMessage(f"b{batch}-{n}", "#lobby", time.time(), "nick!u@h", None, "PRIVMSG", f"{batch} {n}")
            worker.submit_write(partial(append, msg))
        if batch % 10 == 0:
            name = f"user{batch}"
            worker.submit_write(partial(register, name))
        worker.flush(partial(report, batch))
        batch += 1
        while batch - committed > 50:  # backpressure, as the server's loop tick would give
            time.sleep(0.0005)




if __name__ == "__main__":
    main()
