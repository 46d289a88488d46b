"""Read markers (https://ircv3.net/specs/extensions/read-marker): per account and target, the time of the
last message its user has read, so that every device of theirs agrees on what is unread.

Held in memory, read from the store once at startup like the rest of the account directory: the server
must send a channel's marker between the JOIN and the end of NAMES, which leaves no time for a database
round trip. Changes go to the store together, at most once per tick (:meth:`ReadMarkers.flush`): a
client that marks every message read as it arrives costs the store one row per tick, not one transaction
per MARKREAD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from salotto.proto.casemap import casefold

if TYPE_CHECKING:
    from salotto.storage.base import Storage
    from salotto.storage.outcome import Outcome

__all__ = ["MarkersFull", "ReadMarkers"]


class MarkersFull(Exception):
    """The server keeps as many read markers as it may (``read_markers_max_total``)."""

# A marker that is to be deleted from the store (evicted to make room), in the pending changes.
_FORGET = -1.0


class ReadMarkers:
    """Every account's markers: casefolded account -> casefolded target -> epoch seconds (milliseconds).

    A marker only moves forward. An account keeps at most ``max_targets`` of them: past that, setting
    one forgets the account's oldest (the conversation read longest ago), so one account cannot grow
    the table without end by naming ever new targets; and the server keeps at most ``max_total`` in all
    (accounts are many, and each may be made to fill its share): past that, a marker on a new target is
    refused (:meth:`advance` raises :class:`MarkersFull`), while markers already kept still move."""

    __slots__ = ("_markers", "_pending", "max_targets", "max_total", "on_advance", "total")

    def __init__(self, rows: Iterable[tuple[str, str, float]] = (), *, max_targets: int = 200,
                 max_total: int = 1_000_000) -> None:
        self._markers: dict[str, dict[str, float]] = {}
        self.total = 0
        for account_cf, target, time in rows:
            self._markers.setdefault(account_cf, {})[target] = time
            self.total += 1
        self.max_targets = max_targets
        self.max_total = max_total
        # (account, target) -> the time to store, or _FORGET: what the next flush writes.
        self._pending: dict[tuple[str, str], float] = {}
        # Told of each marker moved here (a cluster node tells the others: see learn).
        self.on_advance: Callable[[str, str, float], None] | None = None

    def learn(self, account: str, target: str, time: float) -> None:
        """A marker another node of a cluster moved (and stores): known here too, not stored again."""
        account_cf, target_cf = casefold(account), casefold(target)
        markers = self._markers.get(account_cf)
        if markers is None:
            if self.total >= self.max_total:
                return
            markers = self._markers[account_cf] = {}
        current = markers.get(target_cf)
        if current is not None and current >= time:
            return
        if current is None:
            if len(markers) >= self.max_targets or self.total >= self.max_total:
                return
            self.total += 1
        markers[target_cf] = time

    def get(self, account: str, target: str) -> float | None:
        markers = self._markers.get(casefold(account))
        return None if markers is None else markers.get(casefold(target))

    def advance(self, account: str, target: str, time: float) -> tuple[float, bool]:
        """Move ``account``'s marker on ``target`` to ``time`` unless it is there or later already.
        Returns the marker as it now is, and whether it moved."""
        account_cf, target_cf = casefold(account), casefold(target)
        markers = self._markers.setdefault(account_cf, {})
        current = markers.get(target_cf)
        if current is not None and current >= time:
            return current, False
        if current is None:
            if len(markers) >= self.max_targets:
                oldest = min(markers, key=markers.__getitem__)
                del markers[oldest]
                self._pending[(account_cf, oldest)] = _FORGET
            elif self.total >= self.max_total:
                if not markers:
                    del self._markers[account_cf]
                raise MarkersFull
            else:
                self.total += 1
        markers[target_cf] = time
        self._pending[(account_cf, target_cf)] = time
        if self.on_advance is not None:
            self.on_advance(account_cf, target_cf, time)
        return time, True

    def forget_account(self, account: str) -> None:
        """The account is gone (its rows went with it in the store)."""
        account_cf = casefold(account)
        self.total -= len(self._markers.pop(account_cf, {}))
        for key in [key for key in self._pending if key[0] == account_cf]:
            del self._pending[key]

    def count(self) -> int:
        return sum(len(markers) for markers in self._markers.values())

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def flush(self, write: Callable[[Callable[[Storage], None], Callable[[Outcome[None]], None]], None],
              failed: Callable[[BaseException], None]) -> None:
        """Hand the changes since the last flush to the store's writer, in one transaction. When the
        store refuses them, they are pending again (unless changed meanwhile) for the next flush."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}

        def store(storage: Storage) -> None:
            with storage.transaction():
                exists: dict[str, bool] = {}
                for (account_cf, target_cf), time in batch.items():
                    if time == _FORGET:
                        storage.delete_read_marker(account_cf, target_cf)
                        continue
                    # An account dropped since (its markers went with it) must not get one back.
                    if account_cf not in exists:
                        exists[account_cf] = storage.get_account(account_cf) is not None
                    if exists[account_cf]:
                        storage.set_read_marker(account_cf, target_cf, time)

        def done(outcome: Outcome[None]) -> None:
            if outcome.error is None:
                return
            for key, time in batch.items():
                # Offered again only as memory still has it (not moved, evicted or dropped since).
                current = self._markers.get(key[0], {}).get(key[1], _FORGET)
                if current == time:
                    self._pending.setdefault(key, time)
            failed(outcome.error)

        write(store, done)
