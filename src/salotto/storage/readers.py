"""Reads off the event loop: a small thread pool, each thread with its own read-only connection.

Writes go to the one writer connection, on the store's storer thread (see :mod:`salotto.storage.store`);
reads such as CHATHISTORY, which may scan, run here and come back through ``call_soon``
(``loop.call_soon_threadsafe`` in the server). No asyncio import.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from salotto.storage.base import Storage
from salotto.storage.outcome import Outcome

__all__ = ["DEFAULT_READERS", "ReadPool"]

T = TypeVar("T")

# Reader threads (and read-only connections). Chathistory queries take about a millisecond; two
# readers keep one slow query from delaying the others without competing much for the GIL.
DEFAULT_READERS: Final = 2


class ReadPool:
    def __init__(
        self,
        open_reader: Callable[[], Storage],
        call_soon: Callable[[Callable[[], None]], Any],
        threads: int = DEFAULT_READERS,
    ) -> None:
        self._open_reader = open_reader
        self._call_soon = call_soon
        self._local = threading.local()
        self._opened: list[Storage] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="salotto-read")
        self._on_close: list[Callable[[], None]] = []

    def on_close(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` when the pool closes (background maintenance that lives as long as the readers)."""
        self._on_close.append(fn)

    def read(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        """Run ``fn`` on a reader thread; ``callback`` gets its Outcome through ``call_soon``."""
        self._pool.submit(self._run, fn, callback)

    def _run(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        try:
            storage = getattr(self._local, "storage", None)
            if storage is None:
                storage = self._open_reader()
                self._local.storage = storage
                with self._lock:
                    self._opened.append(storage)
            outcome: Outcome[T] = Outcome(value=fn(storage))
        except Exception as exc:
            outcome = Outcome(error=exc)
        self._call_soon(lambda: callback(outcome))

    def close(self) -> None:
        for fn in self._on_close:
            fn()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for storage in self._opened:
                storage.close()
            self._opened.clear()
