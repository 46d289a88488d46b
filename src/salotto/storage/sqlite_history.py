"""Message history on SQLite: append, the draft/chathistory queries, retention.

https://ircv3.net/specs/extensions/chathistory. Times are stored as integer milliseconds (the precision
of the ``server-time`` tag), so a timestamp a client sends back compares exactly with the stored one.
A message's position is ``(time_ms, id)``; a msgid selector is that position, a timestamp selector sits
between messages. Each query is one range scan of the ``(target, time_ms)`` index, in the direction that
reaches the kept messages first.

Writing is on the server's busiest path (every message it relays is stored, in batches, by a thread that
shares the GIL with the loop), so a message costs two B-tree inserts: the table and
``(target, time_ms)``. The server's own msgids (``PREFIX-COUNTER``,
:meth:`salotto.server.state.Server.new_msgid`) are the row's ``id`` itself, so a lookup by msgid is a
rowid lookup and needs no index; any other msgid is kept as text, under a partial unique index, with an
``id`` below the server's. ``id`` thus orders the messages of one millisecond by insertion: by counter
within one run of the server, by insertion for the others. Retention by age walks the
``(target, time_ms)`` index target by target.
"""

from __future__ import annotations

import json
import re
import sqlite3
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from itertools import compress, repeat
from operator import eq
from typing import Any, ClassVar, Final

from salotto.proto.casemap import casefold
from salotto.storage.base import NO_TAGS, AlreadyExists, HistoryMessage, Ref, TargetListing, conversation_key
from salotto.storage.migrations import SEARCH_ROW
from salotto.storage.ranges import Bound, RangeQueries, Where

__all__ = ["SqliteHistory", "from_ms", "to_ms"]

_COLUMNS: Final = "id, msgid, target, time_ms, sender, account, command, text, tags"
_WIDTH: Final = 9  # values per row of _COLUMNS

# The server's msgids, PREFIX-COUNTER (8 hex digits chosen at random per run, the run's message counter in
# hex), as ids: SERVER_IDS + (prefix << COUNTER_BITS) + counter, above every id of another msgid. Only
# the canonical spelling matches (lower case, no leading zero), so that _msgid_text gives the msgid back;
# a counter past COUNTER_BITS (a billion messages in one run) makes a msgid of the other kind.
_SERVER_MSGID: Final = re.compile(r"([0-9a-f]{8})-([1-9a-f][0-9a-f]{0,7})")
_SERVER_IDS: Final = 1 << 62
_COUNTER_BITS: Final = 30
_COUNTER_MASK: Final = (1 << _COUNTER_BITS) - 1

# Rows per INSERT statement: a batch of n rows goes in as n's binary digits (40 = 32 + 8), so a
# commit costs a few statements whatever its size, and only these few statements are ever prepared
# (the connection's statement cache keeps them). 64 rows use 576 of SQLite's 32,766 parameters.
_ROWS_PER_INSERT: Final = (64, 32, 16, 8, 4, 2, 1)
# Columns that are NULL for most messages: msgid (the server's own msgids are ids), account (a sender
# not logged in) and tags (no client tags). Binding None costs the sqlite3 module an adapter lookup,
# 0.3 to 0.5 us a value, about what the rest of the row costs; so a row goes in with the statement of
# its shape, which has literal NULLs where the row has nothing, and the literal 'PRIVMSG' for the
# command most messages have (a text bound is copied: some 800 instructions a value). Bits of a
# shape: _HAS_MSGID...
_HAS_MSGID: Final = 1
_HAS_ACCOUNT: Final = 2
_HAS_TAGS: Final = 4
_NOT_PRIVMSG: Final = 8
# (column index, bit, what the column is when the bit is clear)
_SHAPE_COLUMNS: Final = (
    (1, _HAS_MSGID, "NULL"), (5, _HAS_ACCOUNT, "NULL"), (6, _NOT_PRIVMSG, "'PRIVMSG'"), (8, _HAS_TAGS, "NULL"),
)
_SHAPES: Final = 16
# A row's time goes in as the HistoryMessage has it, in seconds, and SQLite makes it milliseconds (what
# to_ms does, in C: round() per value cost Python some 1,000 instructions). The two round alike
# but for a time exactly halfway between two milliseconds (SQLite away from zero, Python to even),
# which none of the server's messages has: their times are whole milliseconds.
_TIME_MS: Final = "CAST(round(?*1000) AS INTEGER)"
# _ID: a row's id is the statement's first parameter plus the row's own: its counter, and the first is
# the run's base (see _server_ids), or the whole id, and the first 0. An addition in SQLite costs less
# than the call of an operator per message in Python. (A "?" after "?1" is "?2", the next after it.)


