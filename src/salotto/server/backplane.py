"""The one way a message reaches anyone but the connection whose command made it.

Handlers and the server hand every delivery to the server's :class:`Backplane`: to a channel's members,
to the client holding a nick, to a client's peers (who share a channel with it, and, for the changes
extended-monitor covers, who watch its nick), to the watchers of a nick (MONITOR). Replies to the
command's own sender go through its :class:`~salotto.server.context.Context` instead.

:class:`LocalBackplane`, the default, delivers in process: it appends the message's bytes to each local
recipient's outbox at once. A clustered implementation also publishes the message to the other nodes,
whose own local backplane delivers it to their clients.

Ordering, which any implementation must keep:

* per channel: every member receives the channel's messages in the order the backplane was handed them
  (locally: the order of the calls, all on the loop thread; in a cluster: the order the channel's
  stream on the backplane assigns, the same for every node);
* per recipient: what one call delivers reaches a recipient after what earlier calls delivered to it,
  and after the replies its own earlier commands were given (the outbox is one queue per connection);
* a message is recorded in history (``server.history.record``) in the same loop pass that hands it to
  the backplane, before that pass's output leaves: "stored before anyone receives it" holds for every
  recipient on this node; a remote node receives it only after it was published, which is after it was
  journaled here.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Protocol

from salotto.proto.casemap import casefold
from salotto.proto.framing import encode_wire
from salotto.proto.message import format_line

if TYPE_CHECKING:
    from salotto.server.channel import Channel
    from salotto.server.client import Client
    from salotto.server.fanout import Outgoing
    from salotto.server.state import Server

__all__ = ["EXTENDED_MONITOR", "Backplane", "LocalBackplane"]

# With this capability a watcher also hears of the away, account, host and realname changes of the
# nicks it watches, for those of away-notify, account-notify, chghost and setname it asked for
# (https://ircv3.net/specs/extensions/extended-monitor).
EXTENDED_MONITOR = "extended-monitor"


class Backplane(Protocol):
    """Where deliveries go. Every method returns how many recipients (on this node) got the message."""

    def to_channel(self, channel: Channel, out: Outgoing, exclude: Client | None = None) -> int:
        """Every member of ``channel`` (each of its connections: devices too) but ``exclude``, the
        connection that sent it: the hot path (PRIVMSG, NOTICE, TOPIC, MODE, KICK)."""

    def to_members(
        self,
        channel: Channel,
        out: Outgoing,
        *,
        exclude: Client | None = None,
        cap: str | None = None,
        about: Client | None = None,
        operators_only: bool = False,
        alternative: tuple[str, Outgoing] | None = None,
    ) -> int:
        """Some members of ``channel`` but ``exclude``: those with ``cap``; with ``about``, those who see
        ``about`` join or part (above ``large_channel_threshold`` only the operators, unless ``about``
        has a prefix mode); only the operators; members with ``alternative[0]`` get ``alternative[1]``
        instead (extended-join)."""

    def to_nick(self, target: Client, out: Outgoing, *, cap: str | None = None) -> int:
        """The client holding a nick (as the nick registry found it), on each of its connections (those
        with ``cap``)."""

    def to_peers(
        self,
        client: Client,
        out: Outgoing,
        *,
        cap: str | None = None,
        include_self: bool = False,
        departing: bool = False,
        exclude: Client | None = None,
    ) -> int:
        """Everyone sharing a channel with ``client``, once each (on each of their connections), not
        ``client`` itself unless ``include_self``; with ``exclude``, the connection of ``client`` that made the
        change (it answers that one itself): ``client``'s other connections get it too. With ``cap``
        (away-notify, account-notify, chghost, setname): only peers that
        asked for it, and also the clients watching ``client``'s nick that asked for it and for
        extended-monitor. ``departing`` (QUIT): above ``large_channel_threshold`` only the channel's
        operators see it, unless ``client`` has a prefix mode there."""

    def to_sessions(self, user: Client, out: Outgoing, *, exclude: Client | None = None,
                    cap: str | None = None) -> int:
        """Each connection of ``user`` (its own and its devices', those with ``cap``) but ``exclude``: what one
        of them did, for the others (a private message it sent, its own mode change)."""

    def to_watchers(self, nick: str, numeric: str, text: str) -> None:
        """A MONITOR numeric (730/731) about ``nick`` to each client watching it."""

    def to_account(self, account: str, out: Outgoing, *, cap: str | None = None, exclude: Client | None = None) -> int:
        """Every connection logged in to ``account`` (with ``cap``) but ``exclude``: one user's devices."""

    def kill(self, target: Client, reason: str, error: str | None) -> bool:
        """End ``target`` (KILL) when its connections are on another node; False when they are on this one
        (the server ends it itself)."""


class LocalBackplane:
    """In process: straight into the outboxes of this process's clients."""

    __slots__ = ("_server",)

    def __init__(self, server: Server) -> None:
        self._server = server

    def to_channel(self, channel: Channel, out: Outgoing, exclude: Client | None = None) -> int:
        sent = out.deliver(channel.members, exclude)
        if channel.with_devices:  # the one check a message costs where nobody has a second device
            sent += _to_devices(channel.with_devices, out, exclude)
        return sent

    def to_members(
        self,
        channel: Channel,
        out: Outgoing,
        *,
        exclude: Client | None = None,
        cap: str | None = None,
        about: Client | None = None,
        operators_only: bool = False,
        alternative: tuple[str, Outgoing] | None = None,
    ) -> int:
        members: Collection[Client]
        if operators_only:
            members = channel.operators()
        elif about is not None:
            members = self._member_audience(channel, about)
        else:
            members = channel.members
        with_devices = channel.with_devices
        if with_devices:  # their devices hear what they hear, each by its own caps
            if operators_only or (about is not None and members is not channel.members):
                devices = [d for user in with_devices if channel.is_op(user) for d in user.devices or ()]
            else:
                devices = [d for user in with_devices for d in user.devices or ()]
            members = [*members, *devices]
        if cap is not None:
            members = [m for m in members if cap in m.caps]
        if alternative is None:
            return out.deliver(members, exclude)
        alt_cap, alt = alternative
        for member in members:
            if member is not exclude:
                chosen = alt if alt_cap in member.caps else out
                member.conn.write(chosen.variant(member.tag_flags))
        return len(members) - (exclude is not None and exclude in members)  # not counted in the loop: per member

    def _member_audience(self, channel: Channel, member: Client) -> Collection[Client]:
        """Who sees ``member`` join or part ``channel``: everyone, or only the operators above the
        threshold, unless ``member`` is an operator or voiced (everyone's NAMES lists those)."""
        if len(channel.members) > self._server.config.large_channel_threshold and member not in channel.privileged:
            return channel.operators()
        return channel.members

    def to_nick(self, target: Client, out: Outgoing, *, cap: str | None = None) -> int:
        if cap is None and not target.devices:
            target.conn.write(out.variant(target.tag_flags))
            return 1
        return out.deliver(_with_cap(target.sessions(), cap))

    def to_peers(
        self,
        client: Client,
        out: Outgoing,
        *,
        cap: str | None = None,
        include_self: bool = False,
        departing: bool = False,
        exclude: Client | None = None,
    ) -> int:
        recipients: set[Client] = set()
        with_devices: set[Client] = set()
        threshold = self._server.config.large_channel_threshold
        for channel in client.channels.values():
            if departing and len(channel.members) > threshold and client not in channel.privileged:
                recipients.update(channel.operators())
            else:
                recipients.update(channel.members)
            if channel.with_devices:
                with_devices.update(channel.with_devices)
        recipients.discard(client)
        for user in with_devices:
            if user in recipients and user.devices:
                recipients.update(user.devices)
        if cap is not None:
            recipients = {peer for peer in recipients if cap in peer.caps}
            watchers = self._server.monitors.get(client.nick_cf)
            if watchers:
                recipients.update(w for w in watchers if cap in w.caps and EXTENDED_MONITOR in w.caps)
            recipients.discard(client)
        if include_self or exclude is not None:
            # The user's own connections: all of them, or all but the one that made the change.
            recipients.update(_with_cap(client.sessions(), cap))
            return out.deliver(recipients, exclude)
        return out.deliver(recipients)

    def to_sessions(self, user: Client, out: Outgoing, *, exclude: Client | None = None,
                    cap: str | None = None) -> int:
        return out.deliver(_with_cap(user.sessions(), cap), exclude)

    def to_account(self, account: str, out: Outgoing, *, cap: str | None = None, exclude: Client | None = None) -> int:
        clients = self._server.logins.get(casefold(account))
        if not clients:
            return 0
        return out.deliver(_with_cap(clients, cap), exclude)

    def kill(self, target: Client, reason: str, error: str | None) -> bool:
        return False

    def to_watchers(self, nick: str, numeric: str, text: str) -> None:
        server = self._server
        watchers = server.monitors.get(casefold(nick))
        if not watchers:
            return
        for watcher in watchers:
            line = encode_wire(format_line(numeric, [watcher.nick, text], source=server.name) + "\r\n")
            watcher.conn.write(line)
            for device in watcher.devices or ():
                device.conn.write(line)


def _with_cap(clients: Collection[Client], cap: str | None) -> Collection[Client]:
    """``clients``, or those of them that asked for ``cap``."""
    return clients if cap is None else [c for c in clients if cap in c.caps]


def _to_devices(users: Collection[Client], out: Outgoing, exclude: Client | None) -> int:
    """The devices of ``users`` (members a message reached), but ``exclude``."""
    sent = 0
    for user in users:
        devices = user.devices
        if devices:
            sent += out.deliver(devices, exclude)
    return sent
