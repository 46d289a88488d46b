"""Backups and restores of a data directory (salotto.storage.backup), on real files.

The command line and a real running server are in tests/e2e/test_backup.py; here, what a backup file
holds: the database's messages and the journals' (each once), at this salotto's schema, as one file.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from salotto.storage import HistoryMessage, Storage, conversation_key, open_storage
from salotto.storage.backup import BackupError, backup, inspect, journal_messages, restore
from salotto.storage.journal import JOURNAL_FILENAMES, Journal
from salotto.storage.migrations import MIGRATIONS, SCHEMA_VERSION
from salotto.storage.sqlite import DB_FILENAME, SqliteStorage, migrate


def _message(n: int, target: str = "#lobby", **fields: object) -> HistoryMessage:
    values: dict[str, object] = {
        "msgid": f"0badcafe-{n:x}", "target": target, "time": 1_700_000_000 + n, "sender": "alice!~a@127.0.0.1",
        "account": None, "command": "PRIVMSG", "text": f"line {n}",
    }
    values.update(fields)
    return HistoryMessage(**values)  # type: ignore[arg-type]


@contextmanager
def _opened(path: Path) -> Iterator[Storage]:
    """A backup file (any name) opened as a store, read-only."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)) as db:
        yield SqliteStorage(db, readonly=True)


def _texts(path: Path, target: str = "#lobby") -> list[str]:
    with _opened(path) as storage:
        return [m.text for m in storage.latest(target, 10_000)]


def _journal(data_dir: Path, index: int, messages: list[HistoryMessage]) -> None:
    journal = Journal(data_dir / JOURNAL_FILENAMES[index])
    try:
        journal.append(messages)
    finally:
        journal.close()


def test_a_backup_holds_the_database_and_the_journals_each_message_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = open_storage("sqlite", data)
    store.append_messages([_message(n) for n in range(1, 6)])
    store.close()
    # What a running server has journaled and not stored yet, and a journal record stored already (the
    # storer empties a journal only after its batch is in the database).
    private = _message(9, conversation_key("alice", "bob"), parties=("alice", "bob"), account="alice",
                       tags={"+draft/react": "x"})
    _journal(data, 0, [_message(4), _message(5), _message(6)])
    _journal(data, 1, [_message(7), _message(8), private])

    result = backup(data, tmp_path / "copy.db")

    assert result.from_journals == 4
    assert (result.contents.messages, result.contents.schema_version) == (9, SCHEMA_VERSION)
    assert _texts(tmp_path / "copy.db") == [f"line {n}" for n in range(1, 9)]
    with _opened(tmp_path / "copy.db") as storage:
        [stored] = storage.latest(conversation_key("alice", "bob"), 10)
        assert (stored.text, stored.account, dict(stored.tags)) == ("line 9", "alice", {"+draft/react": "x"})
        # The conversation is listed for both sides, as the server would have stored it.
        assert [t.name for t in storage.targets([], "bob", 0, 2e9, 10)] == ["alice"]
    # The live data directory is as it was: the journals are the server's to empty.
    assert len(journal_messages(data)) == 6


