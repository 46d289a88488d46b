"""The SQLite writer's WAL under writes that never pause: the background checkpointer keeps it bounded."""

from __future__ import annotations

import time
from pathlib import Path

from salotto.storage import HistoryMessage, open_storage
from salotto.storage.sqlite import DB_FILENAME, WAL_HARD_LIMIT_FACTOR, SqliteStorage

LIMIT_BYTES = 256 * 1024


def test_wal_stays_bounded_under_sustained_writes(tmp_path: Path) -> None:
    storage = open_storage("sqlite", tmp_path)
    assert isinstance(storage, SqliteStorage)
    stop = storage.checkpoint_in_background(interval_s=0.01, wal_limit_bytes=LIMIT_BYTES)
    wal = tmp_path / f"{DB_FILENAME}-wal"
    largest = 0
    try:
        # A second of back-to-back commits, each a few pages of WAL: tens of megabytes unbounded.
        deadline = time.monotonic() + 1.0
        n = 0
        while time.monotonic() < deadline:
            storage.append_messages(
                [HistoryMessage(f"5a1077c0-{n + k + 1:x}", "#chan", 1000.0 + n, "n!u@h", None, "PRIVMSG", "x" * 200)
                 for k in range(8)]
            )
            n += 8
            if n % 800 == 0:
                largest = max(largest, wal.stat().st_size)
    finally:
        stop()
    assert n >= 4000, "too few commits to tell"
    # Bounded: the limit, plus what is written between two checks of the checkpointer (10 ms of
    # back-to-back commits: about 10 times the limit here); when the checkpointer does not get the CPU
    # (CI once saw 32 MB here), the writer restarts the WAL itself past WAL_HARD_LIMIT_FACTOR times the
    # limit. Unbounded, the second's WAL would be hundreds of times the limit.
    assert largest < 64 * LIMIT_BYTES
    assert len(storage.latest("#chan", n + 1)) == n
    storage.close()


def test_the_writer_bounds_the_wal_when_the_checkpoint_thread_does_not_run(tmp_path: Path) -> None:
    """A checkpoint thread starved of CPU (here: it never wakes) must not leave the WAL to grow: past
    WAL_HARD_LIMIT_FACTOR times the limit the writer restarts it after its commit by itself."""
    storage = open_storage("sqlite", tmp_path)
    assert isinstance(storage, SqliteStorage)
    stop = storage.checkpoint_in_background(interval_s=3600.0, wal_limit_bytes=LIMIT_BYTES)
    wal = tmp_path / f"{DB_FILENAME}-wal"
    largest = 0
    try:
        for n in range(0, 4000, 8):  # some 15 MB of WAL unbounded
            storage.append_messages(
                [HistoryMessage(f"5a1077c0-{n + k + 1:x}", "#chan", 1000.0 + n, "n!u@h", None, "PRIVMSG", "x" * 200)
                 for k in range(8)]
            )
            largest = max(largest, wal.stat().st_size)
    finally:
        stop()
    assert largest < (WAL_HARD_LIMIT_FACTOR + 1) * LIMIT_BYTES
    assert len(storage.latest("#chan", 4001)) == 4000
    storage.close()


def test_the_database_and_its_wal_are_private_to_the_servers_user(tmp_path: Path) -> None:
    """They hold password hashes and private messages: mode 600, in a directory the server creates 700."""
    data_dir = tmp_path / "data"
    storage = open_storage("sqlite", data_dir)
    storage.create_account("alice", "h1", 1.0)
    try:
        for name in (DB_FILENAME, DB_FILENAME + "-wal", DB_FILENAME + "-shm"):
            assert (data_dir / name).stat().st_mode & 0o777 == 0o600, name
        assert data_dir.stat().st_mode & 0o777 == 0o700
    finally:
        storage.close()
