"""Full-text search on SQLite: FTS5 (see ``SEARCH_TABLES`` in :mod:`salotto.storage.migrations`).

One MATCH finds the words, the sender and the targets together: ``body : ("w1" AND "w2") AND who : "n.."
AND tgt : ("t.." OR "t..")``, so the engine intersects the doclists and hands out the newest matches
first (its rowid is a key in time order), and the query stops after the page it needs: a common word in
channels the caller cannot read costs skipping, not fetching. A search with neither words nor sender
reads each target's newest messages from the ``(target, time_ms)`` index instead.

A search runs on a reader connection with a progress handler that stops it at its deadline
(:class:`~salotto.storage.search.SearchTimeout`).
"""

from __future__ import annotations

import heapq
import json
import sqlite3
import time
from typing import Final

from salotto.proto.casemap import casefold
from salotto.storage.base import HistoryMessage
from salotto.storage.migrations import SEARCH_BUILD, SEARCH_TRIGGER
from salotto.storage.search import SearchInvalid, SearchQuery, SearchTimeout, collect_newest, target_token, words
from salotto.storage.sqlite_history import _message

__all__ = ["SqliteSearch"]

_KEY_SHIFT: Final = 20  # (see the migration: key = time_ms << 20 | (id & _KEY_MASK))
_KEY_MASK: Final = (1 << _KEY_SHIFT) - 1
# Matches fetched per page: a few more than asked, so that one dropped match (a channel's message from
# before the caller may read it) does not cost a second query.
_PAGE_EXTRA: Final = 10
# SQLite's virtual machine instructions between two looks at the clock.
_PROGRESS_STEPS: Final = 10_000

_COLUMNS: Final = "m.id, m.msgid, m.target, m.time_ms, m.sender, m.account, m.command, m.text, m.tags"
_BY_INDEX: Final = """
SELECT rowid FROM message_search WHERE message_search MATCH ? AND rowid >= ? AND rowid < ? ORDER BY rowid DESC LIMIT ?
"""
# The messages of a page of keys: those of the readable targets (?1) in the keys' milliseconds (?2), by
# the (target, time_ms) index; matched to their keys by id.
_BY_KEYS: Final = f"""
SELECT {_COLUMNS} FROM messages AS m
WHERE m.target IN (SELECT value FROM json_each(?1)) AND m.time_ms IN (SELECT value FROM json_each(?2))
  AND m.command != 'TAGMSG'
"""
_LATEST: Final = f"""
SELECT m.time_ms, m.id, {_COLUMNS} FROM messages AS m
WHERE m.target = ? AND m.time_ms >= ? AND m.time_ms <= ? AND m.command != 'TAGMSG'
ORDER BY m.time_ms DESC, m.id DESC LIMIT ?
"""
_NO_LATER_THAN: Final = 1 << 42  # milliseconds: past the year 2100


# What a page holds in place of the matches it skipped (see fetch): never readable.
_UNREADABLE: Final = HistoryMessage("", "", 0.0, "", None, "PRIVMSG", "")


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


