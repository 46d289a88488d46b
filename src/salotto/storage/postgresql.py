"""The PostgreSQL backend (psycopg 3, synchronous): ``storage_url = "postgresql://user:pass@host/db"``.

One :class:`PostgresStorage` is one connection, in autocommit mode: every method is its own transaction,
and :meth:`~PostgresStorage.transaction` opens a real one (a savepoint when nested). The server uses it
as it uses SQLite: one writer connection on history's storer thread, read-only connections
(``default_transaction_read_only``) for lookups and the read pool.

Schema: numbered migrations (:mod:`salotto.storage.postgresql_migrations`) with the version in the
one-row table ``schema_version``. The read-write open applies the missing ones in a single transaction
under ``pg_advisory_xact_lock``, so two servers (or a server and ``salotto export``) starting together
never migrate twice; a database whose version is above the known one is refused
(:class:`~salotto.storage.base.SchemaTooNew`).

History mirrors the SQLite backend's semantics (see :mod:`salotto.storage.sqlite_history`): times are
integer milliseconds, a message's position is ``(time_ms, seq)`` where ``seq`` is an identity column
(insertion order), and every chathistory query is one range scan of the ``(target, time_ms, seq)`` index
with a row-value bound, ``(time_ms, seq) < (%s, %s)``, which PostgreSQL turns into an index condition.

Durability: a method returns after PostgreSQL committed (``synchronous_commit`` as the server is
configured; its default, on, waits for the WAL flush), so a crash of salotto loses nothing it was told is
stored, and a crash of the database server loses nothing either with the default settings.

Text: PostgreSQL stores valid UTF-8 without NUL characters. The server only hands valid UTF-8 over;
a NUL in a message (text, sender, tags...) makes :meth:`~PostgresStorage.append_messages` raise
ValueError, which history's storer takes as "leave this message out".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from time import monotonic
from typing import Any, ClassVar, Final, TypeVar

import psycopg
from psycopg import errors, pq
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from salotto.proto.casemap import casefold
from salotto.storage.base import (
    NO_TAGS,
    AlreadyExists,
    AlwaysOnUser,
    HistoryMessage,
    PushSubscription,
    Ref,
    RegisteredChannel,
    SchemaTooNew,
    StorageError,
    StoredAccount,
    TargetListing,
    UnknownChannel,
    UploadRecord,
    conversation_key,
)
from salotto.storage.postgresql_migrations import MIGRATIONS, SCHEMA_VERSION, SEARCH_COLUMN
from salotto.storage.ranges import Bound, RangeQueries, Where
from salotto.storage.search import SearchQuery, SearchTimeout, collect_newest
from salotto.storage.urls import mask_password, url_password

__all__ = ["MIGRATION_LOCK", "PostgresStorage", "StorageUnavailable", "migrate"]

# The pg_advisory_xact_lock key that serialises migrations (any constant; "salotto" in ASCII).
MIGRATION_LOCK: Final = 0x73616C6F74746F
FOUNDER_LEVEL: Final = "founder"
# How long an open waits for an unreachable server, unless the URL says otherwise (connect_timeout=).
CONNECT_TIMEOUT_S: Final = 10

_COLUMNS: Final = "msgid, target, time_ms, sender, account, command, text, tags"
_CHANNEL_COLUMNS: Final = (
    "name_cf, name, founder, registered, topic, topic_setter, topic_time, modes, chan_key, user_limit"
)

# One statement for a whole batch, whatever its size: one array per column, unnested in order. ORDER BY
# the ordinality makes the identity (seq, insertion order) follow the batch's order.
_COPY_MESSAGES: Final = (
    b"COPY messages (msgid, target, time_ms, sender, account, command, text, tags) FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES: Final = ["text", "text", "int8", "text", "text", "text", "text", "jsonb"]

T = TypeVar("T")


class StorageUnavailable(StorageError):
    """The database server cannot be reached or refuses the connection (the message masks the password)."""


def to_ms(time: float) -> int:
    return round(time * 1000)


def from_ms(ms: int) -> float:
    return ms / 1000


def migrate(conn: psycopg.Connection[Any], migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Bring the database to ``len(migrations)`` in one transaction; return the version reached.

    The transaction holds :data:`MIGRATION_LOCK` from its start, so a second process opening the same
    database waits, then finds the work done. Raises :class:`SchemaTooNew` past the last known version,
    StorageError if a step fails (nothing of any step is kept then)."""
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            current = 0 if row is None else int(row[0])
            if current > len(migrations):
                raise SchemaTooNew(
                    f"database schema version {current} is newer than this salotto supports ({len(migrations)}); "
                    "upgrade salotto or use another database"
                )
            for version in range(current, len(migrations)):
                try:
                    conn.execute(migrations[version].encode())  # bytes: several statements, no parameters
                except psycopg.Error as exc:
                    raise StorageError(f"migration to schema version {version + 1} failed: {exc}") from exc
            if current < len(migrations):
                if row is None:
                    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(migrations),))
                else:
                    conn.execute("UPDATE schema_version SET version = %s", (len(migrations),))
    except psycopg.Error as exc:
        raise StorageError(f"cannot migrate the database: {exc}") from exc
    return len(migrations)


