"""A connected client as the server sees it, whatever transport carries it."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from salotto.server.channel import Channel
    from salotto.server.multiline import OpenBatch

__all__ = [
    "DETACHED", "NO_CHANNELS", "TAG_ACCOUNT", "TAG_MESSAGE_TAGS", "TAG_MULTILINE", "TAG_SERVER_TIME", "Client",
    "Connection", "DetachedConnection", "shown_address",
]

# Bits of Client.tag_flags: which tags a client wants on the messages it receives. A channel message
# is serialized once per distinct value of these bits (at most sixteen), not once per recipient.
TAG_MESSAGE_TAGS = 1
TAG_SERVER_TIME = 2
TAG_ACCOUNT = 4
# draft/multiline with batch: a multiline message comes as one batch (salotto.server.multiline); other
# messages are the same bytes with or without it.
TAG_MULTILINE = 8


class Connection(Protocol):
    """What a transport offers the server for one client."""

    peer_ip: str
    transport_name: str
    # This loop pass's output, sent in one write when the pass ends. The fanout appends to it
    # directly: one Python call less per recipient. When it is empty, the fanout calls mark_pending
    # first and appends to the list that returns (a connection may keep no list while idle).
    outbox: list[bytes]

    def mark_pending(self) -> list[bytes]:
        """Output is coming: flush when the loop pass ends. Returns the outbox to append it to."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the client; the transport coalesces and enforces the send queue."""

    def close(self, reason: str) -> None:
        """Flush what is queued, then close; ``reason`` is for the log."""


class _Dropped(list[bytes]):
    """An outbox that keeps nothing: always empty, so the fanout calls mark_pending (a no-op) each time."""

    __slots__ = ()

    def append(self, item: bytes) -> None:
        return


class DetachedConnection:
    """The connection of a user none of whose own connection is left (its devices go on, or it is
    always-on): every write is dropped, so nothing grows however much reaches the user."""

    __slots__ = ()
    peer_ip = "0.0.0.0"
    transport_name = "detached"
    outbox: list[bytes] = _Dropped()

    def mark_pending(self) -> list[bytes]:
        return self.outbox

    def write(self, data: bytes) -> None:
        return

    def close(self, reason: str) -> None:
        return


DETACHED = DetachedConnection()


_NONE: frozenset[str] = frozenset()


class _NoChannels(dict[str, "Channel"]):
    """The channels of a client that is in none: one empty dict shared by all of them (an empty dict
    costs 64 bytes per client); joining gives the client a dict of its own (ChannelRegistry.join)."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Channel) -> None:
        raise RuntimeError("a client's first channel needs a dict of its own (see NO_CHANNELS)")


NO_CHANNELS: dict[str, Channel] = _NoChannels()


def shown_address(ip: str) -> str:
    """An address as IRC shows it (host, WHOX): an IPv6 address may start with ":" (::1), which no IRC
    parameter but the last may; "0::1" is the same address and a valid word (what ergo and InspIRCd show)."""
    return "0" + ip if ip[:1] == ":" else ip


class Client:
    """One connection's IRC state: identity, capabilities, channels and timers."""

    __slots__ = (
        "account",
        "account_since",
        "away",
        "backlog",
        "batch",
        "cap_negotiating",
        "cap_version",
        "caps",
        "channels",
        "conn",
        "detached",
        "devices",
        "host",
        "id",
        "idle_since",
        "ip",
        "last_seen",
        "modes",
        "monitoring",
        "nick",
        "nick_cf",
        "nick_since",
        "oper_failures",
        "password_given",
        "ping_sent_at",
        "primary",
        "quitting",
        "realname",
        "registered",
        "sasl",
        "signon",
        "tag_flags",
        "user",
        "waiting",
    )

    def __init__(self, conn: Connection, client_id: int, now: float, signon: float) -> None:
        self.conn = conn
        self.id = client_id
        self.ip = conn.peer_ip
        ip = conn.peer_ip
        self.host = "0" + ip if ip[:1] == ":" else ip  # shown_address, inlined: once per connection
        self.nick = "*"
        self.nick_cf = ""
        # When this connection took its nick (wall clock, in the milliseconds history stores): what was
        # said under nick!user@host after that is this connection's own (REDACT, for those not logged in).
        self.nick_since = 0.0
        self.user = ""
        self.realname = ""
        # The account logged in to (its name as registered), and when that account was created:
        # history under the account is readable from then on.
        self.account: str | None = None
        self.account_since = 0.0
        # An AUTHENTICATE exchange in progress (salotto.server.handlers.auth.SaslSession).
        self.sasl: object | None = None
        self.away: str | None = None
        # Capabilities and user modes change rarely: each change replaces the set, and a client without
        # any shares the one empty set (an empty set() costs 216 bytes per client).
        self.caps: frozenset[str] = _NONE
        self.cap_version = 0
        self.cap_negotiating = False
        self.tag_flags = 0
        self.channels: dict[str, Channel] = NO_CHANNELS
        self.modes: frozenset[str] = _NONE
        self.oper_failures = 0
        # The server password (server_password_hash) was given and checked: registration may complete.
        self.password_given = False
        # MONITOR's list (casefolded nick -> as given), made by the first MONITOR +.
        self.monitoring: dict[str, str] | None = None
        self.registered = False
        self.quitting = False
        self.signon = signon
        self.idle_since = now
        self.last_seen = now
        self.ping_sent_at: float | None = None
        # Commands of this client whose answer is being worked out off the loop (Context.wait): while
        # there is one, the lines after it wait in ``backlog`` (None there: a line that was too long).
        self.waiting = 0
        self.backlog: deque[bytes | None] | None = None
        # A draft/multiline batch this client has opened and not closed (salotto.server.multiline); while
        # there is one, its lines go to it instead of to their commands.
        self.batch: OpenBatch | None = None
        # Several devices on one nick (multiclient): a device is a Client of its own (its connection,
        # caps, input, timers) whose ``primary`` is the user it is attached to; the user lists its devices
        # (None when it has none). A user whose own connection is gone while it stays (devices left, or
        # always-on) is ``detached``: its connection is DETACHED, it is not in server.clients.
        self.primary: Client | None = None
        self.devices: list[Client] | None = None
        self.detached = False

    def __repr__(self) -> str:
        return f"<Client {self.id} {self.nick}>"

    @property
    def prefix(self) -> str:
        """``nick!user@host``, the source of what this client says."""
        return f"{self.nick}!{self.user}@{self.host}"

    def sessions(self) -> list[Client]:
        """The connections this user is on now: its own (unless detached) and its devices'."""
        own = [] if self.detached else [self]
        return own + self.devices if self.devices else own

    @property
    def is_oper(self) -> bool:
        return "o" in self.modes

