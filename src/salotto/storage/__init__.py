"""Storage: accounts, registered channels, message history and read markers behind one interface.

``open_storage("sqlite", data_dir)`` opens a connection of a backend. The server writes through one
connection on history's storer thread (see :mod:`salotto.server.history`) and reads through read-only
ones (:class:`~salotto.storage.readers.ReadPool`); :class:`StorageWorker` (a writer thread and readers)
serves offline tools (``bench/history_bench``) and the durability test.
See docs/architecture.md.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Final

from salotto.storage.base import (
    AlreadyExists,
    HistoryMessage,
    Ref,
    RegisteredChannel,
    SchemaTooNew,
    Storage,
    StorageError,
    StoredAccount,
    TargetListing,
    UnknownChannel,
    conversation_key,
    normalize_certfp,
)
from salotto.storage.worker import Outcome, StorageWorker, WorkerClosed, WorkerStats

__all__ = [
    "BACKENDS",
    "AlreadyExists",
    "HistoryMessage",
    "Outcome",
    "Ref",
    "RegisteredChannel",
    "SchemaTooNew",
    "Storage",
    "StorageError",
    "StorageWorker",
    "StoredAccount",
    "TargetListing",
    "UnknownChannel",
    "WorkerClosed",
    "WorkerStats",
    "conversation_key",
    "normalize_certfp",
    "open_storage",
    "open_worker",
]

BACKENDS: Final = ("sqlite",)


def open_storage(backend: str, data_dir: str | Path, *, readonly: bool = False) -> Storage:
    """Open one connection of ``backend`` (one of :data:`BACKENDS`) on ``data_dir``.

    The read-write open creates and migrates the store; raises :class:`SchemaTooNew` for a store written
    by a newer salotto, ValueError for an unknown backend."""
    if backend == "sqlite":
        from salotto.storage.sqlite import SqliteStorage

        return SqliteStorage.open(data_dir, readonly=readonly)
    raise ValueError(f"unknown storage backend {backend!r} (known: {', '.join(BACKENDS)})")


def open_worker(backend: str, data_dir: str | Path, **options: object) -> StorageWorker:
    """A :class:`StorageWorker` on ``backend``; ``options`` go to its constructor (``call_soon``...)."""
    return StorageWorker(
        partial(open_storage, backend, data_dir),
        partial(open_storage, backend, data_dir, readonly=True),
        **options,  # type: ignore[arg-type]
    )