def _insert_sql(rows: int, shape: int, own: bool) -> str:
    """The INSERT of ``rows`` rows of one shape.

    A statement that can fail after changing some rows (a duplicate msgid in its tenth row) keeps a
    copy of every page it changes, to undo just itself: past 64 KiB (a batch spread over many targets,
    as private messages are) that copy goes to a temporary file. OR ROLLBACK undoes the whole
    transaction instead, so SQLite keeps no copy; ``own`` (the transaction is append_messages' own)
    asks for it."""
    marks = ["?"] * _WIDTH
    marks[0] = "?1+?"  # (see _ID)
    marks[3] = _TIME_MS
    for column, bit, literal in _SHAPE_COLUMNS:
        if not shape & bit:
            marks[column] = literal
    row = f"({','.join(marks)})"
    return f"INSERT {'OR ROLLBACK ' if own else ''}INTO messages ({_COLUMNS}) VALUES " + ",".join([row] * rows)


# Values per row of each shape.
_SHAPE_WIDTHS: Final = tuple(
    _WIDTH - sum(1 for _, bit, _ in _SHAPE_COLUMNS if not shape & bit) for shape in range(_SHAPES)
)


class _Statements(dict[tuple[int, int, bool], str]):
    """(rows, shape, own) -> its INSERT, made when first asked for (a server uses few of them)."""

    def __missing__(self, key: tuple[int, int, bool]) -> str:
        sql = self[key] = _insert_sql(*key)
        return sql


_INSERTS: Final = _Statements()

# The words of a batch's PRIVMSGs and NOTICEs into the search index (see SEARCH_TABLE in
# salotto.storage.migrations): ?2 is a JSON array of ids, each one ?1 plus the number.
_INDEX_BATCH: Final = (
    "INSERT INTO message_search (rowid, body, tgt, who) SELECT " + SEARCH_ROW.format(row="m")
    + " FROM json_each(?2) AS j JOIN messages AS m ON m.id = ?1 + j.value WHERE m.command != 'TAGMSG'"
)

# Msgids per query of SqliteHistory.redacted (SQLite takes at most 32,766 parameters).
_REDACTED_PER_QUERY: Final = 500

# Conversations whose names append_messages remembers (see SqliteHistory._conversation_names) before
# it starts over.
_MAX_CONVERSATION_NAMES: Final = 100_000

# Old messages, target after target from ``?1`` on, in (target, time_ms) index order. The recursive
# part enumerates the distinct targets with one index seek each (SQLite has no skip scan without
# statistics), the join takes each target's messages older than ``?2`` from the same index.
_OLD_MESSAGES: Final = """
WITH RECURSIVE targets(target) AS (
    SELECT (SELECT min(target) FROM messages WHERE target >= ?1)
    UNION ALL
    SELECT (SELECT min(target) FROM messages WHERE target > targets.target) FROM targets
    WHERE targets.target IS NOT NULL
)
SELECT m.id, m.target FROM targets CROSS JOIN messages AS m ON m.target = targets.target AND m.time_ms < ?2
LIMIT ?3
"""



def to_ms(time: float) -> int:
    return round(time * 1000)


def from_ms(ms: int) -> float:
    return ms / 1000


# "PREFIX-" -> the id of that prefix's counter 0, for the prefixes of stored messages (one per run of a
# server), so that the common case costs a dict lookup and an int() instead of a regex match (0.45
# against 0.9 us: this runs for every message the server relays). Only writes add to it: msgids that
# clients name in CHATHISTORY could be made up, and could otherwise fill it.
_PREFIX_IDS: dict[str, int] = {}
_MAX_PREFIXES: Final = 64


