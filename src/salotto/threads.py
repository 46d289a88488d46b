"""The server's offload on threads: password hashing (and mail) run on a small thread pool.

scrypt costs tens of milliseconds and 32 MiB per call (see :mod:`salotto.passwords`); on the loop
thread one login would stall every connection for that long. ``hashlib.scrypt`` releases the GIL, so
the pool's threads hash while the loop goes on serving. Results come back through ``call_soon``
(``loop.call_soon_threadsafe`` in the server), so callbacks always run on the loop thread. It implements
:class:`salotto.server.offload.Offload`; the server layer itself starts no thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from salotto.storage.outcome import Outcome

__all__ = ["HASH_THREADS", "ThreadOffload"]

T = TypeVar("T")

# Hashes computed at once. Two match this machine's two cores; more would only queue inside
# OpenSSL while multiplying scrypt's memory (32 MiB each). Logins beyond that wait their turn, and
# the per-IP and per-account login limits bound how many can be waiting.
HASH_THREADS = 2


class ThreadOffload:
    def __init__(self, call_soon: Callable[[Callable[[], None]], Any], threads: int = HASH_THREADS) -> None:
        self._call_soon = call_soon
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="salotto-hash")

    def run(self, fn: Callable[[], T], callback: Callable[[Outcome[T]], None]) -> None:
        self._pool.submit(self._run, fn, callback)

    def _run(self, fn: Callable[[], T], callback: Callable[[Outcome[T]], None]) -> None:
        outcome = Outcome.of(fn)
        self._call_soon(lambda: callback(outcome))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
