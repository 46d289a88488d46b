"""CHATHISTORY's selections (LATEST, BEFORE, AFTER, AROUND, BETWEEN), once for every SQL backend.

A backend resolves a selector to a position in its total order of a target's messages (``(time_ms,
key)`` for a msgid, ``(time_ms, None)`` for a timestamp: :meth:`RangeQueries._resolve`), writes the SQL
condition "strictly before" or "after" such a position in its dialect (``_before``/``_after``), and runs
one ordered, limited select (``_select``). What each subcommand asks of those is the same everywhere, and
written here once.
"""

from __future__ import annotations

from typing import Any, ClassVar

from salotto.storage.base import HistoryMessage, Ref

__all__ = ["Bound", "RangeQueries", "Where"]

# A resolved selector: (time_ms, the message's key in its target's order) for a msgid, (time_ms, None)
# for a timestamp.
Bound = tuple[int, int | None]
# An SQL condition with its parameters.
Where = tuple[str, tuple[Any, ...]]


class RangeQueries:
    """The history selections of :class:`~salotto.storage.base.Storage`, in terms of the four below."""

    # A condition that holds for every row, in the backend's dialect.
    _EVERYTHING: ClassVar[Where]

    def _resolve(self, target: str, ref: Ref) -> Bound | None:
        raise NotImplementedError

    def _select(self, target: str, where: Where, *, descending: bool, limit: int) -> list[HistoryMessage]:
        """The ``limit`` messages of ``target`` matching ``where`` nearest to its end (``descending``) or
        start, returned in ascending order."""
        raise NotImplementedError

    @staticmethod
    def _before(bound: Bound) -> Where:
        raise NotImplementedError

    @staticmethod
    def _after(bound: Bound, *, inclusive: bool = False) -> Where:
        raise NotImplementedError

    def latest(self, target: str, limit: int, after: Ref | None = None) -> list[HistoryMessage]:
        if after is None:
            return self._select(target, self._EVERYTHING, descending=True, limit=limit)
        bound = self._resolve(target, after)
        if bound is None:
            return []
        return self._select(target, self._after(bound), descending=True, limit=limit)

    def before(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        bound = self._resolve(target, ref)
        if bound is None:
            return []
        return self._select(target, self._before(bound), descending=True, limit=limit)

    def after(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        bound = self._resolve(target, ref)
        if bound is None:
            return []
        return self._select(target, self._after(bound), descending=False, limit=limit)

    def around(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        bound = self._resolve(target, ref)
        if bound is None or limit <= 0:
            return []
        # Fetch up to ``limit`` on each side, then keep half before; a short side leaves its share
        # to the other, so AROUND near either end of the history still returns ``limit`` messages.
        older = self._select(target, self._before(bound), descending=True, limit=limit)
        newer = self._select(target, self._after(bound, inclusive=True), descending=False, limit=limit)
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
            low, high = self._after(first), self._before(second)
        else:
            low, high = self._after(second), self._before(first)
        where = (f"{low[0]} AND {high[0]}", low[1] + high[1])
        return self._select(target, where, descending=not forwards, limit=limit)
