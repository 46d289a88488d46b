"""Who holds which nick, and the channels' state: two registries, with a local implementation each.

Handlers never reach into the dicts behind these: they read a channel's state from its
:class:`~salotto.server.channel.Channel` (which a clustered implementation keeps as this node's replica)
and change it through a registry. The operations a cluster must make atomic across nodes are single
calls that answer through a ``done`` callback, which may run at once (the local implementations: the
hot paths cost what they cost before) or later, on the loop thread (a remote implementation). Handlers
hand such a call to :meth:`Context.call <salotto.server.context.Context.call>`, which holds the
connection's later lines until the answer came, so every reply still leaves in order.

What an implementation must guarantee:

* ``done`` runs exactly once, on the loop thread, and the calls of one client complete in the order
  that client made them;
* the state change and its answer are one step: a claimed nick is held, a joined member is in the
  channel, when ``done`` runs; the channel's :class:`Channel` object (the replica handlers read) already
  shows it then;
* nothing else of this node's state is changed by a registry: deliveries go through the backplane.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from salotto.proto.modes import PREFIX_MODES, ModeChange
from salotto.proto.names import normalize_mask
from salotto.proto.numbers import parse_positive_int
from salotto.proto.numerics import (
    ERR_BADCHANNELKEY,
    ERR_BANLISTFULL,
    ERR_BANNEDFROMCHAN,
    ERR_CHANNELISFULL,
    ERR_INVALIDKEY,
    ERR_INVALIDMODEPARAM,
    ERR_INVITEONLYCHAN,
    ERR_NOSUCHNICK,
    ERR_USERNOTINCHANNEL,
)
from salotto.server.channel import Channel, ListEntry
from salotto.server.client import NO_CHANNELS

if TYPE_CHECKING:
    from salotto.server.client import Client

__all__ = [
    "KEY_MAX_LEN",
    "LIST_MODES",
    "ChannelRegistry",
    "JoinRequest",
    "JoinResult",
    "LocalChannelRegistry",
    "LocalNickRegistry",
    "ModeContext",
    "ModeOutcome",
    "NickRegistry",
    "apply_modes",
    "entry_refusal",
]

# Longest channel key, as in InspIRCd and ergo.
KEY_MAX_LEN = 32
# The channel modes that are lists of masks.
LIST_MODES = frozenset("beI")


class NickRegistry(Protocol):
    """Which client holds which nick (casefolded), registered or still registering."""

    def holder(self, nick_cf: str) -> Client | None:
        """The client holding ``nick_cf`` as far as this node knows now: for checks and lookups that may
        be a moment stale; :meth:`claim` is the one that decides."""

    def claim(self, client: Client, nick_cf: str, done: Callable[[bool], None], *, nick: str = "") -> None:
        """Atomically: if nobody else holds ``nick_cf``, ``client`` now holds it and no longer holds the nick
        it held (a rename is one step: no moment when it holds both or neither); ``done(True)``. Otherwise
        nothing changes; ``done(False)``. The caller sets ``client.nick`` (``nick``, as the client wrote it)
        when ``done`` says so."""

    def release(self, client: Client) -> None:
        """``client`` holds no nick any more (it left, or its registration was refused)."""

    def updated(self, client: Client) -> None:
        """What others see of ``client`` changed: its registration completed, or its away message, realname,
        host, account or user modes (a clustered registry tells the other nodes)."""

    def others(self) -> Iterable[Client]:
        """The users other nodes hold (WHO with a mask): none for a server alone."""

    def others_counted(self) -> tuple[int, int, int, int]:
        """For LUSERS: the registered users other nodes hold, how many of them are invisible and operators,
        and how many other nodes hold users (a moment old at most)."""

    def unavailable(self) -> str | None:
        """Why a claim cannot be decided now (a cluster node cut off from the others), or None: a refused
        claim then means "try again", not "in use"."""

    def snapshot(self) -> dict[str, Client]:
        """Casefolded nick -> holder, of this node's clients (tests, metrics)."""


