"""Channel membership and information: JOIN, PART, TOPIC, NAMES, LIST, INVITE, KICK.

https://modern.ircdocs.horse/#channel-operations
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from salotto.proto.casemap import casefold
from salotto.proto.names import is_valid_channel
from salotto.proto.numerics import (
    ERR_CHANOPRIVSNEEDED,
    ERR_NOSUCHCHANNEL,
    ERR_NOSUCHNICK,
    ERR_NOTONCHANNEL,
    ERR_TOOMANYCHANNELS,
    ERR_TOOMANYTARGETS,
    ERR_UNAVAILRESOURCE,
    ERR_USERNOTINCHANNEL,
    ERR_USERONCHANNEL,
    RPL_ENDOFNAMES,
    RPL_INVITING,
    RPL_LIST,
    RPL_LISTEND,
    RPL_LISTSTART,
    RPL_NAMREPLY,
    RPL_NOTOPIC,
    RPL_TOPIC,
    RPL_TOPICWHOTIME,
)
from salotto.server.accounts import grant_access_status, persist_channel_state, restore_channel_state
from salotto.server.channel import Channel
from salotto.server.client import Client
from salotto.server.context import WORDS_BUDGET, Context, chunk_words
from salotto.server.fanout import Outgoing
from salotto.server.handlers.history import replay_on_join
from salotto.server.handlers.markers import marker_on_join
from salotto.server.registry import JoinRequest

if TYPE_CHECKING:
    from salotto.server.state import Server

__all__ = ["channel_burst", "join_channel", "part_channel", "send_names"]

log = logging.getLogger("salotto.server")


def _split_targets(ctx: Context, text: str) -> list[str] | None:
    """Comma-separated targets, or None (with ERR_TOOMANYTARGETS) above ``max_targets``."""
    targets = [t for t in text.split(",") if t]
    if len(targets) > ctx.server.config.max_targets:
        ctx.reply(ERR_TOOMANYTARGETS, text, "Too many targets")
        return None
    return targets


def handle_join(ctx: Context) -> None:
    # JOIN <channel>{,<channel>} [<key>{,<key>}] | JOIN 0
    params = ctx.msg.params
    if params[0] == "0":
        for channel in list(ctx.client.channels.values()):
            part_channel(ctx, channel, "Left all channels")
        return
    names = _split_targets(ctx, params[0])
    if names is None:
        return
    keys = params[1].split(",") if len(params) > 1 else []
    for i, name in enumerate(names):
        join_channel(ctx, name, keys[i] if i < len(keys) else None)


def join_channel(ctx: Context, name: str, key: str | None) -> None:
    """Join ``name`` (creating it with the joiner as operator), checking modes, limits and bans."""
    server = ctx.server
    client = ctx.client
    config = server.config
    name_cf = casefold(name)
    if name_cf in client.channels:
        return
    if not is_valid_channel(name, config.channel_max_len):
        ctx.reply(ERR_NOSUCHCHANNEL, name, "No such channel")
        return
    if len(client.channels) >= config.max_channels_per_user:
        ctx.reply(ERR_TOOMANYCHANNELS, name, "You have joined too many channels")
        return
    accounts = server.accounts
    registration = accounts.channels.get(name_cf) if accounts is not None else None
    # A registered channel's access list gives operator status and lets its people past the modes.
    level = registration.access.get(casefold(client.account)) if registration and client.account else None

    def create() -> Channel:
        channel = Channel(name if registration is None else registration.name, name_cf, int(server.wallclock()))
        if registration is not None:
            restore_channel_state(channel, registration)  # as it was kept, before anyone checks its modes
        return channel

    # The first member of an unregistered channel is its operator; in a registered one, ChanServ
    # gives status by the access list, visibly, once the JOIN is out.
    request = JoinRequest(name, name_cf, key, bypass=level is not None, founder_op=registration is None,
                          create=create)
    ctx.call(lambda done: server.join(client, request, done),
             partial(_joined, ctx, has_access=level is not None))


def _joined(ctx: Context, result: Channel | tuple[str, ...] | None, *, has_access: bool) -> None:
    """The channel registry's answer to a JOIN: in (tell the channel, topic, names, replay) or kept out."""
    if result is None:
        return
    if not isinstance(result, Channel):
        ctx.reply(*result)  # a mode kept the client out
        return
    server = ctx.server
    client = ctx.client
    channel = result
    backplane = server.backplane
    plain = server.from_user(client, "JOIN", [channel.name])
    extended = server.from_user(client, "JOIN", [channel.name, client.account or "*", client.realname])
    session = ctx.session
    backplane.to_members(channel, plain, exclude=session, about=client, alternative=("extended-join", extended))
    # Whether the JOIN reached only the operators (a large channel): asked now, before the access list's
    # status could make the user one whose join everyone sees.
    unseen = bool(client.devices) and _unseen(server, channel, client)
    own = extended if "extended-join" in session.caps else plain
    ctx.send(own.variant(session.tag_flags))
    if has_access:
        grant_access_status(server, channel, client, ctx)
    if client.away is not None:  # away-notify: say it with the join, not only when it changes
        away = server.from_user(client, "AWAY", [client.away])
        backplane.to_members(channel, away, exclude=session, about=client, cap="away-notify")
    if channel.topic:
        send_topic(ctx, channel)
    marker_on_join(ctx, channel)
    send_names(ctx, channel)
    replay_on_join(ctx, channel)
    if client.devices:  # the user's other connections are in the channel too: their topic and NAMES
        # (and the JOIN, where the channel is too large for the backplane to have told them of it)
        join = (plain, extended) if unseen else None
        for other in client.sessions():
            if other is not session:
                channel_burst(ctx, channel, other, join=join)


