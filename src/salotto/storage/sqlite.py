"""The SQLite backend: one file, ``salotto.db``, in the data directory (stdlib ``sqlite3``).

Durability. The database runs in WAL mode with ``synchronous=NORMAL``: a commit appends its pages to
``salotto.db-wal`` with ``write()`` and returns without ``fsync``; the WAL is synced when it is
checkpointed into the main file. What that buys and costs:

- A crash of the *process* (``kill -9``, an exception, the OOM killer) loses nothing committed: the
  written pages are in the kernel's page cache, which outlives the process, and the next open replays
  the WAL. This is the promise salotto makes (a message anyone received is in history after a restart),
  and ``tests/storage/test_durability.py`` checks it with SIGKILL.
- A crash of the *machine* (kernel panic, power loss) can lose the transactions committed since the last
  checkpoint, but never corrupts the database: WAL frames carry checksums and an incomplete tail is
  ignored. ``synchronous=FULL`` would close that window at the price of one fsync per commit (a
  millisecond to tens of milliseconds, per loop tick that writes); a chat server's last second of
  messages before a power cut is not worth that.

Writers: the server has one read-write connection, on the store's storer thread (see
:mod:`salotto.storage.store`). Offline tools use one connection. Readers open ``readonly=True``
connections, which in WAL mode never block a writer nor wait for one.

Checkpoints. By default SQLite checkpoints inside the COMMIT that grows the WAL past 1000 pages, and
that checkpoint fsyncs: tens of milliseconds on the writer's thread. :meth:`SqliteStorage.checkpoint_in_background`
turns that off for the writer and checkpoints from a thread of its own instead (PASSIVE: never blocks the
writer), so a commit only ever appends to the WAL; under writes that never pause, the writer starts the
WAL over once it passes :data:`WAL_LIMIT_BYTES`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from salotto.proto.casemap import casefold
from salotto.storage.base import (
    AlreadyExists,
    AlwaysOnUser,
    PushSubscription,
    RegisteredChannel,
    SchemaTooNew,
    StorageError,
    StoredAccount,
    UnknownChannel,
    UploadRecord,
)
from salotto.storage.migrations import MIGRATIONS, SCHEMA_VERSION
from salotto.storage.sqlite_history import SqliteHistory, from_ms, to_ms
from salotto.storage.sqlite_search import SqliteSearch

__all__ = ["DB_FILENAME", "WAL_LIMIT_BYTES", "SqliteStorage", "migrate"]

DB_FILENAME: Final = "salotto.db"
# How long a connection waits for a lock before failing with "database is locked": it matters for a
# checkpoint racing a reader, or an operator's sqlite3 shell holding a write lock.
BUSY_TIMEOUT_MS: Final = 5000
FOUNDER_LEVEL: Final = "founder"
# The WAL size past which the writer starts the WAL over (see checkpoint_in_background). Each time
# holds the writer for two syncs and a little copying, a few milliseconds; under sustained load the WAL
# grows 10 to 100 MB/s (each commit writes whole pages: the fanout benchmark is at the low end, private
# messages spread over many conversations at the high end), so this is every 3 to 25 s. SQLite's own
# default, 1000 pages (4 MB), would stall many times a second.
WAL_LIMIT_BYTES: Final = 256 * 1024 * 1024
# Past this many times wal_limit_bytes the writer restarts the WAL itself after a commit: the checkpoint
# thread, which normally asks for that, may be starved of CPU for a while (it was, in CI).
WAL_HARD_LIMIT_FACTOR: Final = 4
# How long the writer waits for readers to leave the WAL before starting it over; it tries again after
# its next commit when they have not.
RESTART_WAIT_MS: Final = 50

_CHANNEL_COLUMNS: Final = (
    "name_cf, name, founder, registered, topic, topic_setter, topic_time, modes, chan_key, user_limit"
)


def migrate(db: sqlite3.Connection, migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Bring the database to ``len(migrations)``, one transaction per step; return the version reached.

    Raises :class:`SchemaTooNew` if the database is already past the last known version."""
    current = int(db.execute("PRAGMA user_version").fetchone()[0])
    if current > len(migrations):
        raise SchemaTooNew(
            f"database schema version {current} is newer than this salotto supports ({len(migrations)}); "
            "upgrade salotto or use another data_dir"
        )
    for version in range(current, len(migrations)):
        # One script per step, BEGIN to COMMIT: a step is applied whole or not at all.
        try:
            db.executescript(f"BEGIN IMMEDIATE;\n{migrations[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise StorageError(f"migration to schema version {version + 1} failed: {exc}") from exc
    return len(migrations)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class SqliteStorage(SqliteHistory, SqliteSearch):
    """A :class:`~salotto.storage.base.Storage` on one SQLite connection. Not thread-safe: one thread
    at a time (the worker guarantees it)."""

    def __init__(self, db: sqlite3.Connection, *, readonly: bool) -> None:
        self._db = db
        self._readonly = readonly
        self._depth = 0
        self._restart_wal = False  # set by the checkpoint thread: see checkpoint_in_background
        # The WAL file, and the size past which the writer restarts it itself (checkpoint_in_background).
        self._wal_file: str | None = None
        self._wal_hard_limit = 0
        self._conversation_names = {}
        # A writer keeps the search index as it finds it (its trigger there or not): whoever opens one,
        # open() or a backup completing its copy, indexes what it appends if the index is kept.
        self._search_indexed = not readonly and self.search_enabled()

    @classmethod
    def open(cls, data_dir: str | Path, *, readonly: bool = False, search: bool | None = None) -> SqliteStorage:
        """Open ``data_dir/salotto.db``.

        Read-write: create the directory and file if needed, switch to WAL and run the migrations.
        Read-only: the file must exist at the current schema version (open the writer first).
        ``search`` (read-write only): keep the full-text index (built for what is stored if it was off) or
        drop it (see :meth:`SqliteSearch.set_search`); None leaves it as it is.

        Raises:
            SchemaTooNew: the file was written by a newer salotto.
            StorageError: read-only open of a missing or not yet migrated database.
        """
        path = Path(data_dir) / DB_FILENAME
        if readonly:
            if not path.exists():
                raise StorageError(f"no database at {path}")
            db = sqlite3.connect(
                f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Accounts' password hashes and private messages: readable by the server's user alone. SQLite
            # gives its -wal and -shm files the database file's mode, so creating this one is enough.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            # The history INSERTs alone are up to 224 statements (salotto.storage.sqlite_history).
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=384)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA foreign_keys = ON")
            if readonly:
                db.execute("PRAGMA query_only = ON")
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise SchemaTooNew(f"database schema version {version} is newer than {SCHEMA_VERSION}")
                if version < SCHEMA_VERSION:
                    raise StorageError(f"database schema version {version}: open it read-write first to migrate")
            else:
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StorageError(f"cannot switch {path} to WAL mode (got {mode!r})")
                # See the module docstring: survives kill -9, may lose the last commits on power loss.
                db.execute("PRAGMA synchronous = NORMAL")
                migrate(db)
            storage = cls(db, readonly=readonly)
            if not readonly and search is not None:
                storage.set_search(search)
        except BaseException:
            db.close()
            raise
        return storage

    # -- life ------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth == 0:
            # IMMEDIATE takes the write lock up front, so a write transaction never fails halfway
            # on a lock upgrade.
            self._db.execute("BEGIN" if self._readonly else "BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            if self._restart_wal or (self._wal_file is not None and _file_size(self._wal_file) > self._wal_hard_limit):
                self._checkpoint_and_restart_wal()
        else:
            name = f"sp{self._depth}"
            self._db.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._db.execute(f"ROLLBACK TO {name}")
                raise
            finally:
                self._depth -= 1
                self._db.execute(f"RELEASE {name}")

    def close(self) -> None:
        self._db.close()

    def start_maintenance(self) -> Callable[[], None]:
        return self.checkpoint_in_background()

    def checkpoint_in_background(
        self, interval_s: float = 1.0, wal_limit_bytes: int = WAL_LIMIT_BYTES
    ) -> Callable[[], None]:
        """Move WAL checkpoints (and their fsync) off this connection to a thread; returns its stop.

        A PASSIVE checkpoint never blocks the writer, but under writes that never pause none of them
        copies the whole WAL (the writer appends while it syncs), and SQLite starts the WAL over only after
        one did: it would grow without end (megabytes a second: each commit writes whole pages). So once
        the WAL is past ``wal_limit_bytes``, this connection's next commit is followed by a RESTART
        checkpoint of its own: the few frames the thread has not copied, two syncs (milliseconds, on the
        writer's thread), and the WAL starts over, its file cut back to the limit.

        The thread may not get to run (a machine busy for a moment): past WAL_HARD_LIMIT_FACTOR times the
        limit, the writer restarts the WAL after its commit by itself, whatever the thread did."""
        path = self._db.execute("PRAGMA database_list").fetchone()[2]
        self._wal_file = path + "-wal"
        self._wal_hard_limit = WAL_HARD_LIMIT_FACTOR * wal_limit_bytes
        page_bytes = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._db.execute("PRAGMA wal_autocheckpoint = 0")
        self._db.execute(f"PRAGMA journal_size_limit = {wal_limit_bytes}")
        stop = threading.Event()

        def run() -> None:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            try:
                while not stop.wait(interval_s):
                    _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames * page_bytes > wal_limit_bytes:  # frames in use, not the file's size
                        # Once more for what was written meanwhile, so that the writer has little to copy.
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        self._restart_wal = True  # a plain flag: the writer reads it after its commits
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # the next open replays the WAL: nothing is lost, it is only longer
            finally:
                db.close()

        thread = threading.Thread(target=run, name="salotto-checkpoint", daemon=True)
        thread.start()

        def stop_and_join() -> None:
            stop.set()
            thread.join(timeout=10)

        return stop_and_join

    def _checkpoint_and_restart_wal(self) -> None:
        self._restart_wal = False
        # RESTART waits for the readers still on the old WAL: not long (a CHATHISTORY read takes about
        # a millisecond), and never as long as the usual busy timeout, on the writer's thread.
        self._db.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        try:
            busy = self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()[0]
        except sqlite3.Error:
            busy = 1
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if busy:  # a reader or the thread's own checkpoint was in the way: after the next commit
            self._restart_wal = True

    # -- accounts --------------------------------------------------------------------------------

    def create_account(
        self, name: str, password_hash: str, created: float, *, email: str | None = None, verified: bool = True
    ) -> StoredAccount:
        try:
            self._db.execute(
                "INSERT INTO accounts (name_cf, name, password_hash, created, email, verified) VALUES (?,?,?,?,?,?)",
                (casefold(name), name, password_hash, created, email, int(verified)),
            )
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"account {name!r} already exists") from exc
        return StoredAccount(name, password_hash, created, email, verified)

    def get_account(self, name: str) -> StoredAccount | None:
        row = self._db.execute(
            "SELECT name, password_hash, created, email, verified, always_on FROM accounts WHERE name_cf = ?",
            (casefold(name),),
        ).fetchone()
        if row is None:
            return None
        return StoredAccount(row[0], row[1], row[2], row[3], bool(row[4]), _always_on(row[5]))

    def list_accounts(self) -> list[StoredAccount]:
        rows = self._db.execute(
            "SELECT name, password_hash, created, email, verified, always_on FROM accounts ORDER BY name_cf"
        )
        return [StoredAccount(row[0], row[1], row[2], row[3], bool(row[4]), _always_on(row[5])) for row in rows]

    def set_password_hash(self, name: str, password_hash: str) -> bool:
        cur = self._db.execute(
            "UPDATE accounts SET password_hash = ? WHERE name_cf = ?", (password_hash, casefold(name))
        )
        return cur.rowcount > 0

    def set_verified(self, name: str, verified: bool) -> bool:
        cur = self._db.execute("UPDATE accounts SET verified = ? WHERE name_cf = ?", (int(verified), casefold(name)))
        return cur.rowcount > 0

    def set_always_on(self, name: str, always_on: bool | None) -> bool:
        value = None if always_on is None else int(always_on)
        cur = self._db.execute("UPDATE accounts SET always_on = ? WHERE name_cf = ?", (value, casefold(name)))
        return cur.rowcount > 0

    def save_always_on_users(self, users: Iterable[AlwaysOnUser]) -> None:
        with self.transaction():
            self._db.execute("DELETE FROM always_on_users")
            self._put_always_on_users(users)

    def update_always_on_users(self, users: Iterable[AlwaysOnUser], gone: Iterable[str]) -> None:
        with self.transaction():
            self._db.executemany("DELETE FROM always_on_users WHERE account_cf = ?", [(casefold(a),) for a in gone])
            self._put_always_on_users(users)

    def _put_always_on_users(self, users: Iterable[AlwaysOnUser]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO always_on_users (account_cf, nick, username, realname, channels, away, "
            "absent_since) SELECT ?,?,?,?,?,?,? WHERE EXISTS (SELECT 1 FROM accounts WHERE name_cf = ?)",
            [(casefold(u.account), u.nick, u.username, u.realname, " ".join(u.channels), u.away, u.absent_since,
              casefold(u.account)) for u in users],
        )

    def list_always_on_users(self) -> list[AlwaysOnUser]:
        rows = self._db.execute(
            "SELECT a.name, u.nick, u.username, u.realname, u.channels, u.away, u.absent_since "
            "FROM always_on_users u JOIN accounts a ON a.name_cf = u.account_cf ORDER BY u.account_cf"
        )
        return [AlwaysOnUser(r[0], r[1], r[2], r[3], tuple(r[4].split()), r[5], r[6]) for r in rows]

    def delete_account(self, name: str) -> bool:
        cf = casefold(name)
        with self.transaction():
            cur = self._db.execute("DELETE FROM accounts WHERE name_cf = ?", (cf,))
            if cur.rowcount == 0:
                return False
            self._db.execute("DELETE FROM read_markers WHERE account_cf = ?", (cf,))
            self._db.execute("DELETE FROM channel_access WHERE account_cf = ?", (cf,))
            self._db.execute("DELETE FROM login_addresses WHERE account_cf = ?", (cf,))  # (cascades too)
        return True

    def list_login_addresses(self) -> list[tuple[str, str, float]]:
        rows = self._db.execute(
            "SELECT account_cf, address, last_seen FROM login_addresses ORDER BY account_cf, last_seen, address"
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def add_login_address(self, name: str, address: str, seen: float, keep: int) -> bool:
        cf = casefold(name)
        with self.transaction():
            if self._db.execute("SELECT 1 FROM accounts WHERE name_cf = ?", (cf,)).fetchone() is None:
                return False
            self._db.execute(
                "INSERT INTO login_addresses (account_cf, address, last_seen) VALUES (?, ?, ?) "
                "ON CONFLICT (account_cf, address) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
                (cf, address, seen),
            )
            self._db.execute(
                "DELETE FROM login_addresses WHERE account_cf = ? AND address NOT IN ("
                "SELECT address FROM login_addresses WHERE account_cf = ? "
                "ORDER BY last_seen DESC, address DESC LIMIT ?)",
                (cf, cf, max(keep, 0)),
            )
        return True

    # -- registered channels ---------------------------------------------------------------------

    def register_channel(self, name: str, founder: str, registered: float) -> RegisteredChannel:
        cf = casefold(name)
        with self.transaction():
            try:
                self._db.execute(
                    "INSERT INTO channels (name_cf, name, founder, registered) VALUES (?,?,?,?)",
                    (cf, name, founder, registered),
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"channel {name!r} is already registered") from exc
            self._db.execute(
                "INSERT INTO channel_access (channel_cf, account_cf, level) VALUES (?,?,?)",
                (cf, casefold(founder), FOUNDER_LEVEL),
            )
        return RegisteredChannel(name, founder, registered, access={casefold(founder): FOUNDER_LEVEL})

    def get_channel(self, name: str) -> RegisteredChannel | None:
        cf = casefold(name)
        row = self._db.execute(f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE name_cf = ?", (cf,)).fetchone()
        if row is None:
            return None
        access = dict(
            self._db.execute("SELECT account_cf, level FROM channel_access WHERE channel_cf = ?", (cf,)).fetchall()
        )
        return _channel(row, access)

    def update_channel(
        self,
        name: str,
        *,
        topic: tuple[str, str, float] | None = None,
        modes: str | None = None,
        key: str | None = None,
        limit: int | None = None,
        clear_key: bool = False,
        clear_limit: bool = False,
    ) -> None:
        sets: list[str] = []
        params: list[object] = []
        if topic is not None:
            sets.append("topic = ?, topic_setter = ?, topic_time = ?")
            params.extend(topic)
        if modes is not None:
            sets.append("modes = ?")
            params.append(modes)
        if key is not None or clear_key:
            sets.append("chan_key = ?")
            params.append(None if clear_key else key)
        if limit is not None or clear_limit:
            sets.append("user_limit = ?")
            params.append(None if clear_limit else limit)
        cf = casefold(name)
        if not sets:
            if self._db.execute("SELECT 1 FROM channels WHERE name_cf = ?", (cf,)).fetchone() is None:
                raise UnknownChannel(name)
            return
        cur = self._db.execute(f"UPDATE channels SET {', '.join(sets)} WHERE name_cf = ?", (*params, cf))
        if cur.rowcount == 0:
            raise UnknownChannel(name)

    def set_access(self, channel: str, account: str, level: str) -> None:
        cf = casefold(channel)
        with self.transaction():
            if self._db.execute("SELECT 1 FROM channels WHERE name_cf = ?", (cf,)).fetchone() is None:
                raise UnknownChannel(channel)
            self._db.execute(
                "INSERT INTO channel_access (channel_cf, account_cf, level) VALUES (?,?,?) "
                "ON CONFLICT (channel_cf, account_cf) DO UPDATE SET level = excluded.level",
                (cf, casefold(account), level),
            )

    def remove_access(self, channel: str, account: str) -> bool:
        cur = self._db.execute(
            "DELETE FROM channel_access WHERE channel_cf = ? AND account_cf = ?", (casefold(channel), casefold(account))
        )
        return cur.rowcount > 0

    def drop_channel(self, name: str) -> bool:
        cur = self._db.execute("DELETE FROM channels WHERE name_cf = ?", (casefold(name),))  # access cascades
        return cur.rowcount > 0

    def list_channels(self) -> list[RegisteredChannel]:
        with self.transaction():  # one snapshot for both reads
            rows = self._db.execute(f"SELECT {_CHANNEL_COLUMNS} FROM channels ORDER BY name_cf").fetchall()
            access: dict[str, dict[str, str]] = {}
            for channel_cf, account_cf, level in self._db.execute(
                "SELECT channel_cf, account_cf, level FROM channel_access"
            ):
                access.setdefault(channel_cf, {})[account_cf] = level
        return [_channel(row, access.get(row[0], {})) for row in rows]

    # -- read markers ----------------------------------------------------------------------------

    def get_read_marker(self, account: str, target: str) -> float | None:
        row = self._db.execute(
            "SELECT time_ms FROM read_markers WHERE account_cf = ? AND target = ?", (casefold(account), target)
        ).fetchone()
        return None if row is None else from_ms(row[0])

    def set_read_marker(self, account: str, target: str, time: float) -> float:
        cf = casefold(account)
        with self.transaction():
            self._db.execute(
                "INSERT INTO read_markers (account_cf, target, time_ms) VALUES (?,?,?) "
                "ON CONFLICT (account_cf, target) DO UPDATE SET time_ms = max(time_ms, excluded.time_ms)",
                (cf, target, to_ms(time)),
            )
            row = self._db.execute(
                "SELECT time_ms FROM read_markers WHERE account_cf = ? AND target = ?", (cf, target)
            ).fetchone()
        return from_ms(row[0])

    def read_markers(self, account: str) -> list[tuple[str, float]]:
        rows = self._db.execute(
            "SELECT target, time_ms FROM read_markers WHERE account_cf = ? ORDER BY target", (casefold(account),)
        )
        return [(target, from_ms(ms)) for target, ms in rows]

    def list_read_markers(self) -> list[tuple[str, str, float]]:
        rows = self._db.execute("SELECT account_cf, target, time_ms FROM read_markers ORDER BY account_cf, target")
        return [(account, target, from_ms(ms)) for account, target, ms in rows]

    def delete_read_marker(self, account: str, target: str) -> bool:
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM read_markers WHERE account_cf = ? AND target = ?", (casefold(account), target)
            )
        return cursor.rowcount > 0

    # -- Web Push subscriptions ------------------------------------------------------------------

    def list_push_subscriptions(self) -> list[PushSubscription]:
        rows = self._db.execute(
            "SELECT a.name, p.endpoint, p.p256dh, p.auth, p.created FROM push_subscriptions p "
            "JOIN accounts a ON a.name_cf = p.account_cf ORDER BY p.account_cf, p.created"
        )
        return [PushSubscription(*row) for row in rows]

    def put_push_subscription(self, subscription: PushSubscription) -> bool:
        cf = casefold(subscription.account)
        with self.transaction():
            cursor = self._db.execute(
                "INSERT OR REPLACE INTO push_subscriptions (account_cf, endpoint, p256dh, auth, created) "
                "SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM accounts WHERE name_cf = ?)",
                (cf, subscription.endpoint, subscription.p256dh, subscription.auth, subscription.created, cf),
            )
        return cursor.rowcount > 0

    def delete_push_subscription(self, account: str, endpoint: str) -> bool:
        with self.transaction():
            cursor = self._db.execute(
                "DELETE FROM push_subscriptions WHERE account_cf = ? AND endpoint = ?", (casefold(account), endpoint)
            )
        return cursor.rowcount > 0
    # -- uploaded files ----------------------------------------------------------------------------

    def add_upload(self, record: UploadRecord, max_account_bytes: int) -> bool:
        cf = casefold(record.account)
        with self.transaction():
            (used,) = self._db.execute(
                "SELECT coalesce(sum(size), 0) FROM uploads WHERE account_cf = ?", (cf,)).fetchone()
            if used + record.size > max_account_bytes:
                return False
            self._db.execute(
                "INSERT INTO uploads (id, account_cf, account, name, content_type, size, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.id, cf, record.account, record.name, record.content_type, record.size, record.created),
            )
        return True

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = self._db.execute(
            "SELECT id, account, name, content_type, size, created FROM uploads WHERE id = ?", (upload_id,)
        ).fetchone()
        return UploadRecord(*row) if row is not None else None

    def upload_usage(self, account: str) -> int:
        (used,) = self._db.execute(
            "SELECT coalesce(sum(size), 0) FROM uploads WHERE account_cf = ?", (casefold(account),)).fetchone()
        return int(used)

    def expired_uploads(self, cutoff: float, limit: int) -> list[str]:
        rows = self._db.execute(
            "SELECT id FROM uploads WHERE created < ? ORDER BY created LIMIT ?", (cutoff, limit)).fetchall()
        return [row[0] for row in rows]

    def delete_uploads(self, upload_ids: Iterable[str]) -> int:
        deleted = 0
        with self.transaction():
            for upload_id in upload_ids:
                deleted += self._db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,)).rowcount
        return deleted


def _channel(row: tuple[Any, ...], access: dict[str, str]) -> RegisteredChannel:
    _, name, founder, registered, topic, setter, topic_time, modes, key, limit = row
    return RegisteredChannel(name, founder, registered, topic, setter, topic_time, modes, key, limit, access)


def _always_on(value: Any) -> bool | None:
    """The always_on column: NULL (the server's default) or a flag."""
    return None if value is None else bool(value)