class LocalNickRegistry:
    """One process: a dict, answers at once."""

    __slots__ = ("_by_nick",)

    def __init__(self) -> None:
        self._by_nick: dict[str, Client] = {}

    def holder(self, nick_cf: str) -> Client | None:
        return self._by_nick.get(nick_cf)

    def claim(self, client: Client, nick_cf: str, done: Callable[[bool], None], *, nick: str = "") -> None:
        by_nick = self._by_nick
        holder = by_nick.get(nick_cf)
        if holder is not None and holder is not client:
            done(False)
            return
        old = client.nick_cf
        if old and old != nick_cf and by_nick.get(old) is client:
            del by_nick[old]
        by_nick[nick_cf] = client
        done(True)

    def release(self, client: Client) -> None:
        nick_cf = client.nick_cf
        if nick_cf and self._by_nick.get(nick_cf) is client:
            del self._by_nick[nick_cf]

    def updated(self, client: Client) -> None:
        return

    def others(self) -> Iterable[Client]:
        return ()

    def others_counted(self) -> tuple[int, int, int, int]:
        return 0, 0, 0, 0

    def unavailable(self) -> str | None:
        return None

    def snapshot(self) -> dict[str, Client]:
        return self._by_nick


# What a join comes to: the channel (in), a numeric and its parameters (kept out), None (in already).
JoinResult = Channel | tuple[str, ...] | None


class JoinRequest(NamedTuple):
    """What a JOIN asks of :meth:`ChannelRegistry.join` (a tuple: made on every join, it costs less)."""

    name: str  # as the joiner wrote it (the channel's name if this join creates it)
    name_cf: str
    key: str | None
    # The joiner's access (a registered channel's access list) lets it past +k/+l/+i and bans.
    bypass: bool
    # The first member of a channel this join creates is its operator (not in a registered channel).
    founder_op: bool
    # Makes the channel when nobody is in it (a registered channel comes back as it was kept).
    create: Callable[[], Channel]


@dataclass(frozen=True, slots=True)
class ModeOutcome:
    """What became of one requested channel mode change, in the order they were asked."""

    change: ModeChange
    applied: str | None = None  # its argument for the MODE line ("" for none); None: nothing changed
    error: tuple[str, ...] | None = None  # a numeric and its parameters (after the client's nick)
    listing: tuple[ListEntry, ...] | None = None  # a list query: the list as it was at that point
    refused: bool = False  # not an operator: this change and those after it were not made


class ChannelRegistry(Protocol):
    """Every channel: membership with prefixes, modes, topic, the ban/except/invex lists, invitations.

    A channel's state is read from its :class:`Channel`; it changes only through these calls.
    """

    def get(self, name_cf: str) -> Channel | None: ...

    def all(self) -> Iterable[Channel]:
        """Every channel (LIST, LUSERS, metrics)."""

    def count(self) -> int: ...

    def snapshot(self) -> dict[str, Channel]:
        """Casefolded name -> channel (tests, metrics)."""

    def ensure_permanent(self, name: str, name_cf: str, created: int) -> Channel:
        """The channel, made (empty) if there is none, and kept when empty: an autojoin channel."""

    def unavailable(self) -> str | None:
        """Why a change to a channel cannot be made now (a cluster node cut off from the others), or None:
        TOPIC, INVITE and KICK then answer 437 (join and MODE answer it themselves)."""

    def join(self, client: Client, request: JoinRequest, done: Callable[[JoinResult], None]) -> None:
        """Atomically: check +k, +l, +i (invitations, invex) and bans (unless ``request.bypass``), and add
        ``client`` (with ``o`` when it founds the channel). ``done(channel)`` when it is in, or
        ``done((numeric, channel name, text))`` when a mode keeps it out (nothing changed then, nor created),
        ``done(None)`` when it was in already (two joins of one command crossed)."""

    def part(self, channel: Channel, client: Client) -> None:
        """``client`` leaves ``channel`` (PART, KICK, QUIT); an empty channel goes unless permanent."""

    def set_status(self, channel: Channel, client: Client, status: str) -> None:
        """A member's prefix modes (``"ov"``...), given by a service."""

    def set_topic(self, channel: Channel, topic: str, set_by: str, set_at: int) -> None: ...

    def invite(self, channel: Channel, client_id: int, by_operator: bool, max_entries: int) -> None:
        """An invitation for one connection; the oldest makes room past ``max_entries``."""

    def change_modes(
        self,
        channel: Channel,
        client: Client,
        changes: list[ModeChange],
        context: ModeContext,
        done: Callable[[list[ModeOutcome]], None],
    ) -> None:
        """Atomically apply one MODE command's changes, in order; list queries see the lists as they are
        at that point. ``done`` gets an outcome for each change looked at."""


