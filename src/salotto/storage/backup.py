"""Backups and restores of a SQLite data directory, safe while the server runs.

What a backup holds. The server stores messages in the database in batches; between batches they are
only in the history journals (:mod:`salotto.storage.journal`). A copy of ``salotto.db`` alone would miss
the last ``history_store_interval_s`` of them, so :func:`backup` adds the journals' messages to the copy.
The order makes that exact: the journals are read *first*, then the database is copied in one read
transaction (SQLite's online backup API, one step: a snapshot that never blocks the server's writer in
WAL mode). A message leaves the journals only after the commit that stored it; so a message delivered
before the journals were read is either in the snapshot or was still in a journal when it was read.
Every message anyone received before the backup began is in the backup. Of those delivered during the
milliseconds between reading the journals and the snapshot, some may be in it.

A restore replaces the data directory's database with a backup's. It holds the history journals' locks
(:class:`~salotto.storage.journal.Journal`, the same ``flock`` a running server holds) from its first
check to the end, so a server with history on cannot run on the directory meanwhile; a server with
history off keeps no journal, and its open database connection is found by trying to take the database
out of WAL mode, which SQLite refuses while another connection has it open.

Both copy with the rights of whoever runs them: these are operator tools on files, not IRC commands, and
check no IRC permission. A backup file holds password hashes and private messages; it is created mode
0600, as the database is.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from salotto.storage.base import AlreadyExists, HistoryMessage, SchemaTooNew, StorageError
from salotto.storage.journal import JOURNAL_FILENAMES, Journal, JournalError, read_journal
from salotto.storage.migrations import SCHEMA_VERSION
from salotto.storage.sqlite import BUSY_TIMEOUT_MS, DB_FILENAME, SqliteStorage, migrate

__all__ = ["BackupError", "BackupResult", "Contents", "backup", "inspect", "journal_messages", "restore"]

_SQLITE_HEADER: Final = b"SQLite format 3\x00"
# The tables every schema version has: what tells a salotto database from another SQLite file.
_CORE_TABLES: Final = frozenset({"accounts", "channels", "messages"})
# Files SQLite keeps beside a database: a stale one next to a restored database would be replayed into it.
_SIDE_FILES: Final = ("-wal", "-shm", "-journal")
# How long a restore waits for another connection to let go of the database before calling it in use.
_IN_USE_WAIT_S: Final = 0.5


class BackupError(Exception):
    """A backup, restore or export cannot be done; one line that says why."""


@dataclass(frozen=True, slots=True)
class Contents:
    """What a database holds, for the summary line the commands print."""

    schema_version: int
    accounts: int
    channels: int
    messages: int


def journal_messages(data_dir: Path) -> list[HistoryMessage]:
    """Every message the data directory's history journals hold (stored in the database or not), by time.

    The journals are read without their locks: a running server appends a record in one ``write()``, and a
    record read half-written is ignored (its output had not left yet: it was not delivered)."""
    messages: list[HistoryMessage] = []
    for name in JOURNAL_FILENAMES:
        path = data_dir / name
        if not path.exists():
            continue
        try:
            messages += read_journal(path)
        except JournalError as exc:
            raise BackupError(str(exc)) from None
    messages.sort(key=lambda m: m.time)  # stable: the order of one journal stays
    return messages


@dataclass(frozen=True, slots=True)
class BackupResult:
    contents: Contents  # what the backup file holds
    from_journals: int  # of its messages, those that were only in the history journals
    source_version: int  # the live database's schema version (the copy is at this salotto's)


def backup(data_dir: Path, target: Path, *, force: bool = False) -> BackupResult:
    """Copy ``data_dir``'s database to ``target`` with the journals' messages; see the module docstring.

    The copy is one self-contained file (no WAL beside it), at this salotto's schema version, mode 0600.
    ``target`` is written whole or not at all: the copy is made beside it and renamed into place.
    """
    database = data_dir / DB_FILENAME
    if not data_dir.is_dir():
        raise BackupError(f"no data directory {data_dir} (set --data-dir, or data_dir in the --config file)")
    if not database.is_file():
        raise BackupError(f"no salotto database in {data_dir} ({DB_FILENAME} is missing)")
    _refuse_own_files(target, data_dir)
    if target.is_dir():
        raise BackupError(f"{target} is a directory; give the backup a file name")
    if (target.exists() or target.is_symlink()) and not force:
        raise BackupError(f"{target} exists; use --force to overwrite it")
    # First the journals, then the snapshot: see the module docstring for why this order loses nothing.
    waiting = journal_messages(data_dir)
    with _partial_file(target) as partial:
        _copy(database, partial)
        version, added = _complete(partial, waiting, database)
        contents = inspect(partial)
        _place(partial, target, force=force)
    return BackupResult(contents, added, version)


def _complete(path: Path, messages: list[HistoryMessage], database: Path) -> tuple[int, int]:
    """Bring the copy at ``path`` to this salotto's schema, add the ``messages`` it lacks, make it one
    file. Returns the schema version it had and the number of messages added."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        # The copy carries the live database's WAL mode: back to a rollback journal, so that the file is
        # all there is (no -wal beside it to lose), then the schema, then the messages.
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA foreign_keys = ON")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        try:
            migrate(db)
        except SchemaTooNew:
            raise BackupError(
                f"{database} has schema version {version}, newer than this salotto knows ({SCHEMA_VERSION}): "
                "back it up with the salotto that runs the server"
            ) from None
        except StorageError as exc:
            raise BackupError(f"cannot bring the copy of {database} to this salotto's schema: {exc}") from None
        storage = SqliteStorage(db, readonly=False)
        missing = [m for m in messages if storage.get_message(m.msgid) is None]
        return version, _store(storage, missing)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot write the copy of {database}: {exc}") from None
    finally:
        db.close()


