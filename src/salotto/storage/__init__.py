"""Storage: accounts, registered channels, message history and read markers behind one interface.

``open_storage("sqlite", data_dir)`` opens a connection of a backend. The server sees the store through
one object, :class:`~salotto.storage.store.Store` (``open_store``): one writer connection on a thread of
its own with history's journals, read-only connections on a pool, every result back on the loop.
See docs/architecture.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

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
)
from salotto.storage.outcome import Outcome
from salotto.storage.urls import mask_password

if TYPE_CHECKING:
    from salotto.config import Config

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
    "describe_storage",
    "mask_password",
    "open_storage",
    "storage_location",
]

BACKENDS: Final = ("sqlite", "postgresql")


def storage_location(config: Config) -> str:
    """What :func:`open_storage` opens for ``config``: the data directory for SQLite, ``storage_url`` for
    PostgreSQL. (The journals and the server secret stay in ``data_dir`` with either.)"""
    return config.storage_url if config.storage_backend == "postgresql" else config.data_dir


def describe_storage(config: Config) -> str:
    """The backend for messages and logs, never with a password: ``sqlite``, ``postgresql at URL``."""
    if config.storage_backend == "postgresql":
        return f"postgresql at {mask_password(config.storage_url)}"
    return config.storage_backend


def open_storage(backend: str, where: str | Path, *, readonly: bool = False, search: bool | None = None) -> Storage:
    """Open one connection of ``backend`` (one of :data:`BACKENDS`) on ``where``: the data directory for
    ``sqlite``, the ``postgresql://`` URL for ``postgresql`` (see :func:`storage_location`).

    The read-write open creates and migrates the store; raises :class:`SchemaTooNew` for a store written
    by a newer salotto, StorageError when it cannot be opened (for PostgreSQL: the server cannot be
    reached or refuses the login; the message masks the password), ValueError for an unknown backend.
    ``search`` (read-write): keep the full-text index or drop it (the ``search`` config key; None: as is)."""
    if backend == "sqlite":
        from salotto.storage.sqlite import SqliteStorage

        return SqliteStorage.open(where, readonly=readonly, search=search)
    if backend == "postgresql":
        from salotto.storage.postgresql import PostgresStorage

        return PostgresStorage.open(str(where), readonly=readonly, search=search)
    raise ValueError(f"unknown storage backend {backend!r} (known: {', '.join(BACKENDS)})")