@dataclass(frozen=True, slots=True)
class ModeContext:
    """What a mode change needs to know besides the channel."""

    may_moderate: bool
    resolve: Callable[[str], Client | None]  # a nick to its client (prefix modes)
    max_list_entries: int
    max_with_param: int
    now: int


class LocalChannelRegistry:
    """One process: a dict of :class:`Channel`, changed in place; answers at once."""

    __slots__ = ("_channels",)

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}

    def get(self, name_cf: str) -> Channel | None:
        return self._channels.get(name_cf)

    def all(self) -> Iterable[Channel]:
        return self._channels.values()

    def count(self) -> int:
        return len(self._channels)

    def snapshot(self) -> dict[str, Channel]:
        return self._channels

    def unavailable(self) -> str | None:
        return None

    def ensure_permanent(self, name: str, name_cf: str, created: int) -> Channel:
        channel = self._channels.get(name_cf)
        if channel is None:
            channel = self._channels[name_cf] = Channel(name, name_cf, created, permanent=True)
        channel.permanent = True
        return channel

    def join(self, client: Client, request: JoinRequest, done: Callable[[JoinResult], None]) -> None:
        channel = self._channels.get(request.name_cf)
        created = channel is None
        if channel is None:
            channel = request.create()
        elif client in channel.members:
            done(None)
            return
        if not request.bypass:
            refusal = entry_refusal(channel, client, request.key)
            if refusal is not None:
                done(refusal)
                return
        if created:
            self._channels[request.name_cf] = channel
        status = "o" if request.founder_op and not channel.members and not channel.permanent else ""
        channel.invited.pop(client.id, None)
        channel.add(client, status)
        if client.channels is NO_CHANNELS:
            client.channels = {}
        # Keyed by the channel's own string, not the JOIN's copy of it: one string for all its members.
        client.channels[channel.name_cf] = channel
        done(channel)

    def part(self, channel: Channel, client: Client) -> None:
        channel.discard(client)
        client.channels.pop(channel.name_cf, None)
        if not client.channels:
            client.channels = NO_CHANNELS
        if not channel.members and not channel.permanent and self._channels.get(channel.name_cf) is channel:
            del self._channels[channel.name_cf]

    def set_status(self, channel: Channel, client: Client, status: str) -> None:
        if client in channel.members:
            channel.set_status(client, status)

    def set_topic(self, channel: Channel, topic: str, set_by: str, set_at: int) -> None:
        channel.topic = topic
        channel.topic_set_by = set_by
        channel.topic_set_at = set_at

    def invite(self, channel: Channel, client_id: int, by_operator: bool, max_entries: int) -> None:
        invited = channel.invited
        if len(invited) >= max_entries:
            invited.pop(next(iter(invited)))  # the oldest invitation makes room
        invited[client_id] = by_operator

    def change_modes(
        self,
        channel: Channel,
        client: Client,
        changes: list[ModeChange],
        context: ModeContext,
        done: Callable[[list[ModeOutcome]], None],
    ) -> None:
        done(apply_modes(channel, client, changes, context))


def entry_refusal(channel: Channel, client: Client, key: str | None) -> tuple[str, str, str] | None:
    """Whether +k, +l, +i or a ban keeps ``client`` out of ``channel``: the numeric and its parameters, or None."""
    # An invitation lets its connection past +i; past +k, +l and bans only when a channel
    # operator gave it (a member's invitation must not undo a ban).
    invite = channel.invited.get(client.id)
    invited = invite is not None
    overrides = invite is True
    if channel.key is not None and key != channel.key and not overrides:
        return ERR_BADCHANNELKEY, channel.name, "Cannot join channel (+k)"
    if channel.limit is not None and len(channel.members) >= channel.limit and not overrides:
        return ERR_CHANNELISFULL, channel.name, "Cannot join channel (+l)"
    if "i" in channel.modes and not invited and not channel.is_invex(client):
        return ERR_INVITEONLYCHAN, channel.name, "Cannot join channel (+i)"
    if not overrides and channel.is_banned(client):
        return ERR_BANNEDFROMCHAN, channel.name, "Cannot join channel (+b)"
    return None


