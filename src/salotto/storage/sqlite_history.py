"""Message history on SQLite: append, the draft/chathistory queries, retention.

https://ircv3.net/specs/extensions/chathistory. Times are stored as integer milliseconds (the precision
of the ``server-time`` tag), so a timestamp a client sends back compares exactly with the stored one.
A message's position is ``(time_ms, id)``, ``id`` being the insertion order; a msgid selector is that
position, a timestamp selector sits between messages. Each query is one range scan of the
``(target, time_ms)`` index, in the direction that reaches the kept messages first.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Final

from salotto.proto.casemap import casefold
from salotto.storage.base import AlreadyExists, HistoryMessage, Ref, TargetListing, conversation_key

__all__ = ["SqliteHistory", "from_ms", "to_ms"]

_COLUMNS: Final = "msgid, target, time_ms, sender, account, command, text, tags"

# A resolved selector: (time_ms, id) for a msgid, (time_ms, None) for a timestamp.
_Bound = tuple[int, int | None]
_Where = tuple[str, tuple[int, ...]]


def to_ms(time: float) -> int:
    return round(time * 1000)


def from_ms(ms: int) -> float:
    return ms / 1000


def _before(bound: _Bound) -> _Where:
    """Strictly before the selector."""
    ms, rowid = bound
    if rowid is None:
        return "time_ms < ?", (ms,)
    # time_ms <= ? is the index range; the OR only filters the rows of that one millisecond.
    return "time_ms <= ? AND (time_ms < ? OR id < ?)", (ms, ms, rowid)


def _after(bound: _Bound, *, inclusive: bool = False) -> _Where:
    """Strictly after the selector (or at it, with ``inclusive``)."""
    ms, rowid = bound
    if rowid is None:
        return ("time_ms >= ?" if inclusive else "time_ms > ?"), (ms,)
    op = ">=" if inclusive else ">"
    return f"time_ms >= ? AND (time_ms > ? OR id {op} ?)", (ms, ms, rowid)


def _message(row: tuple[Any, ...]) -> HistoryMessage:
    msgid, target, time_ms, sender, account, command, text, tags = row
    return HistoryMessage(
        msgid=msgid,
        target=target,
        time=from_ms(time_ms),
        sender=sender,
        account=account,
        command=command,
        text=text,
        tags=json.loads(tags) if tags else {},
    )


class SqliteHistory:
    """The history half of :class:`~salotto.storage.sqlite.SqliteStorage`."""

    _db: sqlite3.Connection

    # -- writing ---------------------------------------------------------------------------------

    def append_messages(self, messages: Iterable[HistoryMessage]) -> None:
        rows: list[tuple[object, ...]] = []
        parties: dict[tuple[str, str], str] = {}  # (party_cf, target) -> the other side's name
        for m in messages:
            rows.append((
                m.msgid, m.target, to_ms(m.time), m.sender, m.account, m.command, m.text,
                json.dumps(dict(m.tags), separators=(",", ":")) if m.tags else None,
            ))
            if m.parties is not None:
                a, b = m.parties
                if conversation_key(a, b) != m.target:
                    raise ValueError(f"message {m.msgid}: target {m.target!r} is not the conversation of {a}, {b}")
                parties[casefold(a), m.target] = b
                parties[casefold(b), m.target] = a
        if not rows:
            return
        with self.transaction():
            try:
                self._db.executemany(
                    f"INSERT INTO messages ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", rows
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"duplicate msgid in batch: {exc}") from exc
            if parties:
                self._db.executemany(
                    "INSERT INTO conversations (party_cf, target, peer) VALUES (?,?,?) "
                    "ON CONFLICT (party_cf, target) DO UPDATE SET peer = excluded.peer",
                    [(party, target, peer) for (party, target), peer in parties.items()],
                )

    def prune_history(self, cutoff: float | None, max_per_target: int | None, max_rows: int = 10_000) -> int:
        deleted = 0
        with self.transaction():
            if cutoff is not None:
                cur = self._db.execute(
                    "DELETE FROM messages WHERE id IN "
                    "(SELECT id FROM messages WHERE time_ms < ? ORDER BY time_ms LIMIT ?)",
                    (to_ms(cutoff), max_rows),
                )
                deleted += cur.rowcount
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

    # -- reading ---------------------------------------------------------------------------------

    def get_message(self, msgid: str) -> HistoryMessage | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM messages WHERE msgid = ?", (msgid,)).fetchone()
        return None if row is None else _message(row)

    def latest(self, target: str, limit: int, after: Ref | None = None) -> list[HistoryMessage]:
        if after is None:
            return self._select(target, ("1", ()), descending=True, limit=limit)
        bound = self._resolve(target, after)
        if bound is None:
            return []
        return self._select(target, _after(bound), descending=True, limit=limit)

    def before(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        bound = self._resolve(target, ref)
        if bound is None:
            return []
        return self._select(target, _before(bound), descending=True, limit=limit)

    def after(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        bound = self._resolve(target, ref)
        if bound is None:
            return []
        return self._select(target, _after(bound), descending=False, limit=limit)

    def around(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        bound = self._resolve(target, ref)
        if bound is None or limit <= 0:
            return []
        # Fetch up to ``limit`` on each side, then keep half before; a short side leaves its share
        # to the other, so AROUND near either end of the history still returns ``limit`` messages.
        older = self._select(target, _before(bound), descending=True, limit=limit)
        newer = self._select(target, _after(bound, inclusive=True), descending=False, limit=limit)
        n_older = min(len(older), max(limit // 2, limit - len(newer)))
        n_newer = min(len(newer), limit - n_older)
        return older[len(older) - n_older:] + newer[:n_newer]

    def between(self, target: str, start: Ref, end: Ref, limit: int) -> list[HistoryMessage]:
        first = self._resolve(target, start)
        second = self._resolve(target, end)
        if first is None or second is None:
            return []
        forwards = (first[0], first[1] or 0) <= (second[0], second[1] or 0)
        if forwards:
            low, high = _after(first), _before(second)
        else:
            low, high = _after(second), _before(first)
        where = (f"{low[0]} AND {high[0]}", low[1] + high[1])
        return self._select(target, where, descending=not forwards, limit=limit)

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

    def _resolve(self, target: str, ref: Ref) -> _Bound | None:
        """The position a selector stands for, or None for a msgid not in this target's history."""
        if ref.time is not None:
            return to_ms(ref.time), None
        row = self._db.execute(
            "SELECT time_ms, id FROM messages WHERE msgid = ? AND target = ?", (ref.msgid, target)
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def _select(self, target: str, where: _Where, *, descending: bool, limit: int) -> list[HistoryMessage]:
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