def _store(storage: SqliteStorage, messages: list[HistoryMessage]) -> int:
    """Store ``messages`` at once, or one by one past one the database refuses (as the server does)."""
    if not messages:
        return 0
    try:
        storage.append_messages(messages)
    except (AlreadyExists, ValueError):
        stored = 0
        for message in messages:
            with contextlib.suppress(AlreadyExists, ValueError):
                storage.append_messages([message])
                stored += 1
        return stored
    return len(messages)


def inspect(path: Path) -> Contents:
    """What the salotto database at ``path`` holds; BackupError if it is not one this salotto can open."""
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except IsADirectoryError:
        raise BackupError(f"{path} is a directory, not a salotto backup") from None
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror}") from None
    if header != _SQLITE_HEADER:
        raise BackupError(f"{path} is not a salotto backup (not an SQLite database)")
    try:
        with contextlib.closing(_connect_readonly(path)) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if version == 0 or not tables >= _CORE_TABLES:
                raise BackupError(f"{path} is an SQLite database, but not salotto's")
            if version > SCHEMA_VERSION:
                raise BackupError(
                    f"{path} has schema version {version}; this salotto knows up to {SCHEMA_VERSION}: "
                    "restore it with the salotto that made it, or a newer one"
                )
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"{path} is damaged: {check}")
            counts = [int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) for table in
                      ("accounts", "channels", "messages")]
    except sqlite3.Error as exc:
        raise BackupError(f"{path} cannot be read as a salotto database: {exc}") from None
    return Contents(version, *counts)


def restore(source: Path, data_dir: Path, *, force: bool = False) -> Contents:
    """Make the backup ``source`` the database of ``data_dir``; see the module docstring.

    Refuses while a server runs on ``data_dir``, and, without ``force``, when it holds data already.
    The history journals are emptied (their messages belong to the database replaced); the server's
    other files (``server-secret``) stay. The server brings an older backup to its schema when it starts.
    """
    contents = inspect(source)
    database = data_dir / DB_FILENAME
    with contextlib.suppress(OSError):
        if source.resolve() == database.resolve():
            raise BackupError(f"{source} is the database of {data_dir} itself")
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the data directory {data_dir}: {exc.strerror}") from None
    if not data_dir.is_dir():
        raise BackupError(f"{data_dir} is not a directory")
    with _locked_journals(data_dir) as journals:
        held = [name for name in (DB_FILENAME,) if (data_dir / name).exists()]
        held += [journal.path.name for journal in journals if journal.size]
        if held and not force:
            raise BackupError(f"{data_dir} holds salotto data already ({', '.join(held)}); "
                              "use --force to replace it")
        if database.exists():
            _take_over(database)
        with _partial_file(database) as partial:
            _copy(source, partial)
            for suffix in _SIDE_FILES:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{database}{suffix}")
            _place(partial, database, force=True)
        for journal in journals:
            try:
                journal.clear()
            except JournalError as exc:
                raise BackupError(str(exc)) from None
        _give_to_owner(data_dir, [database])
    return contents