def _msgid_id(msgid: str, *, storing: bool = False) -> int | None:
    """The id a msgid of the server's form is stored as; None for any other msgid."""
    base = _PREFIX_IDS.get(msgid[:9])
    if base is None:
        match = _SERVER_MSGID.fullmatch(msgid)
        if match is None:
            return None
        base = _SERVER_IDS | int(match[1], 16) << _COUNTER_BITS
        if storing and len(_PREFIX_IDS) < _MAX_PREFIXES:
            _PREFIX_IDS[msgid[:9]] = base
    digits = msgid[9:]
    try:
        counter = int(digits, 16)
    except ValueError:
        return None
    # Formatting it back accepts only the canonical spelling (int() also takes "0x1f", "1_f", " 1F").
    if not 0 < counter <= _COUNTER_MASK or f"{counter:x}" != digits:
        return None
    return base | counter


def _msgid_text(key: int) -> str:
    return f"{key >> _COUNTER_BITS & 0xFFFFFFFF:08x}-{key & _COUNTER_MASK:x}"


def _chunks(rows: int) -> Iterator[tuple[int, int]]:
    """(first row, row count) of each INSERT statement for ``rows`` rows."""
    start = 0
    for size in _ROWS_PER_INSERT:
        while rows - start >= size:
            yield start, size
            start += size


def _before(bound: Bound) -> Where:
    """Strictly before the selector."""
    ms, rowid = bound
    if rowid is None:
        return "time_ms < ?", (ms,)
    # time_ms <= ? is the index range; the OR only filters the rows of that one millisecond.
    return "time_ms <= ? AND (time_ms < ? OR id < ?)", (ms, ms, rowid)


def _after(bound: Bound, *, inclusive: bool = False) -> Where:
    """Strictly after the selector (or at it, with ``inclusive``)."""
    ms, rowid = bound
    if rowid is None:
        return ("time_ms >= ?" if inclusive else "time_ms > ?"), (ms,)
    op = ">=" if inclusive else ">"
    return f"time_ms >= ? AND (time_ms > ? OR id {op} ?)", (ms, ms, rowid)


def _message(row: tuple[Any, ...]) -> HistoryMessage:
    key, msgid, target, time_ms, sender, account, command, text, tags = row
    return HistoryMessage(
        msgid=_msgid_text(key) if msgid is None else msgid,
        target=target,
        time=from_ms(time_ms),
        sender=sender,
        account=account,
        command=command,
        text=text,
        tags=json.loads(tags) if tags else NO_TAGS,
    )


_HEX_WORDS: dict[int, struct.Struct] = {}  # n -> n big-endian u32 (see _server_ids)


def _server_ids(msgids: tuple[str, ...]) -> tuple[int, tuple[int, ...] | list[int]] | None:
    """``(base, counters)``, each msgid's id being ``base + counter``, when every msgid is the server's
    (as :func:`_msgid_id` takes them) and of one run (one prefix); else None. In a few passes of C over
    the lot, not a call per msgid (int(), format() and a slice cost some 3,000 instructions a msgid;
    this, a few hundred)."""
    n = len(msgids)
    base = _msgid_id(msgids[0], storing=True)
    if base is None:
        return None
    digits = ("," + ",".join(msgids)).split("," + msgids[0][:9])  # ["", "1f", "20", "21"...]
    if len(digits) != n + 1:  # not every one starts with the prefix (or one has it inside as well)
        return None
    del digits[0]
    try:
        text = ",".join(digits).encode("ascii")
    except UnicodeEncodeError:
        return None
    # Canonical hex counters (see _msgid_id): 0 to 9 and a to f only, no leading zero, n of them (no
    # comma inside one); between 1 and _COUNTER_MASK is checked on the values.
    if text.translate(None, b"0123456789abcdef,") or text[:1] == b"0" or b",0" in text or text.count(b",") != n - 1:
        return None
    counters: tuple[int, ...] | list[int]
    width = len(digits[0])  # every counter this long, the common case: one struct.unpack
    if 0 < width <= 8 and len(text) == n * (width + 1) - 1 and text[width::width + 1].count(b",") == n - 1:
        words = _HEX_WORDS.get(n)
        if words is None:
            words = struct.Struct(f">{n}I")
            if len(_HEX_WORDS) < 1024:
                _HEX_WORDS[n] = words
        pad = "0" * (8 - width)
        counters = words.unpack(bytes.fromhex(pad + pad.join(digits)))
    else:
        try:
            counters = list(map(int, digits, repeat(16)))
        except ValueError:  # an empty one
            return None
    if min(counters) <= 0 or max(counters) > _COUNTER_MASK:
        return None
    return base & ~_COUNTER_MASK, counters