def _connect(url: str, *, readonly: bool) -> psycopg.Connection[Any]:
    options: dict[str, Any] = {"autocommit": True}
    # A connection to a database that went away mid-query (a network cut, a host that died) must fail in
    # seconds, not when the kernel gives up on TCP (some 15 minutes): the store's writer thread would hang
    # meanwhile, with every write, read and the shutdown behind it. The URL's own settings win.
    try:
        given = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        given = {}  # psycopg.connect says what is wrong with it, below
    for key, value in _TIMEOUTS.items():
        if key not in given:
            options[key] = value
    own = str(given.get("options") or "")
    server_options = [own] if own else []
    server_options += [f"-c {name}={value}" for name, value in _SERVER_TIMEOUTS.items() if name not in own]
    if readonly:
        server_options.append("-c default_transaction_read_only=on")
    if server_options:
        options["options"] = " ".join(server_options)
    try:
        return psycopg.connect(url, **options)
    except psycopg.Error as exc:
        # libpq's message can span lines ("Is the server running on that host..."): one line, without
        # psycopg's "connection failed: " in front.
        message = " ".join(str(exc).split()).removeprefix("connection failed: ") or type(exc).__name__
        password = url_password(url)
        if password:
            message = message.replace(password, "***")
        raise StorageUnavailable(f"cannot connect to PostgreSQL at {mask_password(url)}: {message}") from None


# libpq's connection settings (seconds, but tcp_user_timeout: milliseconds): TCP keepalives notice a
# peer gone quiet after about a minute; tcp_user_timeout, data sent and never acknowledged.
_TIMEOUTS: Final = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
# The server's (milliseconds): no statement of salotto's should run a minute (the slowest, a retention
# step, deletes a bounded number of rows), and no transaction waits idle.
_SERVER_TIMEOUTS: Final = {
    "statement_timeout": 60_000,
    "idle_in_transaction_session_timeout": 60_000,
}


def _check_text(msg: HistoryMessage) -> None:
    """ValueError if PostgreSQL cannot store the message: a NUL anywhere in its strings."""
    if (
        "\x00" in msg.text
        or "\x00" in msg.sender
        or "\x00" in msg.msgid
        or "\x00" in msg.target
        or "\x00" in msg.command
        or (msg.account is not None and "\x00" in msg.account)
        or any("\x00" in key or "\x00" in value for key, value in msg.tags.items())
    ):
        raise ValueError(f"message {msg.msgid!r}: PostgreSQL cannot store a NUL character")


def _before(bound: Bound) -> Where:
    """Strictly before the selector."""
    ms, seq = bound
    if seq is None:
        return "time_ms < %s", (ms,)
    return "(time_ms, seq) < (%s, %s)", (ms, seq)


def _after(bound: Bound, *, inclusive: bool = False) -> Where:
    """Strictly after the selector (or at it, with ``inclusive``)."""
    ms, seq = bound
    if seq is None:
        return ("time_ms >= %s" if inclusive else "time_ms > %s"), (ms,)
    return f"(time_ms, seq) {'>=' if inclusive else '>'} (%s, %s)", (ms, seq)


_NO_LATER_THAN: Final = 1 << 42  # milliseconds: past the year 2100


def _message(row: tuple[Any, ...]) -> HistoryMessage:
    msgid, target, time_ms, sender, account, command, text, tags = row
    return HistoryMessage(msgid, target, time_ms / 1000, sender, account, command, text, tags or NO_TAGS)


