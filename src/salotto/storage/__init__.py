"""Storage: accounts, registered channels, message history and read markers behind one interface.

``open_storage("sqlite", data_dir)`` opens a connection of a backend. The server sees the store through
one object, :class:`~salotto.storage.store.Store` (``open_store``): one writer connection on a thread of
its own with history's journals, read-only connections on a pool, every result back on the loop.
See docs/architecture.md.
"""

from __future__ import annotations

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
from salotto.storage.outcome import Outcome

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
    "StoredAccount",
    "TargetListing",
    "UnknownChannel",
    "conversation_key",
    "normalize_certfp",
    "open_storage",
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