def apply_modes(channel: Channel, client: Client, changes: list[ModeChange], context: ModeContext) -> list[ModeOutcome]:
    """One MODE command's changes to ``channel``, applied in order (the local registry's, and what a remote
    implementation runs where the channel's state is kept)."""
    outcomes: list[ModeOutcome] = []
    with_param = 0
    for change in changes:
        if change.param is None and change.mode in LIST_MODES:
            outcomes.append(ModeOutcome(change, listing=tuple(channel.mode_list(change.mode))))
            continue
        if not context.may_moderate:
            outcomes.append(ModeOutcome(change, refused=True))
            break
        if change.param is not None:
            with_param += 1
            if with_param > context.max_with_param:
                break
        outcomes.append(_apply(channel, client, change, context))
    return outcomes


def _apply(channel: Channel, client: Client, change: ModeChange, context: ModeContext) -> ModeOutcome:
    adding, mode, param = change
    if mode in PREFIX_MODES:
        if param is None:
            return ModeOutcome(change)
        target = context.resolve(param)
        if target is None:
            return ModeOutcome(change, error=(ERR_NOSUCHNICK, param, "No such nick/channel"))
        status = channel.members.get(target)
        if status is None:
            return ModeOutcome(change, error=(ERR_USERNOTINCHANNEL, target.nick, channel.name,
                                              "They aren't on that channel"))
        if adding == (mode in status):
            return ModeOutcome(change)
        new = status + mode if adding else status.replace(mode, "")
        channel.set_status(target, "".join(m for m in PREFIX_MODES if m in new))
        return ModeOutcome(change, applied=target.nick)
    if mode in LIST_MODES:
        assert param is not None
        return _change_list(channel, client, change, context)
    if mode == "k":
        if adding:
            if not param or " " in param or "," in param or param[0] == ":" or len(param) > KEY_MAX_LEN:
                return ModeOutcome(change, error=(ERR_INVALIDKEY, channel.name, "Key is not well-formed"))
            channel.key = param
            return ModeOutcome(change, applied=param)
        if channel.key is None:
            return ModeOutcome(change)
        channel.key = None
        return ModeOutcome(change, applied="*")
    if mode == "l":
        if not adding:
            if channel.limit is None:
                return ModeOutcome(change)
            channel.limit = None
            return ModeOutcome(change, applied="")
        limit = parse_positive_int(param) if param is not None else None
        if limit is None:
            return ModeOutcome(change, error=(ERR_INVALIDMODEPARAM, channel.name, "l", param or "*", "Invalid limit"))
        channel.limit = limit
        return ModeOutcome(change, applied=str(limit))
    if adding == (mode in channel.modes):
        return ModeOutcome(change)
    if adding:
        channel.modes.add(mode)
    else:
        channel.modes.discard(mode)
    return ModeOutcome(change, applied="")


def _change_list(channel: Channel, client: Client, change: ModeChange, context: ModeContext) -> ModeOutcome:
    adding, mode, param = change
    assert param is not None
    if not param or " " in param or param[0] == ":":
        return ModeOutcome(change)
    entries = channel.mode_list(mode)
    mask = normalize_mask(param)
    existing = next((e for e in entries if e.mask == mask), None)
    if adding:
        if existing is not None:
            return ModeOutcome(change)
        if len(entries) >= context.max_list_entries:
            return ModeOutcome(change, error=(ERR_BANLISTFULL, channel.name, mode, "Channel list is full"))
        entries.append(ListEntry(mask, client.nick, context.now))
        return ModeOutcome(change, applied=mask)
    if existing is None:
        return ModeOutcome(change)
    entries.remove(existing)
    return ModeOutcome(change, applied=mask)