class PostgresStorage(RangeQueries):
    """A :class:`~salotto.storage.base.Storage` on one PostgreSQL connection; one thread at a time."""

    _EVERYTHING: ClassVar[Where] = ("true", ())
    _before = staticmethod(_before)
    _after = staticmethod(_after)

    def __init__(self, conn: psycopg.Connection[Any], *, readonly: bool, url: str) -> None:
        self._conn = conn
        self._readonly = readonly
        self._url = url
        self._where = mask_password(url)  # for messages
        self._depth = 0  # transaction() blocks open

    @property
    def _db(self) -> psycopg.Connection[Any]:
        """The connection; a new one if the last was lost (the database server restarted, the network
        dropped). The call that met the loss failed with it; the next one connects again, unless it is
        inside a transaction block, which fails whole (its statements must not land outside it)."""
        conn = self._conn
        if conn.broken and self._depth == 0:
            conn = self._conn = _connect(self._url, readonly=self._readonly)
        return conn

    @classmethod
    def open(cls, url: str, *, readonly: bool = False, search: bool | None = None) -> PostgresStorage:
        """Connect to ``url``.

        Read-write: create the tables or bring them to this version. Read-only: the schema must be at the
        current version already (open the writer first).

        Raises:
            StorageUnavailable: the server cannot be reached, or refuses the login.
            SchemaTooNew: the database was written by a newer salotto.
            StorageError: read-only open of a database not yet migrated; a failed migration.
        """
        conn = _connect(url, readonly=readonly)
        try:
            if readonly:
                version = _read_version(conn)
                if version > SCHEMA_VERSION:
                    raise SchemaTooNew(f"database schema version {version} is newer than {SCHEMA_VERSION}")
                if version < SCHEMA_VERSION:
                    raise StorageError(f"database schema version {version}: open it read-write first to migrate")
            else:
                migrate(conn)
            storage = cls(conn, readonly=readonly, url=url)
            if search is not None and not readonly:
                storage.set_search(search)
        except BaseException:
            conn.close()
            raise
        return storage

    # -- life ------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return _read_version(self._db)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # psycopg's own: BEGIN/COMMIT at the outside, SAVEPOINT/RELEASE inside; an exception rolls back
        # the block it leaves.
        with self._db.transaction():
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    def close(self) -> None:
        self._conn.close()

    def start_maintenance(self) -> Callable[[], None]:
        """Nothing of salotto's to run: the server checkpoints and vacuums on its own."""
        return _nothing

    def __repr__(self) -> str:
        return f"<PostgresStorage {self._where}{' readonly' if self._readonly else ''}>"

    # -- helpers ---------------------------------------------------------------------------------

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        return self._db.execute(sql.encode(), params).fetchone()

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql.encode(), params).fetchall()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Execute a write; the number of rows it touched."""
        return self._db.execute(sql.encode(), params).rowcount

    def _unique(self, fn: Callable[[], T], error: Callable[[], StorageError]) -> T:
        """``fn()``, with a unique violation turned into ``error()``. Inside a caller's transaction the
        statement runs in a savepoint, so that its failure leaves the caller's transaction usable (as a
        failed statement does in SQLite)."""
        try:
            if self._db.info.transaction_status == pq.TransactionStatus.IDLE:
                return fn()
            with self._db.transaction():
                return fn()
        except errors.UniqueViolation as exc:
            raise error() from exc

    # -- accounts --------------------------------------------------------------------------------

    def create_account(
        self, name: str, password_hash: str, created: float, *, email: str | None = None, verified: bool = True
    ) -> StoredAccount:
        self._unique(
            lambda: self._run(
                "INSERT INTO accounts (name_cf, name, password_hash, created, email, verified) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (casefold(name), name, password_hash, created, email, verified),
            ),
            lambda: AlreadyExists(f"account {name!r} already exists"),
        )
        return StoredAccount(name, password_hash, created, email, verified)

    def get_account(self, name: str) -> StoredAccount | None:
        row = self._one(
            "SELECT name, password_hash, created, email, verified, always_on FROM accounts WHERE name_cf = %s",
            (casefold(name),),
        )
        if row is None:
            return None
        return StoredAccount(row[0], row[1], row[2], row[3], bool(row[4]), _always_on(row[5]))

    def list_accounts(self) -> list[StoredAccount]:
        rows = self._all(
            "SELECT name, password_hash, created, email, verified, always_on FROM accounts ORDER BY name_cf"
        )
        return [StoredAccount(row[0], row[1], row[2], row[3], bool(row[4]), _always_on(row[5])) for row in rows]

    def set_password_hash(self, name: str, password_hash: str) -> bool:
        return self._run(
            "UPDATE accounts SET password_hash = %s WHERE name_cf = %s", (password_hash, casefold(name))
        ) > 0

    def set_verified(self, name: str, verified: bool) -> bool:
        return self._run("UPDATE accounts SET verified = %s WHERE name_cf = %s", (verified, casefold(name))) > 0

    def set_always_on(self, name: str, always_on: bool | None) -> bool:
        return self._run("UPDATE accounts SET always_on = %s WHERE name_cf = %s", (always_on, casefold(name))) > 0

    def save_always_on_users(self, users: Iterable[AlwaysOnUser]) -> None:
        with self.transaction():
            self._run("DELETE FROM always_on_users")
            self._put_always_on_users(users)

    def update_always_on_users(self, users: Iterable[AlwaysOnUser], gone: Iterable[str]) -> None:
        with self.transaction():
            for account in gone:
                self._run("DELETE FROM always_on_users WHERE account_cf = %s", (casefold(account),))
            self._put_always_on_users(users)

    def _put_always_on_users(self, users: Iterable[AlwaysOnUser]) -> None:
        for u in users:
            self._run(
                "INSERT INTO always_on_users (account_cf, nick, username, realname, channels, away, absent_since) "
                "SELECT %s, %s, %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM accounts WHERE name_cf = %s) "
                "ON CONFLICT (account_cf) DO UPDATE SET nick = excluded.nick, username = excluded.username, "
                "realname = excluded.realname, channels = excluded.channels, away = excluded.away, "
                "absent_since = excluded.absent_since",
                (casefold(u.account), u.nick, u.username, u.realname, " ".join(u.channels), u.away,
                 u.absent_since, casefold(u.account)),
            )

    def list_always_on_users(self) -> list[AlwaysOnUser]:
        rows = self._all(
            "SELECT a.name, u.nick, u.username, u.realname, u.channels, u.away, u.absent_since "
            "FROM always_on_users u JOIN accounts a ON a.name_cf = u.account_cf ORDER BY u.account_cf"
        )
        return [AlwaysOnUser(r[0], r[1], r[2], r[3], tuple(r[4].split()), r[5], r[6]) for r in rows]

    def delete_account(self, name: str) -> bool:
        cf = casefold(name)
        with self.transaction():
            # login addresses cascade
            if self._run("DELETE FROM accounts WHERE name_cf = %s", (cf,)) == 0:
                return False
            self._run("DELETE FROM read_markers WHERE account_cf = %s", (cf,))
            self._run("DELETE FROM channel_access WHERE account_cf = %s", (cf,))
        return True

    def list_login_addresses(self) -> list[tuple[str, str, float]]:
        rows = self._all(
            "SELECT account_cf, address, last_seen FROM login_addresses ORDER BY account_cf, last_seen, address"
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def add_login_address(self, name: str, address: str, seen: float, keep: int) -> bool:
        cf = casefold(name)
        with self.transaction():
            # FOR KEY SHARE: the account cannot be deleted under us before the insert.
            if self._one("SELECT 1 FROM accounts WHERE name_cf = %s FOR KEY SHARE", (cf,)) is None:
                return False
            self._run(
                "INSERT INTO login_addresses (account_cf, address, last_seen) VALUES (%s, %s, %s) "
                "ON CONFLICT (account_cf, address) DO UPDATE "
                "SET last_seen = GREATEST(login_addresses.last_seen, excluded.last_seen)",
                (cf, address, seen),
            )
            self._run(
                "DELETE FROM login_addresses WHERE account_cf = %s AND address NOT IN ("
                "SELECT address FROM login_addresses WHERE account_cf = %s "
                "ORDER BY last_seen DESC, address DESC LIMIT %s)",
                (cf, cf, max(keep, 0)),
            )
        return True

    # -- registered channels ---------------------------------------------------------------------

    def register_channel(self, name: str, founder: str, registered: float) -> RegisteredChannel:
        cf = casefold(name)
        with self.transaction():
            self._unique(
                lambda: self._run(
                    "INSERT INTO channels (name_cf, name, founder, registered) VALUES (%s, %s, %s, %s)",
                    (cf, name, founder, registered),
                ),
                lambda: AlreadyExists(f"channel {name!r} is already registered"),
            )
            self._run(
                "INSERT INTO channel_access (channel_cf, account_cf, level) VALUES (%s, %s, %s)",
                (cf, casefold(founder), FOUNDER_LEVEL),
            )
        return RegisteredChannel(name, founder, registered, access={casefold(founder): FOUNDER_LEVEL})

    def get_channel(self, name: str) -> RegisteredChannel | None:
        cf = casefold(name)
        with self.transaction():  # one snapshot for both reads
            row = self._one(f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE name_cf = %s", (cf,))
            if row is None:
                return None
            access = dict(self._all("SELECT account_cf, level FROM channel_access WHERE channel_cf = %s", (cf,)))
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
            sets.append("topic = %s, topic_setter = %s, topic_time = %s")
            params.extend(topic)
        if modes is not None:
            sets.append("modes = %s")
            params.append(modes)
        if key is not None or clear_key:
            sets.append("chan_key = %s")
            params.append(None if clear_key else key)
        if limit is not None or clear_limit:
            sets.append("user_limit = %s")
            params.append(None if clear_limit else limit)
        cf = casefold(name)
        if not sets:
            if self._one("SELECT 1 FROM channels WHERE name_cf = %s", (cf,)) is None:
                raise UnknownChannel(name)
            return
        if self._run(f"UPDATE channels SET {', '.join(sets)} WHERE name_cf = %s", (*params, cf)) == 0:
            raise UnknownChannel(name)

    def set_access(self, channel: str, account: str, level: str) -> None:
        cf = casefold(channel)
        with self.transaction():
            if self._one("SELECT 1 FROM channels WHERE name_cf = %s FOR KEY SHARE", (cf,)) is None:
                raise UnknownChannel(channel)
            self._run(
                "INSERT INTO channel_access (channel_cf, account_cf, level) VALUES (%s, %s, %s) "
                "ON CONFLICT (channel_cf, account_cf) DO UPDATE SET level = excluded.level",
                (cf, casefold(account), level),
            )

    def remove_access(self, channel: str, account: str) -> bool:
        return self._run(
            "DELETE FROM channel_access WHERE channel_cf = %s AND account_cf = %s",
            (casefold(channel), casefold(account)),
        ) > 0

    def drop_channel(self, name: str) -> bool:
        return self._run("DELETE FROM channels WHERE name_cf = %s", (casefold(name),)) > 0  # access cascades

    def list_channels(self) -> list[RegisteredChannel]:
        with self.transaction():  # one snapshot for both reads
            rows = self._all(f"SELECT {_CHANNEL_COLUMNS} FROM channels ORDER BY name_cf")
            access: dict[str, dict[str, str]] = {}
            for channel_cf, account_cf, level in self._all("SELECT channel_cf, account_cf, level FROM channel_access"):
                access.setdefault(channel_cf, {})[account_cf] = level
        return [_channel(row, access.get(row[0], {})) for row in rows]

    # -- history: writing ------------------------------------------------------------------------

    def append_messages(self, messages: Iterable[HistoryMessage]) -> None:
        columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [])
        msgids, targets, times, senders, accounts, commands, texts, tags = columns
        parties: dict[tuple[str, str], str] = {}  # (party_cf, target) -> the other side's name
        for msg in messages:
            _check_text(msg)
            msgids.append(msg.msgid)
            targets.append(msg.target)
            times.append(round(msg.time * 1000))
            senders.append(msg.sender)
            accounts.append(msg.account)
            commands.append(msg.command)
            texts.append(msg.text)
            tags.append(Jsonb(dict(msg.tags)) if msg.tags else None)
            if msg.parties is not None:
                a, b = msg.parties
                if conversation_key(a, b) != msg.target:
                    raise ValueError(f"message {msg.msgid}: target {msg.target!r} is not the conversation of {a}, {b}")
                parties[casefold(a), msg.target] = b
                parties[casefold(b), msg.target] = a
        if not msgids:
            return
        if not parties and self._db.info.transaction_status == pq.TransactionStatus.IDLE:
            self._insert_messages(columns)  # one statement, atomic on its own: no BEGIN and COMMIT round trips
            return
        with self.transaction():  # inside a caller's transaction, a savepoint: a duplicate leaves it usable
            self._insert_messages(columns)
            if parties:
                # The WHERE leaves the row untouched when nothing changed: most private messages go to a
                # conversation already listed under the same names.
                with self._db.cursor() as cur:
                    cur.executemany(
                        b"INSERT INTO conversations (party_cf, target, peer) VALUES (%s, %s, %s) "
                        b"ON CONFLICT (party_cf, target) DO UPDATE SET peer = excluded.peer "
                        b"WHERE conversations.peer IS DISTINCT FROM excluded.peer",
                        [(party, target, peer) for (party, target), peer in parties.items()],
                    )

    def _insert_messages(self, columns: tuple[list[Any], ...]) -> None:
        # COPY in binary: psycopg's C code formats the rows, where the arrays of an INSERT ... unnest()
        # were quoted element by element in Python: 4.9 against 12 us of the storer's CPU per message
        # (batches of 300, thread CPU time around append_messages). One statement: atomic.
        try:
            with self._db.cursor() as cur, cur.copy(_COPY_MESSAGES) as copy:
                copy.set_types(_COPY_TYPES)
                for row in zip(*columns, strict=True):
                    copy.write_row(row)
        except errors.UniqueViolation as exc:
            raise AlreadyExists(f"duplicate msgid in batch: {exc.diag.message_detail or exc}") from exc
        except (errors.CharacterNotInRepertoire, errors.UntranslatableCharacter) as exc:
            raise ValueError(f"PostgreSQL cannot store a message of the batch: {exc}") from exc

    def prune_history(self, cutoff: float | None, max_per_target: int | None, max_rows: int = 10_000) -> int:
        deleted = 0
        with self.transaction():
            if cutoff is not None:
                # Any max_rows old messages, off the BRIN time index (a bitmap scan that stops once it
                # has found them).
                rows = self._all(
                    "DELETE FROM messages WHERE seq IN "
                    "(SELECT seq FROM messages WHERE time_ms < %s LIMIT %s) RETURNING target",
                    (to_ms(cutoff), max_rows),
                )
                deleted += len(rows)
                self._forget_emptied_conversations({row[0] for row in rows if " " in row[0]})
                if deleted < max_rows:  # the records of redacted messages that old (one row per redaction)
                    deleted += self._run(
                        "DELETE FROM redactions WHERE msgid IN "
                        "(SELECT msgid FROM redactions WHERE time_ms < %s LIMIT %s)",
                        (to_ms(cutoff), max_rows - deleted),
                    )
            if max_per_target is not None and deleted < max_rows:
                # A scan of the (target, time_ms, seq) index, once per prune interval.
                over = self._all(
                    "SELECT target, count(*) FROM messages GROUP BY target HAVING count(*) > %s", (max_per_target,)
                )
                for target, count in over:
                    take = min(count - max_per_target, max_rows - deleted)
                    if take <= 0:
                        break
                    deleted += self._run(
                        "DELETE FROM messages WHERE seq IN "
                        "(SELECT seq FROM messages WHERE target = %s ORDER BY time_ms, seq LIMIT %s)",
                        (target, take),
                    )
        return deleted

    def redact_message(self, target: str, msgid: str) -> bool:
        with self.transaction():
            row = self._one("DELETE FROM messages WHERE msgid = %s AND target = %s RETURNING time_ms", (msgid, target))
            if row is None:
                return False
            self._run("INSERT INTO redactions (msgid, time_ms) VALUES (%s, %s) ON CONFLICT DO NOTHING", (msgid, row[0]))
            if " " in target:
                self._forget_emptied_conversations({target})
        return True

    def redacted(self, msgids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(msgids))
        if not wanted:
            return set()
        return {row[0] for row in self._all("SELECT msgid FROM redactions WHERE msgid = ANY(%s)", (wanted,))}

    def _forget_emptied_conversations(self, targets: set[str]) -> None:
        """Private conversations that retention left without a message are forgotten too: who talked to
        whom goes with what they said."""
        for target in targets:
            if self._one("SELECT 1 FROM messages WHERE target = %s LIMIT 1", (target,)) is not None:
                continue
            first, _, second = target.partition(" ")
            self._run("DELETE FROM conversations WHERE party_cf IN (%s, %s) AND target = %s", (first, second, target))

    # -- history: reading ------------------------------------------------------------------------

    def get_message(self, msgid: str) -> HistoryMessage | None:
        row = self._one(f"SELECT {_COLUMNS} FROM messages WHERE msgid = %s", (msgid,))
        return None if row is None else _message(row)

    def targets(
        self, channels: Iterable[str], party: str | None, start: float, end: float, limit: int
    ) -> list[TargetListing]:
        if limit <= 0:
            return []
        names = {channel: channel for channel in channels}
        if party is not None:
            names.update(
                (row[0], row[1])
                for row in self._all("SELECT target, peer FROM conversations WHERE party_cf = %s", (casefold(party),))
            )
        if not names:
            return []
        low, high = sorted((to_ms(start), to_ms(end)))
        # One backward probe of the (target, time_ms, seq) index per target, in one statement.
        found = self._all(
            "SELECT latest.time_ms, t.target FROM unnest(%s::text[]) AS t(target) CROSS JOIN LATERAL ("
            "SELECT time_ms FROM messages WHERE target = t.target AND time_ms > %s AND time_ms < %s "
            "ORDER BY time_ms DESC LIMIT 1) AS latest",
            (list(names), low, high),
        )
        found.sort()
        kept = found[:limit] if start <= end else found[-limit:]
        return [TargetListing(target, names[target], from_ms(ms)) for ms, target in kept]

    def _resolve(self, target: str, ref: Ref) -> Bound | None:
        """The position a selector stands for, or None for a msgid not in this target's history."""
        if ref.msgid is None:
            return to_ms(ref.time or 0.0), None
        row = self._one("SELECT time_ms, seq FROM messages WHERE msgid = %s AND target = %s", (ref.msgid, target))
        return None if row is None else (row[0], row[1])

    def _select(self, target: str, where: Where, *, descending: bool, limit: int) -> list[HistoryMessage]:
        """The first ``limit`` messages of ``target`` matching ``where``, walking the order backwards when
        ``descending``; returned ascending either way."""
        if limit <= 0:
            return []
        direction = "DESC" if descending else "ASC"
        rows = self._all(
            f"SELECT {_COLUMNS} FROM messages WHERE target = %s AND {where[0]} "
            f"ORDER BY time_ms {direction}, seq {direction} LIMIT %s",
            (target, *where[1], limit),
        )
        if descending:
            rows.reverse()
        return [_message(row) for row in rows]

    # -- search ----------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> list[HistoryMessage]:
        readable = dict(query.targets)
        if query.party is not None:
            for (target,) in self._all("SELECT target FROM conversations WHERE party_cf = %s",
                                       (casefold(query.party),)):
                readable.setdefault(target, query.party_since)
        if not readable or query.limit <= 0:
            return []
        low_ms = to_ms(min(readable.values()))
        if query.after is not None:
            low_ms = max(low_ms, to_ms(query.after))
        high_ms = _NO_LATER_THAN if query.before is None else to_ms(query.before)
        if high_ms < low_ms:
            return []
        conditions = ["target = ANY(%s)", "time_ms >= %s", "time_ms <= %s", "command <> 'TAGMSG'"]
        params: list[Any] = [list(readable), low_ms, high_ms]
        if query.words:
            # plainto_tsquery: the words as plain words, ANDed; nothing in them is query syntax.
            conditions.append("search @@ plainto_tsquery('simple'::regconfig, %s)")
            params.append(" ".join(query.words))
        if query.sender is not None:
            # The nick as salotto.proto.casemap.casefold folds it (rfc1459).
            conditions.append("translate(lower(split_part(sender, '!', 1)), '[]\\~', '{}|^') = %s")
            params.append(query.sender)
        head = f"SELECT time_ms, seq, {_COLUMNS} FROM messages WHERE {' AND '.join(conditions)}"
        tail = " ORDER BY time_ms DESC, seq DESC LIMIT %s"

        # The time is the whole search's: each page may take only what is left of it (a page is quick,
        # but pages of matches the caller may not read can follow one another for long).
        deadline = monotonic() + query.timeout_s

        def fetch(below: object | None, n: int) -> list[tuple[object, HistoryMessage]]:
            left_ms = round((deadline - monotonic()) * 1000)
            if left_ms <= 0:
                raise SearchTimeout(f"the search took more than {query.timeout_s:g} s")
            self._db.execute(b"SELECT set_config('statement_timeout', %s, true)", (str(left_ms),))
            if below is None:
                rows = self._all(head + tail, (*params, n))
            else:
                assert isinstance(below, tuple)
                rows = self._all(head + " AND (time_ms, seq) < (%s, %s)" + tail, (*params, *below, n))
            return [((row[0], row[1]), _message(row[2:])) for row in rows]

        try:
            with self.transaction():
                return collect_newest(fetch, readable, query.limit, query.limit + 10)
        except errors.QueryCanceled:
            raise SearchTimeout(f"the search took more than {query.timeout_s:g} s") from None

    def search_enabled(self) -> bool:
        return self._one(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'messages' AND column_name = 'search'"
        ) is not None

    def set_search(self, enabled: bool) -> None:
        """Keep the search column and its index (added again, for every stored message, if they were
        dropped) or drop them (``search = false``). Only the writer, at startup."""
        with self.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            if enabled == self.search_enabled():
                return
            if enabled:
                self._db.execute(SEARCH_COLUMN.encode())
            else:
                self._db.execute(b"DROP INDEX IF EXISTS messages_search; ALTER TABLE messages DROP COLUMN search")

    # -- read markers ----------------------------------------------------------------------------

    def get_read_marker(self, account: str, target: str) -> float | None:
        row = self._one(
            "SELECT time_ms FROM read_markers WHERE account_cf = %s AND target = %s", (casefold(account), target)
        )
        return None if row is None else from_ms(row[0])

    def set_read_marker(self, account: str, target: str, time: float) -> float:
        row = self._one(
            "INSERT INTO read_markers (account_cf, target, time_ms) VALUES (%s, %s, %s) "
            "ON CONFLICT (account_cf, target) DO UPDATE "
            "SET time_ms = GREATEST(read_markers.time_ms, excluded.time_ms) RETURNING time_ms",
            (casefold(account), target, to_ms(time)),
        )
        assert row is not None
        return from_ms(row[0])

    def read_markers(self, account: str) -> list[tuple[str, float]]:
        rows = self._all(
            "SELECT target, time_ms FROM read_markers WHERE account_cf = %s ORDER BY target", (casefold(account),)
        )
        return [(target, from_ms(ms)) for target, ms in rows]

    def list_read_markers(self) -> list[tuple[str, str, float]]:
        rows = self._all("SELECT account_cf, target, time_ms FROM read_markers ORDER BY account_cf, target")
        return [(account, target, from_ms(ms)) for account, target, ms in rows]

    def delete_read_marker(self, account: str, target: str) -> bool:
        return self._run(
            "DELETE FROM read_markers WHERE account_cf = %s AND target = %s", (casefold(account), target)
        ) > 0

    # -- Web Push subscriptions ------------------------------------------------------------------

    def list_push_subscriptions(self) -> list[PushSubscription]:
        rows = self._all(
            "SELECT a.name, p.endpoint, p.p256dh, p.auth, p.created FROM push_subscriptions p "
            "JOIN accounts a ON a.name_cf = p.account_cf ORDER BY p.account_cf, p.created"
        )
        return [PushSubscription(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def put_push_subscription(self, subscription: PushSubscription) -> bool:
        cf = casefold(subscription.account)
        return self._run(
            "INSERT INTO push_subscriptions (account_cf, endpoint, p256dh, auth, created) "
            "SELECT %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM accounts WHERE name_cf = %s) "
            "ON CONFLICT (account_cf, endpoint) DO UPDATE SET p256dh = excluded.p256dh, auth = excluded.auth, "
            "created = excluded.created",
            (cf, subscription.endpoint, subscription.p256dh, subscription.auth, subscription.created, cf),
        ) > 0

    def delete_push_subscription(self, account: str, endpoint: str) -> bool:
        return self._run(
            "DELETE FROM push_subscriptions WHERE account_cf = %s AND endpoint = %s", (casefold(account), endpoint)
        ) > 0
    # -- uploaded files ----------------------------------------------------------------------------

    def add_upload(self, record: UploadRecord, max_account_bytes: int) -> bool:
        cf = casefold(record.account)
        with self.transaction():
            # One account's uploads are checked against its quota one at a time, across nodes too.
            self._run("SELECT pg_advisory_xact_lock(hashtext('uploads:' || %s))", (cf,))
            row = self._one("SELECT coalesce(sum(size), 0) FROM uploads WHERE account_cf = %s", (cf,))
            if row is not None and int(row[0]) + record.size > max_account_bytes:
                return False
            self._run(
                "INSERT INTO uploads (id, account_cf, account, name, content_type, size, created) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (record.id, cf, record.account, record.name, record.content_type, record.size, record.created),
            )
        return True

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = self._one(
            "SELECT id, account, name, content_type, size, created FROM uploads WHERE id = %s", (upload_id,))
        return UploadRecord(row[0], row[1], row[2], row[3], int(row[4]), float(row[5])) if row is not None else None

    def upload_usage(self, account: str) -> int:
        row = self._one("SELECT coalesce(sum(size), 0) FROM uploads WHERE account_cf = %s", (casefold(account),))
        return int(row[0]) if row is not None else 0

    def expired_uploads(self, cutoff: float, limit: int) -> list[str]:
        rows = self._all("SELECT id FROM uploads WHERE created < %s ORDER BY created LIMIT %s", (cutoff, limit))
        return [row[0] for row in rows]

    def delete_uploads(self, upload_ids: Iterable[str]) -> int:
        ids = list(upload_ids)
        if not ids:
            return 0
        return self._run("DELETE FROM uploads WHERE id = ANY(%s)", (ids,))


def _read_version(conn: psycopg.Connection[Any]) -> int:
    if conn.execute("SELECT to_regclass('schema_version')").fetchone() in (None, (None,)):
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return 0 if row is None else int(row[0])


def _channel(row: tuple[Any, ...], access: dict[str, str]) -> RegisteredChannel:
    _, name, founder, registered, topic, setter, topic_time, modes, key, limit = row
    return RegisteredChannel(name, founder, registered, topic, setter, topic_time, modes, key, limit, access)


def _nothing() -> None:
    """What stops the upkeep that PostgreSQL needs none of."""


def _always_on(value: Any) -> bool | None:
    """The always_on column: NULL (the server's default) or a flag."""
    return None if value is None else bool(value)