@contextlib.contextmanager
def _locked_journals(data_dir: Path) -> Iterator[list[Journal]]:
    """Both journals of ``data_dir``, opened (created if need be) and locked as a running server locks them."""
    journals: list[Journal] = []
    try:
        for name in JOURNAL_FILENAMES:
            created = not (data_dir / name).exists()
            try:
                journals.append(Journal(data_dir / name))
            except JournalError as exc:
                if "in use" in str(exc):
                    raise BackupError(f"a salotto server is running on {data_dir} (it holds {name}): "
                                      "stop it first") from None
                raise BackupError(str(exc)) from None
            if created:
                _give_to_owner(data_dir, [data_dir / name])
        yield journals
    finally:
        for journal in journals:
            journal.close()


def _take_over(database: Path) -> None:
    """Make sure no other connection has ``database`` open (a server with history off keeps one, and keeps
    no journal): SQLite takes a database out of WAL mode only with no other connection on it. That also
    checkpoints its WAL and removes it. A database SQLite cannot read at all is simply replaced."""
    try:
        db = sqlite3.connect(f"file:{quote(str(database))}?mode=rw", uri=True, isolation_level=None,
                             timeout=_IN_USE_WAIT_S)
    except sqlite3.Error:
        return
    try:
        mode = db.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            return
        mode = "in use"
    except sqlite3.DatabaseError:
        return  # not a database (or damaged beyond reading): nothing to keep
    finally:
        db.close()
    if str(mode).lower() != "delete":
        raise BackupError(f"{database} is open in another process (a salotto server with history off, or a "
                          "backup running): stop it first")


def _copy(source: Path, target: Path) -> None:
    """Copy the database ``source`` into the empty file ``target`` with SQLite's online backup API, in one
    step (``pages=-1``): one read transaction, so a snapshot, which in WAL mode never blocks a writer."""
    with contextlib.closing(_connect_readonly(source)) as src, \
            contextlib.closing(sqlite3.connect(target, isolation_level=None)) as copy:
        try:
            src.backup(copy)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot copy {source}: {exc}") from None


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection: it can never change the file, whoever else has it open."""
    try:
        db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {path}: {exc}") from None
    return db


def _refuse_own_files(target: Path, data_dir: Path) -> None:
    """A backup written over the database it copies (or its WAL, or a journal) would destroy it."""
    own = [data_dir / DB_FILENAME, *(data_dir / f"{DB_FILENAME}{s}" for s in _SIDE_FILES),
           *(data_dir / name for name in JOURNAL_FILENAMES)]
    with contextlib.suppress(OSError):
        resolved = target.resolve()
        if any(resolved == path.resolve() for path in own):
            raise BackupError(f"{target} is one of the data directory's own files; write the backup elsewhere")


@contextlib.contextmanager
def _partial_file(target: Path) -> Iterator[Path]:
    """An empty file (mode 0600) beside ``target``, removed unless :func:`_place` moved it there."""
    directory = target.parent
    if not directory.is_dir():
        why = f"{directory} is not a directory" if directory.exists() else f"no directory {directory}"
        raise BackupError(f"cannot write {target}: {why}")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=directory)
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
    finally:
        for path in (partial, *(Path(f"{partial}{suffix}") for suffix in _SIDE_FILES)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _place(partial: Path, target: Path, *, force: bool) -> None:
    """Move the finished ``partial`` to ``target``, durably; without ``force``, never over a file."""
    try:
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        if force:
            os.replace(partial, target)
        else:
            try:
                os.link(partial, target)  # fails if target exists, where os.replace would overwrite
            except FileExistsError:
                raise BackupError(f"{target} exists; use --force to overwrite it") from None
            except OSError:  # a file system without hard links
                if target.exists():
                    raise BackupError(f"{target} exists; use --force to overwrite it") from None
                os.replace(partial, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from None


def _give_to_owner(data_dir: Path, paths: Iterable[Path]) -> None:
    """Run as root (``sudo salotto restore``), files created here would belong to root and the server's own
    user could not open them: they get the data directory's owner."""
    if os.geteuid() != 0:
        return
    owner = data_dir.stat()
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            if (path.stat().st_uid, path.stat().st_gid) != (owner.st_uid, owner.st_gid):
                os.chown(path, owner.st_uid, owner.st_gid)

