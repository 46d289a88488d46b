"""Counters of what the server did, for /metrics and the benchmark. Plain integers: cheap to bump."""

from __future__ import annotations

from collections import Counter

__all__ = ["ServerStats", "disconnect_category"]

# Disconnect reasons grouped for metrics: the start of the reason text -> its category.
_CATEGORIES = (
    ("Quit", "quit"),
    ("Ping timeout", "ping_timeout"),
    ("Registration timeout", "registration_timeout"),
    ("Excess Flood", "flood"),
    ("SendQ exceeded", "sendq"),
    ("Killed", "killed"),
    ("Server shutting down", "shutdown"),
    ("Connection closed", "closed"),
    ("Connection error", "error"),
)


def disconnect_category(reason: str) -> str:
    for prefix, category in _CATEGORIES:
        if reason.startswith(prefix):
            return category
    return "other"


class ServerStats:
    __slots__ = (
        "bytes_in",
        "bytes_out",
        "connections_accepted",
        "connections_refused",
        "deliveries_out",
        "descriptor_refusals",
        "disconnects",
        "messages_in",
        "reactions",
        "read_markers",
        "registrations",
    )

    def __init__(self) -> None:
        self.connections_accepted = 0
        self.connections_refused = 0
        # Of those, refused because the open-files limit had no descriptor to spare (Server.fd_budget).
        self.descriptor_refusals = 0
        self.registrations = 0
        self.messages_in = 0  # PRIVMSG, NOTICE and TAGMSG received
        self.deliveries_out = 0  # copies of those written to recipients (echoes included)
        self.reactions = 0  # TAGMSGs carrying +draft/react
        self.read_markers = 0  # MARKREADs that moved a marker forward
        self.bytes_in = 0
        self.bytes_out = 0
        self.disconnects: Counter[str] = Counter()