def test_a_backup_file_is_one_private_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_storage("sqlite", data).close()
    old = os.umask(0)
    try:
        backup(data, tmp_path / "copy.db")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "copy.db").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "data"]  # no -wal, no leftover
    with closing(sqlite3.connect(tmp_path / "copy.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_backup_of_an_older_schema_is_brought_to_this_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with closing(sqlite3.connect(data / DB_FILENAME, isolation_level=None)) as db:
        migrate(db, MIGRATIONS[:1])
        db.execute("INSERT INTO messages (msgid, target, time_ms, sender, command, text) "
                   "VALUES ('old-1', '#lobby', 1000, 'a!b@c', 'PRIVMSG', 'from version 1')")
    _journal(data, 0, [_message(1)])
    result = backup(data, tmp_path / "copy.db")
    assert (result.source_version, result.contents.schema_version) == (1, SCHEMA_VERSION)
    assert _texts(tmp_path / "copy.db") == ["from version 1", "line 1"]


def test_backup_refusals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with pytest.raises(BackupError, match="no data directory"):
        backup(data, tmp_path / "copy.db")
    data.mkdir()
    with pytest.raises(BackupError, match=f"no salotto database in {data}"):
        backup(data, tmp_path / "copy.db")
    open_storage("sqlite", data).close()
    for own in (data / DB_FILENAME, data / JOURNAL_FILENAMES[0]):
        with pytest.raises(BackupError, match="data directory's own files"):
            backup(data, own, force=True)
    (tmp_path / "copy.db").write_text("mine")
    with pytest.raises(BackupError, match="exists; use --force"):
        backup(data, tmp_path / "copy.db")
    assert (tmp_path / "copy.db").read_text() == "mine"
    with pytest.raises(BackupError, match="is a directory"):
        backup(data, tmp_path, force=True)
    with pytest.raises(BackupError, match="no directory"):
        backup(data, tmp_path / "nowhere" / "copy.db")
    backup(data, tmp_path / "copy.db", force=True)
    assert inspect(tmp_path / "copy.db").schema_version == SCHEMA_VERSION
    with sqlite3.connect(data / DB_FILENAME) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BackupError, match="newer than this salotto"):
        backup(data, tmp_path / "newer.db")
    assert not (tmp_path / "newer.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.db", "data"]  # no partial file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_backup_into_a_directory_it_cannot_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_storage("sqlite", data).close()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(BackupError, match=f"cannot write {locked / 'copy.db'}: Permission denied"):
        backup(data, locked / "copy.db")


def test_restore_replaces_the_database_and_empties_the_journals(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    store = open_storage("sqlite", first)
    store.append_messages([_message(1)])
    store.create_account("alice", "hash", 1.0)
    store.close()
    backup(first, tmp_path / "copy.db")

    store = open_storage("sqlite", second)
    store.append_messages([_message(2)])
    store.close()
    _journal(second, 1, [_message(3)])  # a crashed server's leftover: it belongs to the database replaced
    with pytest.raises(BackupError, match=r"holds salotto data already \(salotto.db, history-1.journal\)"):
        restore(tmp_path / "copy.db", second)

    contents = restore(tmp_path / "copy.db", second, force=True)

    assert (contents.accounts, contents.messages) == (1, 1)
    assert journal_messages(second) == []
    store = open_storage("sqlite", second)
    try:
        assert [m.text for m in store.latest("#lobby", 10)] == ["line 1"]
        assert store.get_account("alice") is not None
    finally:
        store.close()


def test_restore_refuses_while_a_server_holds_the_journals(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_storage("sqlite", data).close()
    backup(data, tmp_path / "copy.db")
    held = Journal(data / JOURNAL_FILENAMES[0])  # as a running server holds it
    try:
        with pytest.raises(BackupError, match=r"a salotto server is running on .*: stop it first"):
            restore(tmp_path / "copy.db", data, force=True)
    finally:
        held.close()


def test_restore_refuses_while_the_database_is_open_elsewhere(tmp_path: Path) -> None:
    """A server with history off holds no journal, only its connection to the database."""
    data = tmp_path / "data"
    open_storage("sqlite", data).close()
    backup(data, tmp_path / "copy.db")
    server = open_storage("sqlite", data)
    try:
        with pytest.raises(BackupError, match="open in another process"):
            restore(tmp_path / "copy.db", data, force=True)
    finally:
        server.close()
    restore(tmp_path / "copy.db", data, force=True)


def _other_sqlite(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (x)")


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda p: p.write_text("hello\n"), "not a salotto backup"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "cannot read"),
        (lambda p: _other_sqlite(p), "but not salotto's"),
    ],
    ids=["text", "directory", "missing", "other-sqlite"],
)
def test_restore_refuses_what_is_not_a_salotto_database(tmp_path: Path, make: object, error: str) -> None:
    source = tmp_path / "source.db"
    make(source)  # type: ignore[operator]
    with pytest.raises(BackupError, match=error):
        restore(source, tmp_path / "data")
    assert not (tmp_path / "data" / DB_FILENAME).exists()


def test_restore_refuses_a_newer_schema(tmp_path: Path) -> None:
    open_storage("sqlite", tmp_path / "data").close()
    backup(tmp_path / "data", tmp_path / "copy.db")
    with closing(sqlite3.connect(tmp_path / "copy.db")) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.commit()
    with pytest.raises(BackupError, match=f"schema version {SCHEMA_VERSION + 1}; this salotto knows up to"):
        restore(tmp_path / "copy.db", tmp_path / "fresh")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
def test_restore_run_as_root_gives_the_files_to_the_data_directorys_owner(tmp_path: Path) -> None:
    """``sudo salotto restore`` into a service's data directory: the service's user must open the files."""
    open_storage("sqlite", tmp_path / "source").close()
    backup(tmp_path / "source", tmp_path / "copy.db")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, 65534, 65534)  # nobody
    restore(tmp_path / "copy.db", data)
    owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in data.iterdir()}
    assert owners == {name: (65534, 65534) for name in (DB_FILENAME, *JOURNAL_FILENAMES)}


def test_the_journals_messages_a_backup_adds_are_found_by_search(tmp_path: Path) -> None:
    from salotto.storage.search import SearchQuery, words

    data = tmp_path / "data"
    store = open_storage("sqlite", data)
    store.append_messages([_message(1, text="stored needle")])
    store.close()
    _journal(data, 0, [_message(2, text="journaled needle")])

    backup(data, tmp_path / "copy.db")

    with _opened(tmp_path / "copy.db") as storage:
        assert [m.text for m in storage.search(SearchQuery({"#lobby": 0.0}, words("needle")))] == [
            "stored needle", "journaled needle"]
