"""What is PostgreSQL's own: connection errors that never show the password, schema versions and their
lock, read-only connections, NUL characters, and query plans that keep chathistory on the index.

The backend-neutral behaviour is the rest of the storage suite, which runs on PostgreSQL too."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from salotto.storage import AlreadyExists, HistoryMessage, SchemaTooNew, StorageError, open_storage
from salotto.storage.postgresql_migrations import MIGRATIONS, SCHEMA_VERSION
from tests.postgres import PASSWORD, PostgresServer

from .conftest import message

psycopg = pytest.importorskip("psycopg")
ROOT = Path(__file__).resolve().parents[2]


def _connect(url: str) -> Any:
    return psycopg.connect(url, autocommit=True)


def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    open_storage("postgresql", postgres_url).close()
    with _connect(postgres_url) as db:
        db.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    for readonly in (False, True):
        with pytest.raises(SchemaTooNew, match="newer"):
            open_storage("postgresql", postgres_url, readonly=readonly)
    with _connect(postgres_url) as db:  # refused, not touched
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION + 1,)]


def test_a_wrong_password_is_a_clear_error_without_the_password(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database()
    try:
        url = postgres_server.url(name, password="Wr0ng-s3cret")
        with pytest.raises(StorageError) as info:
            open_storage("postgresql", url)
        text = str(info.value)
        assert text.startswith(f"cannot connect to PostgreSQL at postgresql://salotto:***@127.0.0.1:"
                               f"{postgres_server.port}/{name}: "), text
        assert "password authentication failed" in text, text
        assert "Wr0ng-s3cret" not in text and "\n" not in text
        assert info.value.__cause__ is None and info.value.__suppress_context__  # no psycopg chain to print
    finally:
        postgres_server.drop_database(name)


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql://salotto:{PASSWORD}@127.0.0.1:{port}/salotto"
    for readonly in (False, True):
        with pytest.raises(StorageError) as info:
            open_storage("postgresql", url, readonly=readonly)
        text = str(info.value)
        assert f"cannot connect to PostgreSQL at postgresql://salotto:***@127.0.0.1:{port}/salotto" in text
        assert "Connection refused" in text and PASSWORD not in text and "\n" not in text


def test_a_password_in_the_query_string_is_masked_too() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://salotto@127.0.0.1:{port}/salotto?password={PASSWORD}"
    with pytest.raises(StorageError) as info:
        open_storage("postgresql", url)
    assert PASSWORD not in str(info.value) and "password=***" in str(info.value)


def test_readonly_connections_refuse_writes_and_need_a_migrated_database(postgres_url: str) -> None:
    with pytest.raises(StorageError, match="migrate"):
        open_storage("postgresql", postgres_url, readonly=True)
    writer = open_storage("postgresql", postgres_url)
    reader = open_storage("postgresql", postgres_url, readonly=True)
    try:
        for write in (
            lambda: reader.create_account("alice", "hash", 1.0),
            lambda: reader.append_messages([message(1)]),
            lambda: reader.set_read_marker("alice", "#chan", 5.0),
        ):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                write()
        writer.create_account("alice", "hash", 1.0)
        assert reader.get_account("alice") is not None  # reads work, and see what the writer committed
    finally:
        reader.close()
        writer.close()


def test_concurrent_first_opens_migrate_once(postgres_url: str) -> None:
    """Servers (or a server and `salotto export`) starting together on an empty database: the advisory
    lock lets one migrate while the others wait, then find the work done."""
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait()
            open_storage("postgresql", postgres_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with _connect(postgres_url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_migrations_are_applied_in_one_transaction(postgres_url: str) -> None:
    from salotto.storage.postgresql import migrate

    with _connect(postgres_url) as db:
        assert migrate(db) == SCHEMA_VERSION
        extra = (*MIGRATIONS, "CREATE TABLE later (x integer);")
        assert migrate(db, extra) == SCHEMA_VERSION + 1
        # Two steps, the second failing halfway: neither is kept, the version stays.
        broken = (*extra, "CREATE TABLE also_later (x integer);",
                  "CREATE TABLE half (x integer); CREATE TABLE accounts (y integer);")
        with pytest.raises(StorageError, match=f"version {SCHEMA_VERSION + 3}"):
            migrate(db, broken)
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION + 1,)]
        assert db.execute("SELECT to_regclass('half'), to_regclass('also_later')").fetchone() == (None, None)
        with pytest.raises(SchemaTooNew):
            migrate(db, MIGRATIONS)


@pytest.mark.parametrize("where", ["text", "sender", "tags"])
def test_a_nul_character_is_a_value_error_and_stores_nothing(postgres_url: str, where: str) -> None:
    storage = open_storage("postgresql", postgres_url)
    try:
        good = message(1)
        bad = message(2)._replace(**{where: {"+draft/react": "a\x00b"} if where == "tags" else "a\x00b"})
        with pytest.raises(ValueError, match="NUL"):
            storage.append_messages([good, bad])
        # Inside a caller's transaction too, which stays usable.
        with storage.transaction():
            with pytest.raises(ValueError):
                storage.append_messages([bad])
            storage.append_messages([good])
        assert [m.msgid for m in storage.latest("#chan", 10)] == [good.msgid]
    finally:
        storage.close()


def test_a_duplicate_inside_a_transaction_leaves_it_usable(postgres_url: str) -> None:
    storage = open_storage("postgresql", postgres_url)
    try:
        with storage.transaction():
            storage.append_messages([message(1)])
            with pytest.raises(AlreadyExists):
                storage.append_messages([message(2), message(1)])
            storage.create_account("alice", "h", 1.0)
            with pytest.raises(AlreadyExists):
                storage.create_account("Alice", "h", 1.0)
            storage.append_messages([message(3)])
        assert [m.msgid for m in storage.latest("#chan", 10)] == ["m0001", "m0003"]
        assert storage.get_account("alice") is not None
    finally:
        storage.close()


def test_tags_round_trip_as_json(postgres_url: str) -> None:
    storage = open_storage("postgresql", postgres_url)
    try:
        tags = {"+draft/reply": "m1", "+typing": "active", "+x": "é 🎉 \\ \" ;"}
        storage.append_messages([HistoryMessage("t1", "#chan", 5.0, "n!u@h", None, "TAGMSG", "", tags)])
        got = storage.get_message("t1")
        assert got is not None and dict(got.tags) == tags
        with _connect(postgres_url) as db:
            assert db.execute("SELECT jsonb_typeof(tags) FROM messages").fetchone() == ("object",)
    finally:
        storage.close()


@pytest.fixture
def analysed(postgres_url: str) -> str:
    """A database with 20,000 messages over 20 targets, analysed: plans as on a real store."""
    storage = open_storage("postgresql", postgres_url)
    try:
        for batch in range(4):
            numbers = range(batch * 5000, (batch + 1) * 5000)
            storage.append_messages([message(i, f"#t{i % 20}", 1000.0 + i / 10, msgid=f"x{i}") for i in numbers])
    finally:
        storage.close()
    with _connect(postgres_url) as db:
        db.execute("ANALYZE messages")
    return postgres_url


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM messages WHERE target = '#t3' AND true ORDER BY time_ms DESC, seq DESC LIMIT 100",
        "SELECT * FROM messages WHERE target = '#t3' AND (time_ms, seq) < (1500000, 5000) "
        "ORDER BY time_ms DESC, seq DESC LIMIT 100",
        "SELECT * FROM messages WHERE target = '#t3' AND (time_ms, seq) > (1100000, 500) "
        "ORDER BY time_ms ASC, seq ASC LIMIT 100",
        "SELECT * FROM messages WHERE target = '#t3' AND time_ms > 1100000 AND (time_ms, seq) < (1500000, 5000) "
        "ORDER BY time_ms ASC, seq ASC LIMIT 100",
    ],
)
def test_history_queries_are_index_scans_without_a_sort(analysed: str, sql: str) -> None:
    with _connect(analysed) as db:
        plan = "\n".join(row[0] for row in db.execute("EXPLAIN " + sql))
    assert "messages_target_time" in plan, plan
    assert "Sort" not in plan and "Seq Scan" not in plan, plan
    # The row-value bound is an index condition, not a filter over the whole target.
    assert "Filter" not in plan, plan


def test_msgid_lookups_use_the_unique_index(analysed: str) -> None:
    with _connect(analysed) as db:
        plan = "\n".join(row[0] for row in db.execute("EXPLAIN SELECT * FROM messages WHERE msgid = 'x77'"))
    assert "messages_msgid" in plan and "Seq Scan" not in plan, plan


def test_a_lost_connection_is_replaced_on_the_next_call(postgres_server: PostgresServer, postgres_url: str) -> None:
    """The database server restarted, or the network dropped: the call that meets it fails, the next one
    connects again. Inside a transaction block the block fails whole, none of it lands."""
    database = postgres_url.rsplit("/", 1)[1]

    def kill_connections() -> None:
        postgres_server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")

    storage = open_storage("postgresql", postgres_url)
    try:
        storage.create_account("alice", "h", 1.0)
        kill_connections()
        with pytest.raises(psycopg.OperationalError):
            storage.get_account("alice")
        assert storage.get_account("alice") is not None
        kill_connections()
        with pytest.raises(psycopg.OperationalError), storage.transaction():
            storage.create_account("bob", "h", 1.0)
            storage.create_account("carol", "h", 1.0)
        storage.append_messages([message(1)])
        assert [a.name for a in storage.list_accounts()] == ["alice"]
    finally:
        storage.close()


def test_without_postgresql_its_tests_are_skipped_saying_why(tmp_path: Path) -> None:
    plugin = tmp_path / "no_postgres.py"
    plugin.write_text("import tests.postgres\ntests.postgres.postgres_bin_dir = lambda: None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), str(ROOT / "src")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no_postgres", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/storage/test_accounts_channels.py", "-k", "postgresql"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=100, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "PostgreSQL is not installed: apt-get install postgresql" in done.stdout, done.stdout[-3000:]
    assert " passed" not in done.stdout and " skipped" in done.stdout, done.stdout[-3000:]


def test_a_database_gone_quiet_is_noticed_in_a_minute_not_fifteen(postgres_url: str) -> None:
    """A network cut mid-query must not hang the store's writer thread until the kernel gives up on TCP:
    every connection has keepalives and a TCP user timeout, and statements and idle transactions a time
    limit on the server; a URL that sets one of them keeps its own."""
    storage = open_storage("postgresql", postgres_url)
    try:
        conn = storage._conn  # type: ignore[attr-defined]
        settings = conn.info.get_parameters()
        assert (settings["keepalives"], settings["keepalives_idle"], settings["tcp_user_timeout"]) == (
            "1", "30", "60000")
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "1min"
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "1min"
    finally:
        storage.close()
    own = open_storage("postgresql", postgres_url + "?options=-c%20statement_timeout%3D5s&keepalives_idle=7")
    try:
        conn = own._conn  # type: ignore[attr-defined]
        assert conn.info.get_parameters()["keepalives_idle"] == "7"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "5s"
    finally:
        own.close()