def _channel_rows(batch: list[HistoryMessage]) -> tuple[int, dict[int, list[object]]] | None:
    """The rows of ``batch`` by shape (see _INSERTS), when every message has the server's msgid of one
    run, no client tags and no parties (the channel messages of one run: nearly every batch of a
    server); else None.

    Column by column, by loops of C (``zip``, ``map``, ``itertools``), not row by row: the values of
    a row cost some 300 instructions where the loop over the rows in Python cost 5,000 (the storer
    shares the process's CPU with the loop thread)."""
    if not batch:
        return 0, {}
    msgids, targets, times, senders, accounts, commands, texts, tags, pairs = zip(*batch, strict=True)
    if any(tags) or pairs.count(None) != len(pairs):
        return None
    server_ids = _server_ids(msgids)
    if server_ids is None:
        return None
    base, ids = server_ids  # (see _ID)
    # (times: see _TIME_MS)
    if accounts.count(None) == len(accounts) and commands.count("PRIVMSG") == len(commands):
        return base, {0: _interleaved((ids, targets, times, senders, texts))}  # the common batch: one shape
    keys = [(account is not None) * _HAS_ACCOUNT | (command != "PRIVMSG") * _NOT_PRIVMSG
            for account, command in zip(accounts, commands, strict=True)]
    shapes: dict[int, list[object]] = {}
    for shape in set(keys):
        columns = (ids, targets, times, senders, *((accounts,) if shape & _HAS_ACCOUNT else ()),
                   *((commands,) if shape & _NOT_PRIVMSG else ()), texts)
        shapes[shape] = _interleaved([list(compress(column, map(eq, keys, repeat(shape)))) for column in columns])
    return base, shapes


def _interleaved(columns: Sequence[Sequence[object]]) -> list[object]:
    """The rows of ``columns`` one after the other in one list: by an assignment to an extended slice
    per column (a copy in C), where joining the rows of ``zip`` cost about 1,500 instructions a row."""
    width = len(columns)
    values: list[object] = [None] * (width * len(columns[0]))
    for k, column in enumerate(columns):
        values[k::width] = column
    return values