class SqliteSearch:
    """The search half of :class:`~salotto.storage.sqlite.SqliteStorage`."""

    _db: sqlite3.Connection

    def search(self, query: SearchQuery) -> list[HistoryMessage]:
        readable = dict(query.targets)
        if query.party is not None:
            for (target,) in self._db.execute(
                "SELECT target FROM conversations WHERE party_cf = ?", (casefold(query.party),)
            ):
                readable.setdefault(target, query.party_since)
        if not readable or query.limit <= 0:
            return []
        low_ms = round(min(readable.values()) * 1000)
        if query.after is not None:
            low_ms = max(low_ms, round(query.after * 1000))
        high_ms = _NO_LATER_THAN if query.before is None else round(query.before * 1000)
        # A bound past the year 2100 either way (9999-12-31 is a valid timestamp) is that year: shifted
        # into a key, it would not fit in SQLite's 64 bits.
        low_ms = min(max(low_ms, -_NO_LATER_THAN), _NO_LATER_THAN + 1)
        high_ms = min(max(high_ms, -_NO_LATER_THAN - 1), _NO_LATER_THAN)
        if high_ms < low_ms:
            return []
        deadline = time.monotonic() + query.timeout_s
        self._db.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
        try:
            if query.words or query.sender is not None:
                return self._by_index(query, readable, low_ms, high_ms)
            return self._latest(query, readable, low_ms, high_ms)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise SearchTimeout(f"the search took more than {query.timeout_s:g} s") from None
            if "phrase" in str(exc):  # a word FTS5 cuts in two (see salotto.storage.search.words)
                raise SearchInvalid(f"cannot search for that text: {exc}") from None
            raise
        finally:
            self._db.set_progress_handler(None, 0)

    def _by_index(self, query: SearchQuery, readable: dict[str, float], low_ms: int,
                  high_ms: int) -> list[HistoryMessage]:
        parts = []
        if query.words:
            parts.append("body : (" + " AND ".join(_quoted(w) for w in query.words) + ")")
        if query.sender is not None:
            nick_words = words(query.sender)
            if nick_words:  # the nick's words; the whole nick is compared below
                parts.append("who : (" + " AND ".join(_quoted(w) for w in nick_words) + ")")
        parts.append("tgt : (" + " OR ".join(_quoted(target_token(t)) for t in readable) + ")")
        match = " AND ".join(parts)
        low = low_ms << _KEY_SHIFT
        high = (high_ms + 1) << _KEY_SHIFT
        db = self._db

        targets = json.dumps(list(readable))

        def fetch(below: object | None, n: int) -> list[tuple[object, HistoryMessage]]:
            keys = [row[0] for row in db.execute(_BY_INDEX, (match, low, high if below is None else below, n))]
            if not keys:
                return []
            times = json.dumps(sorted({key >> _KEY_SHIFT for key in keys}))
            found: dict[int, list[HistoryMessage]] = {}
            for row in db.execute(_BY_KEYS, (targets, times)):
                key = row[3] << _KEY_SHIFT | row[0] & _KEY_MASK  # (time_ms, id)
                found.setdefault(key, []).append(_message(row))
            # A key without a message is one of a target the caller may not read (or deleted meanwhile):
            # skipped, but it still moves the page on.
            page: list[tuple[object, HistoryMessage]] = []
            for key in keys:
                page.extend((key, message) for message in found.get(key, ()))
            if len(keys) == n:  # there may be more: the page ends at the last key, and is full
                if not page or page[-1][0] != keys[-1]:
                    page.append((keys[-1], _UNREADABLE))
                page[:0] = [(keys[0], _UNREADABLE)] * (n - len(page))
            return page

        return collect_newest(fetch, readable, query.limit, query.limit + _PAGE_EXTRA, query.sender)

    def _latest(self, query: SearchQuery, readable: dict[str, float], low_ms: int,
                high_ms: int) -> list[HistoryMessage]:
        newest: list[tuple[int, int, HistoryMessage]] = []
        for target, since in readable.items():
            start = max(low_ms, round(since * 1000))
            rows = self._db.execute(_LATEST, (target, start, high_ms, query.limit)).fetchall()
            newest.extend((row[0], row[1], _message(row[2:])) for row in rows)
        kept = heapq.nlargest(query.limit, newest, key=lambda item: (item[0], item[1]))
        kept.reverse()
        return [item[2] for item in kept]

    # -- the writer's switch -----------------------------------------------------------------------

    def search_enabled(self) -> bool:
        """Whether the index is kept (its trigger exists)."""
        return self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'message_search_delete'"
        ).fetchone() is not None

    def set_search(self, enabled: bool) -> None:
        """Keep the index (``search = true``: built again from the stored messages if it was off) or drop
        it and stop indexing (``search = false``). Only the writer, at startup."""
        if enabled == self.search_enabled():
            self._search_indexed = enabled
            return
        clear = "INSERT INTO message_search (message_search) VALUES ('delete-all');"
        script = clear + SEARCH_TRIGGER + SEARCH_BUILD if enabled else "DROP TRIGGER message_search_delete;" + clear
        try:
            self._db.executescript(f"BEGIN IMMEDIATE;\n{script}\nCOMMIT;")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._search_indexed = enabled
