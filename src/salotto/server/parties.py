"""Whose private conversation a message belongs to, and the names clients know those parties by.

A logged-in client's private messages belong to its account, on every connection and across restarts.
A client that is not logged in has nothing that outlives its connection, so its messages belong to the
connection: its identity is a token that no other connection ever gets (``~`` and a per-process random
prefix and the connection's number), never its nick, which anyone can take once it is free. Whoever takes
the nick ``bob`` after bob left talks to (and reads) nothing of bob's.

Clients name the other side by nick (``CHATHISTORY LATEST bob``), and ``CHATHISTORY TARGETS`` must list a
name that leads back to the conversation. So the server remembers, for connections that have had a private
conversation, the nick each token goes by: while it is connected, and after it left (as long as
``whowas_max_entries`` departed nicks are remembered), under the nick it left with.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from salotto.proto.casemap import casefold

if TYPE_CHECKING:
    from salotto.server.client import Client

__all__ = ["GUEST_MARK", "Parties"]

# Starts every connection's token; account names and nicks never start with it.
GUEST_MARK = "~"


class Parties:
    """Guest tokens and the nicks they go by (accounts need nothing: an account name is its own name)."""

    __slots__ = ("_departed", "_nicks", "_prefix", "known", "max_departed")

    def __init__(self, prefix: str, max_departed: int) -> None:
        self._prefix = GUEST_MARK + prefix
        self.max_departed = max_departed
        # Token -> nick, for the tokens of connections that had a private conversation (connected or not).
        self._nicks: dict[str, str] = {}
        # Casefolded nick a connection left with -> its token, oldest first (at most max_departed).
        self._departed: OrderedDict[str, str] = OrderedDict()
        # Connected clients whose token is noted -> that token: what every later private message of theirs
        # that is stored looks up (one dict lookup instead of building the token again).
        self.known: dict[Client, str] = {}

    def token(self, client: Client) -> str:
        """The identity of a connection that is not logged in."""
        return f"{self._prefix}{client.id:x}"

    def noted(self, client: Client, token: str) -> None:
        """A private message of ``client`` (as ``token``) is being stored: its nick may be asked for later."""
        if token not in self._nicks:
            self._nicks[token] = client.nick
        self.known[client] = token

    def renamed(self, client: Client) -> None:
        """``client`` (not logged in) changed nick: its token goes by the new one."""
        token = self.token(client)
        if token in self._nicks:
            self._nicks[token] = client.nick

    def left(self, client: Client) -> None:
        """``client`` disconnected: its nick leads to its token until the nick is reused or forgotten."""
        token = self.token(client)
        self.known.pop(client, None)
        if token not in self._nicks:
            return
        if self.max_departed <= 0:
            del self._nicks[token]
            return
        nick_cf = casefold(self._nicks[token])
        replaced = self._departed.pop(nick_cf, None)
        if replaced is not None:
            self._nicks.pop(replaced, None)
        self._departed[nick_cf] = token
        while len(self._departed) > self.max_departed:
            _, oldest = self._departed.popitem(last=False)
            self._nicks.pop(oldest, None)

    def departed(self, nick: str) -> str | None:
        """The token of the last connection that left with ``nick`` and had a private conversation."""
        return self._departed.get(casefold(nick))

    def name_of(self, identity: str) -> str | None:
        """The name a client can ask CHATHISTORY for: an account name as it is, a token's nick, or None for
        a token no longer known (its connection left long ago, or before a restart)."""
        if not identity.startswith(GUEST_MARK):
            return identity
        return self._nicks.get(identity)

    def __len__(self) -> int:
        return len(self._nicks)
