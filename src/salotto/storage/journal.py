"""The history journal: an append-only file of the messages delivered but not yet in the database.

Why it exists: the server must not send a message that a ``kill -9`` could lose, so each loop pass's
messages must be durable before that pass's output leaves. Doing that with one SQLite transaction per
pass costs little per message but a lot per transaction (locks, a WAL frame for every page touched, and
an index leaf rebalanced over three siblings almost every time: B-tree indexes that only ever grow at
their right edge redistribute their last pages on each split). So a pass's messages are appended here
in one ``write()`` instead, and go into the database in larger batches (see
:class:`salotto.storage.store.Store`); after a crash the next start stores what the journal holds.

Durability is the same as the database's (WAL with ``synchronous=NORMAL``): a write is in the kernel's
page cache when ``write()`` returns, which outlives the process; a power cut can lose the last
moments, and a torn last record is detected (length and CRC-32) and ignored. A write the disk cuts short
is cut off again at once, so that later records never sit behind a torn one (reading stops there); if
even that fails, the journal takes no record until it is emptied, and history stores each pass in the
database directly meanwhile.

Format: records of ``<length:u32 le><crc32:u32 le><payload>``, the payload a :mod:`marshal`-ed tuple of
the messages' columns, ``(msgids, targets, times, senders, accounts, commands, texts, extras)``: a tuple
of one value per message each, and a list of ``(index, tags, parties)`` for the messages that have
client tags (a dict) or parties. Columns, because they are made and marshalled by loops of C (a tuple
per message cost a third more). A record of fewer than _COLUMNS_FROM messages is a pair instead, a list
of ``(msgid, target, time, sender, account, command, text)`` and the same extras (as every record of
salotto 0.1.0 was: a journal that a crash left behind reads as well). marshal rather than pickle:
loading it never runs code; rather than JSON: a sixth of the cost. Every loaded value is checked
against that shape.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from salotto.storage.base import NO_TAGS, HistoryMessage

__all__ = ["JOURNAL_FILENAMES", "Journal", "JournalError", "read_journal"]

# Two journals in the data directory: the server appends to one while the other's messages are being
# stored (see salotto.storage.store).
JOURNAL_FILENAMES: Final = ("history-0.journal", "history-1.journal")
_HEADER: Final = struct.Struct("<II")
# Messages from which a record is written as columns rather than a row per message (below, the columns'
# own tuples cost more than they save).
_COLUMNS_FROM: Final = 8


class JournalError(Exception):
    """The journal file cannot be read or written (the message says which and why)."""


class Journal:
    """One journal file, opened for appending; :meth:`read` gives back what it holds."""

    __slots__ = ("_fd", "_torn", "path", "size")

    def __init__(self, path: Path) -> None:
        self.path = path
        self._torn = False  # a cut-short write left a torn record that could not be cut off (see append)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open {path}: {exc.strerror}") from None
        try:
            # A second server on the same data directory would store this one's journal and empty it.
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.size = os.fstat(self._fd).st_size
        except OSError as exc:
            os.close(self._fd)
            if isinstance(exc, BlockingIOError):
                raise JournalError(f"{path} is in use by another salotto process") from None
            raise JournalError(f"cannot open {path}: {exc.strerror}") from None

    def append(self, messages: Sequence[HistoryMessage]) -> None:
        """Append one record; when this returns, a crash of the process no longer loses them."""
        if self._torn:
            # Recovery stops at a torn record: nothing appended behind it would come back after a crash.
            raise JournalError(f"cannot write {self.path}: it ends in a torn record until it is emptied")
        if not messages:
            return
        # The common message has no tags and no parties: those few that have them are listed apart.
        if len(messages) < _COLUMNS_FROM:  # a row each (the record of a quiet pass: a tuple per column costs more)
            extras = [(i, dict(m[7]) if m[7] else None, m[8]) for i, m in enumerate(messages) if m[7] or m[8]]
            payload = marshal.dumps(([m[:7] for m in messages], extras))
        else:
            msgids, targets, times, senders, accounts, commands, texts, tags, parties = zip(*messages, strict=True)
            extras = (
                [(i, dict(m[7]) if m[7] else None, m[8]) for i, m in enumerate(messages) if m[7] or m[8]]
                if any(tags) or parties.count(None) != len(parties) else []
            )
            payload = marshal.dumps((msgids, targets, times, senders, accounts, commands, texts, extras))
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        try:
            written = os.write(self._fd, record)
        except OSError as exc:
            raise JournalError(f"cannot write {self.path}: {exc.strerror}") from None
        if written != len(record):  # a full disk can cut a write short: cut the torn record off again
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                self._torn = True
                self.size += written
            raise JournalError(f"cannot write {self.path}: short write ({written} of {len(record)} bytes)")
        self.size += written

    def clear(self) -> None:
        """Empty the file: everything it held is in the database."""
        try:
            os.ftruncate(self._fd, 0)
        except OSError as exc:
            raise JournalError(f"cannot truncate {self.path}: {exc.strerror}") from None
        self.size = 0
        self._torn = False

    def close(self) -> None:
        os.close(self._fd)

    def read(self) -> list[HistoryMessage]:
        return read_journal(self.path)


def read_journal(path: Path) -> list[HistoryMessage]:
    """Every message of the journal file's complete records, in order. A torn or damaged record ends the
    journal: it was being written when the process died, and nobody received what it held."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"cannot read {path}: {exc.strerror}") from None
    return list(_messages(data))


def _messages(data: bytes) -> Iterator[HistoryMessage]:
    at = 0
    while at + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, at)
        payload = data[at + _HEADER.size : at + _HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        at += _HEADER.size + length
        try:
            record = marshal.loads(payload)
        except (ValueError, EOFError, TypeError):
            return
        messages = _record_messages(record)
        if messages is None:
            return
        yield from messages


def _record_messages(record: Any) -> list[HistoryMessage] | None:
    """The messages of one record, or None if it is not of the journal's shape."""
    if not isinstance(record, tuple):
        return None
    if len(record) == 8:
        *columns, extras = record
        if not all(isinstance(column, tuple) and len(column) == len(columns[0]) for column in columns):
            return None
        rows: Any = list(zip(*columns, strict=True))
    elif len(record) == 2:  # a row per message (a record of a few messages, and every record of salotto 0.1.0)
        rows, extras = record
    else:
        return None
    if not isinstance(rows, list) or not isinstance(extras, list):
        return None
    more: dict[int, tuple[Any, Any]] = {}
    for extra in extras:
        if not isinstance(extra, tuple) or len(extra) != 3 or not isinstance(extra[0], int):
            return None
        more[extra[0]] = extra[1:]
    messages = []
    for i, row in enumerate(rows):
        message = _message(row, *more.get(i, (None, None)))
        if message is None:
            return None
        messages.append(message)
    return messages


def _message(row: Any, tags: Any, parties: Any) -> HistoryMessage | None:
    """The message a journal row holds, or None if the row is not of the journal's shape."""
    if not isinstance(row, tuple) or len(row) != 7:
        return None
    msgid, target, time, sender, account, command, text = row
    if not all(isinstance(v, str) for v in (msgid, target, sender, command, text)):
        return None
    if not isinstance(time, (int, float)) or isinstance(time, bool):
        return None
    if not (account is None or isinstance(account, str)):
        return None
    if tags is not None and not (
        isinstance(tags, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    ):
        return None
    if parties is not None and not (
        isinstance(parties, tuple) and len(parties) == 2 and all(isinstance(p, str) for p in parties)
    ):
        return None
    return HistoryMessage(msgid, target, time, sender, account, command, text, tags or NO_TAGS, parties)
