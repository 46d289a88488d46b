"""A connected client as the server sees it, whatever transport carries it."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from salotto.server.channel import Channel
    from salotto.server.multiline import OpenBatch

__all__ = [
    "TAG_ACCOUNT", "TAG_MESSAGE_TAGS", "TAG_MULTILINE", "TAG_SERVER_TIME", "Client", "Connection", "shown_address",
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
    # directly (calling mark_pending when it was empty): one Python call less per recipient.
    outbox: list[bytes]

    def mark_pending(self) -> None:
        """The outbox was empty and is not: flush it when the loop pass ends."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the client; the transport coalesces and enforces the send queue."""

    def close(self, reason: str) -> None:
        """Flush what is queued, then close; ``reason`` is for the log."""


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
        "host",
        "id",
        "idle_since",
        "ip",
        "last_seen",
        "mark_pending",
        "modes",
        "monitoring",
        "nick",
        "nick_cf",
        "nick_since",
        "oper_failures",
        "outbox",
        "password_given",
        "ping_sent_at",
        "quitting",
        "realname",
        "registered",
        "sasl",
        "signon",
        "tag_flags",
        "user",
        "waiting",
        "write",
    )

    def __init__(self, conn: Connection, client_id: int, now: float, signon: float) -> None:
        self.conn = conn
        # The connection's write, bound once: the fanout calls it for every recipient of every message.
        self.write = conn.write
        self.outbox = conn.outbox
        self.mark_pending = conn.mark_pending
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
        self.caps: set[str] = set()
        self.cap_version = 0
        self.cap_negotiating = False
        self.tag_flags = 0
        self.channels: dict[str, Channel] = {}
        self.modes: set[str] = set()
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

    def __repr__(self) -> str:
        return f"<Client {self.id} {self.nick}>"

    @property
    def prefix(self) -> str:
        """``nick!user@host``, the source of what this client says."""
        return f"{self.nick}!{self.user}@{self.host}"

    @property
    def is_oper(self) -> bool:
        return "o" in self.modes

