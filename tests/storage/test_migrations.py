"""Schema versions: an empty store is migrated to the current version; a newer one is refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from salotto.storage import AlreadyExists, HistoryMessage, Ref, SchemaTooNew, Storage, StorageError, open_storage
from salotto.storage.migrations import MIGRATIONS, SCHEMA_VERSION
from salotto.storage.postgresql_migrations import SCHEMA_VERSION as PG_SCHEMA_VERSION
from salotto.storage.sqlite import DB_FILENAME, migrate

from .conftest import Reopen


def test_empty_store_is_migrated_to_the_current_version(storage: Storage, reopen: Reopen, backend: str) -> None:
    current = PG_SCHEMA_VERSION if backend == "postgresql" else SCHEMA_VERSION
    assert storage.schema_version() == current
    storage.close()
    assert reopen().schema_version() == current  # opening again changes nothing


def test_unknown_backend(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown storage backend"):
        open_storage("postgres-someday", data_dir)


# -- SQLite specifics ----------------------------------------------------------------------------


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    open_storage("sqlite", tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for readonly in (False, True):
        with pytest.raises(SchemaTooNew, match="newer"):
            open_storage("sqlite", tmp_path, readonly=readonly)


def test_sqlite_wal_mode(tmp_path: Path) -> None:
    open_storage("sqlite", tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_readonly_needs_a_migrated_file(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no database"):
        open_storage("sqlite", tmp_path, readonly=True)
    sqlite3.connect(tmp_path / DB_FILENAME).close()
    with pytest.raises(StorageError, match="migrate"):
        open_storage("sqlite", tmp_path, readonly=True)


def test_migrations_run_in_order_and_atomically() -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    assert migrate(db) == SCHEMA_VERSION
    extra = (*MIGRATIONS, "CREATE TABLE later (x INTEGER);")
    assert migrate(db, extra) == SCHEMA_VERSION + 1
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    # A step that fails halfway leaves the database at the previous version, with none of its changes.
    broken = (*extra, "CREATE TABLE half (x INTEGER); CREATE TABLE accounts (y INTEGER);")
    with pytest.raises(StorageError, match=f"version {SCHEMA_VERSION + 2}"):
        migrate(db, broken)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    with pytest.raises(SchemaTooNew):
        migrate(db, MIGRATIONS)


def test_sqlite_version_1_store_is_migrated_with_its_history(tmp_path: Path) -> None:
    """A store written with schema 1 (msgids as text, an index on time alone) opens migrated: its history
    is kept, its msgids are still found, and the server's new messages page on from the old ones."""
    old = [f"0badcafe-{i + 1:x}" for i in range(4)] + ["imported-1"]
    with sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None) as db:
        assert migrate(db, MIGRATIONS[:1]) == 1
        db.executemany(
            "INSERT INTO messages (msgid, target, time_ms, sender, command, text) VALUES (?, '#chan', ?, 'n!u@h', "
            "'PRIVMSG', 'hi')",
            [(msgid, 1000 * i) for i, msgid in enumerate(old)],
        )
    db.close()
    storage = open_storage("sqlite", tmp_path)
    try:
        assert storage.schema_version() == SCHEMA_VERSION
        storage.append_messages(
            [HistoryMessage(f"5a1077c0-{i + 1:x}", "#chan", 10.0 + i, "n!u@h", None, "PRIVMSG", "hi") for i in range(2)]
        )
        assert [m.msgid for m in storage.latest("#chan", 10)] == [*old, "5a1077c0-1", "5a1077c0-2"]
        assert [m.msgid for m in storage.after("#chan", Ref.by_msgid("0badcafe-4"), 10)] == [
            "imported-1", "5a1077c0-1", "5a1077c0-2"]
        message = storage.get_message("0badcafe-2")
        assert message is not None and message.time == 1.0
        with pytest.raises(AlreadyExists):
            storage.append_messages([HistoryMessage("imported-1", "#chan", 20.0, "n!u@h", None, "PRIVMSG", "hi")])
        assert storage.prune_history(cutoff=2.5, max_per_target=None) == 3
    finally:
        storage.close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    db.close()
    # The time index and the unique msgid column's automatic index are gone.
    assert {name for name in indexes if "messages" in name} == {"messages_target_time", "messages_msgid"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM messages WHERE target = ? AND time_ms <= ? AND (time_ms < ? OR id < ?) "
        "ORDER BY time_ms DESC, id DESC LIMIT ?",
        "SELECT * FROM messages WHERE target = ? AND 1 ORDER BY time_ms DESC, id DESC LIMIT ?",
        "SELECT * FROM messages WHERE target = ? AND time_ms > ? ORDER BY time_ms ASC, id ASC LIMIT ?",
    ],
)
def test_sqlite_history_queries_use_the_index_without_sorting(tmp_path: Path, sql: str) -> None:
    open_storage("sqlite", tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, [0] * sql.count("?")))
    assert "messages_target_time" in plan
    assert "TEMP B-TREE" not in plan


@pytest.mark.parametrize(
    ("sql", "how"),
    [
        ("SELECT time_ms, id FROM messages WHERE id = ? AND target = ?", "USING INTEGER PRIMARY KEY"),
        ("SELECT time_ms, id FROM messages WHERE msgid = ? AND target = ?", "USING INDEX messages_msgid"),
        ("SELECT * FROM messages WHERE msgid = ?", "USING INDEX messages_msgid"),
    ],
)
def test_sqlite_msgid_lookups_are_one_seek(tmp_path: Path, sql: str, how: str) -> None:
    """The server's msgids are found by rowid, any other by the partial msgid index: never a scan."""
    open_storage("sqlite", tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as db:
        plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, [0] * sql.count("?")))
    db.close()
    assert how in plan and "SCAN" not in plan


def test_sqlite_version_2_store_drops_scram_keys_weaker_than_owasp(tmp_path: Path) -> None:
    """SCRAM keys made with 10,000 PBKDF2 rounds (what version 2 stored) are dropped on opening: a stolen
    database cracked through them would undo scrypt. The scrypt hash stays, so the password still works;
    keys made with today's rounds stay too."""
    from salotto.passwords import SCRAM_ITERATIONS, make_account_secret, scram_credentials, verify_password

    weak = make_account_secret("old password", scram_iterations=10_000)
    strong = make_account_secret("new password")
    with sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None) as db:
        assert migrate(db, MIGRATIONS[:2]) == 2
        db.executemany("INSERT INTO accounts (name_cf, name, password_hash, created) VALUES (?, ?, ?, 0)",
                       [("old", "old", weak), ("new", "new", strong), ("plain", "plain", weak.split(";")[0])])
    storage = open_storage("sqlite", tmp_path)
    old, new, plain = (storage.get_account(name) for name in ("old", "new", "plain"))
    assert old is not None and new is not None and plain is not None
    assert scram_credentials(old.password_hash) is None
    assert old.password_hash == weak.split(";")[0] and verify_password("old password", old.password_hash)
    credentials = scram_credentials(new.password_hash)
    assert new.password_hash == strong and credentials is not None and credentials.iterations == SCRAM_ITERATIONS
    assert plain.password_hash == weak.split(";")[0]
    storage.close()