def _unseen(server: Server, channel: Channel, client: Client) -> bool:
    """Whether ``client`` joins or parts ``channel`` unseen by its members (and so by its own devices): a
    channel above large_channel_threshold, where it has no prefix mode."""
    return channel.size() > server.config.large_channel_threshold and not channel.status(client)


def channel_burst(ctx: Context, channel: Channel, session: Client, join: tuple[Outgoing, Outgoing] | None) -> None:
    """What a connection of the user is told of a channel the user is in, as it would be told on joining:
    the JOIN (``join``: plain and extended-join; None when the backplane brought it), topic, read marker,
    NAMES, and the replay of its history, written to that connection now (not through ``ctx``)."""
    burst = Context(ctx.server, ctx.client, ctx.msg, session)
    burst.label = None
    if join is not None:
        plain, extended = join
        burst.send((extended if "extended-join" in session.caps else plain).variant(session.tag_flags))
    if channel.topic:
        send_topic(burst, channel)
    marker_on_join(burst, channel)
    send_names(burst, channel)
    replay_on_join(burst, channel)
    burst.flush()


def part_channel(ctx: Context, channel: Channel, reason: str | None) -> None:
    server = ctx.server
    client = ctx.client
    part = server.from_user(client, "PART", [channel.name, reason] if reason else [channel.name])
    server.backplane.to_members(channel, part, exclude=ctx.session, about=client)
    ctx.send(part.variant(ctx.session.tag_flags))
    if client.devices and _unseen(server, channel, client):
        server.backplane.to_sessions(client, part, exclude=ctx.session)
    server.remove_member(channel, client)