class SqliteHistory(RangeQueries):
    """The history half of :class:`~salotto.storage.sqlite.SqliteStorage`."""

    _EVERYTHING: ClassVar[Where] = ("1", ())
    _before = staticmethod(_before)
    _after = staticmethod(_after)

    _db: sqlite3.Connection
    _depth: int  # transaction nesting, kept by SqliteStorage.transaction
    # Where the next retention step by age resumes ("" = the first target); see _prune_by_age.
    _prune_cursor: str = ""
    # Whether append_messages indexes what it stores for search (salotto.storage.sqlite_search); set by
    # SqliteStorage.__init__ and set_search.
    _search_indexed: bool = False
    # Conversation target -> the two names its conversations rows were last committed with (by this
    # connection, the only writer): a private message between the same two names needs
    # no casefolding, no check and no upsert. Set by SqliteStorage.__init__.
    _conversation_names: dict[str, tuple[str, str]]

    # -- writing ---------------------------------------------------------------------------------

    def append_messages(self, messages: Iterable[HistoryMessage]) -> None:
        # Flat parameter lists, one per row shape (see _INSERTS), inserted by multi-row INSERT
        # statements: on the server this runs for every message it relays, and one statement
        # for many rows skips the per-row round trip (bind, step, reset) of executemany, about a fifth
        # of the cost of an insert. Every row carries its id, so the order of the rows does not matter.
        batch = messages if isinstance(messages, list) else list(messages)
        channel_rows = _channel_rows(batch)
        if channel_rows is not None:
            base, shapes = channel_rows
            others: list[tuple[list[object], int]] = []
            parties: dict[tuple[str, str], str] = {}
            renamed: dict[str, tuple[str, str]] = {}
        else:
            base = 0  # (see _ID: the rows have their whole ids)
            shapes, others, parties, renamed = self._rows(batch)
        if not shapes:
            return
        named = self._conversation_names
        own = self._depth == 0  # no caller's transaction around this one (see _insert_sql)
        # Forgotten until this call's own commit has landed: inside a caller's transaction (which may
        # roll back), or if anything fails, the next message between those names writes them again.
        for target in renamed:
            named.pop(target, None)
        with self.transaction():
            if others:
                # Below the server's ids, after every other: insertion order (SQLite's own choice, the
                # largest id + 1, would take the server's next msgid).
                last = self._db.execute(
                    "SELECT id FROM messages WHERE id < ? ORDER BY id DESC LIMIT 1", (_SERVER_IDS,)
                ).fetchone()
                for n, (values, at) in enumerate(others, start=1 if last is None else last[0] + 1):
                    values[at] = n
            try:
                for shape, values in shapes.items():
                    width = _SHAPE_WIDTHS[shape]
                    for start, rows in _chunks(len(values) // width):
                        self._db.execute(_INSERTS[rows, shape, own],
                                         (base, *values[start * width:(start + rows) * width]))
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"duplicate msgid in batch: {exc}") from exc
            if self._search_indexed:
                # The batch's words, in the same transaction, by one statement: the rows' ids (from their
                # first column) as a JSON array, each the statement's base plus its own (see _ID).
                ids = ",".join([",".join(map(str, values[::_SHAPE_WIDTHS[shape]]))
                                for shape, values in shapes.items()])
                self._db.execute(_INDEX_BATCH, (base, f"[{ids}]"))
            if parties:
                # The WHERE leaves the row (and its page) untouched when nothing changed: most private
                # messages go to a conversation already listed under the same names.
                self._db.executemany(
                    "INSERT INTO conversations (party_cf, target, peer) VALUES (?,?,?) "
                    "ON CONFLICT (party_cf, target) DO UPDATE SET peer = excluded.peer "
                    "WHERE peer IS NOT excluded.peer",
                    [(party, target, peer) for (party, target), peer in parties.items()],
                )
        if renamed and own:  # committed
            if len(named) + len(renamed) > _MAX_CONVERSATION_NAMES:
                named.clear()
            named.update(renamed)

    def _rows(
        self, batch: list[HistoryMessage]
    ) -> tuple[dict[int, list[object]], list[tuple[list[object], int]], dict[tuple[str, str], str],
               dict[str, tuple[str, str]]]:
        """The rows of ``batch`` one by one, for a batch :func:`_channel_rows` does not take: each row's
        values in its shape's list; where the ids of msgids not of the server's form go; the conversations
        rows to write, ``(party_cf, target) -> the other side's name``; the conversations whose rows
        these are."""
        shapes: dict[int, list[object]] = {}
        others: list[tuple[list[object], int]] = []
        parties: dict[tuple[str, str], str] = {}
        named = self._conversation_names
        renamed: dict[str, tuple[str, str]] = {}
        for msgid, target, time, sender, account, command, text, tags, pair in batch:
            key = _msgid_id(msgid, storing=True)
            shape = ((key is None) * _HAS_MSGID | (account is not None) * _HAS_ACCOUNT | bool(tags) * _HAS_TAGS
                     | (command != "PRIVMSG") * _NOT_PRIVMSG)
            values = shapes.get(shape)
            if values is None:
                values = shapes[shape] = []
            if not shape:  # the common row (the server's msgid, no account, no tags, PRIVMSG) in one step
                values += (key, target, time, sender, text)
            else:
                if key is None:
                    others.append((values, len(values)))
                    values += (0, msgid)
                else:
                    values.append(key)
                values += (target, time, sender)
                if account is not None:
                    values.append(account)
                if shape & _NOT_PRIVMSG:
                    values.append(command)
                values.append(text)
                if tags:
                    values.append(json.dumps(dict(tags), separators=(",", ":")))
            if pair is not None:
                a, b = pair
                known = renamed.get(target) or named.get(target)
                if known == pair or known == (b, a):
                    continue
                if conversation_key(a, b) != target:
                    raise ValueError(f"message {msgid}: target {target!r} is not the conversation of {a}, {b}")
                parties[casefold(a), target] = b
                parties[casefold(b), target] = a
                renamed[target] = pair
        return shapes, others, parties, renamed

    def prune_history(self, cutoff: float | None, max_per_target: int | None, max_rows: int = 10_000) -> int:
        deleted = 0
        with self.transaction():
            if cutoff is not None:
                deleted += self._prune_by_age(to_ms(cutoff), max_rows)
                deleted += self._prune_redactions(to_ms(cutoff), max_rows - deleted)
            if max_per_target is not None and deleted < max_rows:
                # A scan of the (target, time_ms) index: about 100 ms per million messages, on the
                # writer thread, once per prune interval.
                over = self._db.execute(
                    "SELECT target, COUNT(*) FROM messages GROUP BY target HAVING COUNT(*) > ?", (max_per_target,)
                ).fetchall()
                for target, count in over:
                    take = min(count - max_per_target, max_rows - deleted)
                    if take <= 0:
                        break
                    cur = self._db.execute(
                        "DELETE FROM messages WHERE id IN "
                        "(SELECT id FROM messages WHERE target = ? ORDER BY time_ms, id LIMIT ?)",
                        (target, take),
                    )
                    deleted += cur.rowcount
        return deleted

    def redact_message(self, target: str, msgid: str) -> bool:
        with self.transaction():
            row = self._find("id, time_ms", msgid, target)
            if row is None:
                return False
            self._db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
            self._db.execute("INSERT OR IGNORE INTO redactions (msgid, time_ms) VALUES (?, ?)", (msgid, row[1]))
            if " " in target:
                self._forget_emptied_conversations({target})
        return True

    def redacted(self, msgids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(msgids))
        found: set[str] = set()
        for start in range(0, len(wanted), _REDACTED_PER_QUERY):
            chunk = wanted[start:start + _REDACTED_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            found.update(row[0] for row in self._db.execute(
                f"SELECT msgid FROM redactions WHERE msgid IN ({marks})", chunk))
        return found

    def _prune_redactions(self, cutoff_ms: int, max_rows: int) -> int:
        """The records of redacted messages older than ``cutoff_ms``, at most ``max_rows`` (a scan of a
        table of one row per redaction)."""
        if max_rows <= 0:
            return 0
        cur = self._db.execute(
            "DELETE FROM redactions WHERE msgid IN (SELECT msgid FROM redactions WHERE time_ms < ? LIMIT ?)",
            (cutoff_ms, max_rows),
        )
        return cur.rowcount

    def _prune_by_age(self, cutoff_ms: int, max_rows: int) -> int:
        """Delete up to ``max_rows`` messages older than ``cutoff_ms``, target by target.

        There is no index on time alone (each index costs every insert); the (target, time_ms) index
        finds each target's old messages, and the targets are enumerated by hopping along the same index
        (about 1.5 us per target). A call that stops at ``max_rows`` leaves a cursor, so that the next
        one resumes at that target instead of hopping over the ones already cleaned."""
        rows = self._db.execute(_OLD_MESSAGES, (self._prune_cursor, cutoff_ms, max_rows)).fetchall()
        self._db.executemany("DELETE FROM messages WHERE id = ?", [(row[0],) for row in rows])
        self._forget_emptied_conversations({target for _, target in rows if " " in target})
        # A full step may have stopped inside a target: resume there. A short one went through every
        # target: the round is over, the next one starts from the first.
        self._prune_cursor = rows[-1][1] if len(rows) == max_rows else ""
        return len(rows)

    def _forget_emptied_conversations(self, targets: set[str]) -> None:
        """Private conversations (``targets``, keys of :func:`conversation_key`) that retention left
        without a message are forgotten too: who talked to whom goes with what they said. Only age
        empties a conversation (the count rule keeps the newest)."""
        for target in targets:
            if self._db.execute("SELECT 1 FROM messages WHERE target = ? LIMIT 1", (target,)).fetchone():
                continue
            first, _, second = target.partition(" ")
            self._db.execute(
                "DELETE FROM conversations WHERE party_cf IN (?, ?) AND target = ?", (first, second, target)
            )
            # The next message between them writes its rows again (the transaction may yet roll back:
            # forgetting too much only costs that write).
            self._conversation_names.pop(target, None)

    # -- reading ---------------------------------------------------------------------------------

    def get_message(self, msgid: str) -> HistoryMessage | None:
        row = self._find(_COLUMNS, msgid, None)
        return None if row is None else _message(row)

    def targets(
        self, channels: Iterable[str], party: str | None, start: float, end: float, limit: int
    ) -> list[TargetListing]:
        if limit <= 0:
            return []
        names = {channel: channel for channel in channels}
        if party is not None:
            names.update(
                self._db.execute("SELECT target, peer FROM conversations WHERE party_cf = ?", (casefold(party),))
            )
        low, high = sorted((to_ms(start), to_ms(end)))
        found: list[tuple[int, str]] = []
        for target in names:
            row = self._db.execute(
                "SELECT time_ms FROM messages WHERE target = ? AND time_ms > ? AND time_ms < ? "
                "ORDER BY time_ms DESC LIMIT 1",
                (target, low, high),
            ).fetchone()
            if row is not None:
                found.append((row[0], target))
        found.sort()
        kept = found[:limit] if start <= end else found[-limit:]
        return [TargetListing(target, names[target], from_ms(ms)) for ms, target in kept]

    # -- helpers ---------------------------------------------------------------------------------

    def _resolve(self, target: str, ref: Ref) -> Bound | None:
        """The position a selector stands for, or None for a msgid not in this target's history."""
        if ref.msgid is None:
            return to_ms(ref.time or 0.0), None  # a Ref has a time when it has no msgid
        row = self._find("time_ms, id", ref.msgid, target)
        return None if row is None else (row[0], row[1])

    def _find(self, columns: str, msgid: str, target: str | None) -> tuple[Any, ...] | None:
        """``columns`` of the message with ``msgid`` (in ``target`` when given), or None."""
        in_target, params = ("", ()) if target is None else (" AND target = ?", (target,))
        key = _msgid_id(msgid)
        if key is not None:
            row: tuple[Any, ...] | None = self._db.execute(
                f"SELECT {columns} FROM messages WHERE id = ?{in_target}", (key, *params)
            ).fetchone()
            if row is not None:
                return row
            # Not found by id: it may still be stored as text (by schema version 1, before ids were msgids).
        return self._db.execute(  # type: ignore[no-any-return]
            f"SELECT {columns} FROM messages WHERE msgid = ?{in_target}", (msgid, *params)
        ).fetchone()

    def _select(self, target: str, where: Where, *, descending: bool, limit: int) -> list[HistoryMessage]:
        """The first ``limit`` messages of ``target`` matching ``where``, walking the order backwards when
        ``descending``; returned ascending either way."""
        if limit <= 0:
            return []
        direction = "DESC" if descending else "ASC"
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE target = ? AND {where[0]} "
            f"ORDER BY time_ms {direction}, id {direction} LIMIT ?",
            (target, *where[1], limit),
        ).fetchall()
        if descending:
            rows.reverse()
        return [_message(row) for row in rows]

    def transaction(self) -> AbstractContextManager[None]:  # SqliteStorage provides it
        raise NotImplementedError
