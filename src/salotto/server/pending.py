"""Connections that are not IRC clients yet: TLS handshakes, page loads and WebSocket handshakes.

Each holds a descriptor, but none is in ``Server.clients`` until it becomes a client, so the client limits
(``max_clients``, ``max_connections_per_ip``, the connect throttle) do not see it. They are counted here
instead, in all and per address (:func:`~salotto.server.flood.ip_key`: an IPv6 /64 is one address, as
for the connect throttle), and :meth:`Server.admit_pending <salotto.server.state.Server.admit_pending>`
caps them (``max_pending_connections``, ``max_pending_connections_per_ip``) and counts them against the
open-files budget. One count for every transport: the web port before the upgrade, and TLS handshakes
on the IRC and web ports.
"""

from __future__ import annotations

__all__ = ["PendingConnection", "PendingConnections"]


class PendingConnection:
    """One connection's place in the count. :meth:`release` gives it back the first time it is called
    and does nothing after: a connection may end on several paths at once (its handshake fails as its
    socket is lost), and each may release it."""

    __slots__ = ("_count", "key")

    def __init__(self, count: PendingConnections, key: str) -> None:
        self._count: PendingConnections | None = count
        self.key = key

    @property
    def released(self) -> bool:
        return self._count is None

    def release(self) -> None:
        count = self._count
        if count is not None:
            self._count = None
            count._release(self.key)


class PendingConnections:
    """How many connections wait to become clients: ``total``, and per address key (``ip_key``)."""

    __slots__ = ("per_key", "total")

    def __init__(self) -> None:
        self.total = 0
        self.per_key: dict[str, int] = {}

    def count(self, key: str) -> int:
        """Connections waiting from the address ``key`` (an ``ip_key``)."""
        return self.per_key.get(key, 0)

    def add(self, key: str) -> PendingConnection:
        """Count one more connection from ``key``; the caller has checked the caps."""
        self.total += 1
        self.per_key[key] = self.per_key.get(key, 0) + 1
        return PendingConnection(self, key)

    def _release(self, key: str) -> None:
        self.total -= 1
        left = self.per_key[key] - 1
        if left:
            self.per_key[key] = left
        else:
            del self.per_key[key]