def handle_part(ctx: Context) -> None:
    # PART <channel>{,<channel>} [<reason>]
    params = ctx.msg.params
    names = _split_targets(ctx, params[0])
    if names is None:
        return
    reason = params[1] if len(params) > 1 else None
    for name in names:
        channel = ctx.server.find_channel(name)
        if channel is None:
            ctx.reply(ERR_NOSUCHCHANNEL, name, "No such channel")
        elif ctx.client not in channel:
            ctx.reply(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        else:
            part_channel(ctx, channel, reason)


def send_topic(ctx: Context, channel: Channel) -> None:
    if not channel.topic:
        ctx.reply(RPL_NOTOPIC, channel.name, "No topic is set")
        return
    ctx.reply(RPL_TOPIC, channel.name, channel.topic)
    ctx.reply(RPL_TOPICWHOTIME, channel.name, channel.topic_set_by, str(channel.topic_set_at))


def handle_topic(ctx: Context) -> None:
    # TOPIC <channel> [<topic>]
    server = ctx.server
    client = ctx.client
    params = ctx.msg.params
    channel = server.find_channel(params[0])
    if channel is None:
        ctx.reply(ERR_NOSUCHCHANNEL, params[0], "No such channel")
        return
    is_member = client in channel
    if len(params) == 1:
        if not is_member and "s" in channel.modes:
            ctx.reply(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        else:
            send_topic(ctx, channel)
        return
    if not is_member:
        ctx.reply(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        return
    if "t" in channel.modes and not channel.may_moderate(client):
        ctx.reply(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    if _unavailable(ctx, channel):
        return
    server.channel_registry.set_topic(channel, params[1][: server.config.topic_max_len], client.prefix,
                                      int(server.wallclock()))
    change = server.from_user(client, "TOPIC", [channel.name, channel.topic])
    server.backplane.to_channel(channel, change, ctx.session)
    ctx.send(change.variant(ctx.session.tag_flags))
    persist_channel_state(server, channel)


def send_names(ctx: Context, channel: Channel) -> None:
    """RPL_NAMREPLY lines and RPL_ENDOFNAMES.

    In a channel above ``large_channel_threshold`` a non-operator, who is not told of joins and
    parts, is sent only the operators, voiced members and themselves: a list they can keep true.
    """
    client = ctx.client
    server = ctx.server
    multi = "multi-prefix" in ctx.session.caps
    userhost = "userhost-in-names" in ctx.session.caps
    symbol = "@" if "s" in channel.modes else "="
    if client not in channel and "s" in channel.modes:
        ctx.reply(RPL_ENDOFNAMES, channel.name, "End of /NAMES list")
        return
    members: Iterable[Client] = channel.roster()
    if channel.size() > server.config.large_channel_threshold and not channel.is_op(client):
        members = list(channel.privileged)
        if client in channel and client not in channel.privileged:
            members.append(client)
    entries = [channel.prefix_of(m, multi=multi) + (m.prefix if userhost else m.nick) for m in members]
    for line in chunk_words(entries, WORDS_BUDGET):
        ctx.reply(RPL_NAMREPLY, symbol, channel.name, line)
    ctx.reply(RPL_ENDOFNAMES, channel.name, "End of /NAMES list")


def handle_names(ctx: Context) -> None:
    # NAMES [<channel>{,<channel>}]
    params = ctx.msg.params
    if not params:
        ctx.reply(RPL_ENDOFNAMES, "*", "End of /NAMES list")
        return
    for name in params[0].split(",")[:1]:
        channel = ctx.server.find_channel(name)
        if channel is None:
            ctx.reply(RPL_ENDOFNAMES, name, "End of /NAMES list")
        else:
            send_names(ctx, channel)


def handle_list(ctx: Context) -> None:
    # LIST [<channel>{,<channel>}]
    server = ctx.server
    client = ctx.client
    params = ctx.msg.params
    if params and params[0]:
        found = (server.find_channel(name) for name in params[0].split(","))
        channels = [channel for channel in found if channel is not None]
    else:
        channels = list(server.channel_registry.all())
    ctx.reply(RPL_LISTSTART, "Channel", "Users  Name")
    for channel in channels:
        if "s" in channel.modes and client not in channel:
            continue
        modes, _ = channel.mode_string(show_key=False)
        ctx.reply(RPL_LIST, channel.name, str(channel.size()), f"[{modes}] {channel.topic}")
    ctx.reply(RPL_LISTEND, "End of /LIST")


def handle_invite(ctx: Context) -> None:
    # INVITE <nickname> <channel>
    server = ctx.server
    client = ctx.client
    nick, name = ctx.msg.params[0], ctx.msg.params[1]
    target = server.find_user(nick)
    if target is None:
        ctx.reply(ERR_NOSUCHNICK, nick, "No such nick/channel")
        return
    channel = server.find_channel(name)
    if channel is None:
        ctx.reply(ERR_NOSUCHCHANNEL, name, "No such channel")
        return
    if client not in channel:
        ctx.reply(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        return
    if "i" in channel.modes and not channel.may_moderate(client):
        ctx.reply(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    if target in channel:
        ctx.reply(ERR_USERONCHANNEL, target.nick, channel.name, "is already on channel")
        return
    if _unavailable(ctx, channel):
        return
    server.channel_registry.invite(channel, target.id, channel.may_moderate(client), server.config.max_list_entries)
    ctx.reply(RPL_INVITING, target.nick, channel.name)
    invite = server.from_user(client, "INVITE", [target.nick, channel.name])
    server.backplane.to_nick(target, invite)
    # invite-notify: the channel's operators who asked for it learn of the invitation.
    server.backplane.to_members(channel, invite, exclude=ctx.session, cap="invite-notify", operators_only=True)


def _unavailable(ctx: Context, channel: Channel) -> bool:
    """437 when the channel registry cannot change a channel now (a cluster node cut off from the others)."""
    why = ctx.server.channel_registry.unavailable()
    if why is not None:
        ctx.reply(ERR_UNAVAILRESOURCE, channel.name, why)
    return why is not None


def handle_kick(ctx: Context) -> None:
    # KICK <channel> <user>{,<user>} [<comment>]
    server = ctx.server
    client = ctx.client
    params = ctx.msg.params
    channel = server.find_channel(params[0])
    if channel is None:
        ctx.reply(ERR_NOSUCHCHANNEL, params[0], "No such channel")
        return
    if client not in channel:
        ctx.reply(ERR_NOTONCHANNEL, channel.name, "You're not on that channel")
        return
    if not channel.may_moderate(client):
        ctx.reply(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
        return
    if _unavailable(ctx, channel):
        return
    nicks = _split_targets(ctx, params[1])
    if nicks is None:
        return
    reason = (params[2] if len(params) > 2 and params[2] else client.nick)[: server.config.kick_max_len]
    for nick in nicks:
        target = server.find_user(nick)
        if target is None or target not in channel:
            ctx.reply(ERR_USERNOTINCHANNEL, nick, channel.name, "They aren't on that channel")
            continue
        kick = server.from_user(client, "KICK", [channel.name, target.nick, reason])
        server.backplane.to_channel(channel, kick, ctx.session)
        ctx.send(kick.variant(ctx.session.tag_flags))
        log.info("%s kicked %s from %s: %s", client.nick, target.nick, channel.name, reason)
        server.remove_member(channel, target)
