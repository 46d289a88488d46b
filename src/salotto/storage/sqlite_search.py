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
import sqlite3
import time
from typing import Final

from salotto.proto.casemap import casefold
from salotto.storage.base import HistoryMessage
from salotto.storage.migrations import SEARCH_BUILD, SEARCH_TRIGGERS
from salotto.storage.search import SearchInvalid, SearchQuery, SearchTimeout, collect_newest, name_token
from salotto.storage.sqlite_history import _message

__all__ = ["SqliteSearch"]

_KEY_SHIFT: Final = 20  # (see the migration: key = time_ms << 20 | rank within the millisecond)
# Matches fetched per page: a few more than asked, so that one dropped match (a channel's message from
# before the caller may read it) does not cost a second query.
_PAGE_EXTRA: Final = 10
# SQLite's virtual machine instructions between two looks at the clock.
_PROGRESS_STEPS: Final = 10_000

_COLUMNS: Final = "m.id, m.msgid, m.target, m.time_ms, m.sender, m.account, m.command, m.text, m.tags"
_BY_INDEX: Final = f"""
SELECT message_search.rowid, {_COLUMNS}
FROM message_search JOIN search_keys AS k ON k.key = message_search.rowid JOIN messages AS m ON m.id = k.id
WHERE message_search MATCH ? AND message_search.rowid >= ? AND message_search.rowid < ?
ORDER BY message_search.rowid DESC LIMIT ?
"""
_LATEST: Final = f"""
SELECT m.time_ms, m.id, {_COLUMNS} FROM messages AS m
WHERE m.target = ? AND m.time_ms >= ? AND m.time_ms <= ? AND m.command != 'TAGMSG'
ORDER BY m.time_ms DESC, m.id DESC LIMIT ?
"""
_NO_LATER_THAN: Final = 1 << 42  # milliseconds: past the year 2100


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
            parts.append("who : " + _quoted(name_token("n", query.sender)))
        parts.append("tgt : (" + " OR ".join(_quoted(name_token("t", t)) for t in readable) + ")")
        match = " AND ".join(parts)
        low = low_ms << _KEY_SHIFT
        high = (high_ms + 1) << _KEY_SHIFT
        db = self._db

        def fetch(below: object | None, n: int) -> list[tuple[object, HistoryMessage]]:
            rows = db.execute(_BY_INDEX, (match, low, high if below is None else below, n)).fetchall()
            return [(row[0], _message(row[1:])) for row in rows]

        return collect_newest(fetch, readable, query.limit, query.limit + _PAGE_EXTRA)

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
        """Whether the index is kept (its triggers exist)."""
        return self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'message_search_insert'"
        ).fetchone() is not None

    def set_search(self, enabled: bool) -> None:
        """Keep the index (``search = true``: built again from the stored messages if it was off) or drop
        it and stop indexing (``search = false``). Only the writer, at startup."""
        if enabled == self.search_enabled():
            return
        clear = "DELETE FROM search_keys; INSERT INTO message_search (message_search) VALUES ('delete-all');"
        if enabled:
            script = clear + SEARCH_TRIGGERS + SEARCH_BUILD
        else:
            script = "DROP TRIGGER message_search_insert; DROP TRIGGER message_search_delete;" + clear
        try:
            self._db.executescript(f"BEGIN IMMEDIATE;\n{script}\nCOMMIT;")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
