"""MODE for users and channels (https://modern.ircdocs.horse/#mode-message)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from salotto.proto.modes import USER_MODES, parse_mode_string
from salotto.proto.names import CHANTYPES
from salotto.proto.numerics import (
    ERR_CHANOPRIVSNEEDED,
    ERR_NOSUCHCHANNEL,
    ERR_NOSUCHNICK,
    ERR_UMODEUNKNOWNFLAG,
    ERR_UNKNOWNMODE,
    ERR_USERSDONTMATCH,
    RPL_BANLIST,
    RPL_CHANNELMODEIS,
    RPL_CREATIONTIME,
    RPL_ENDOFBANLIST,
    RPL_ENDOFEXCEPTLIST,
    RPL_ENDOFINVEXLIST,
    RPL_EXCEPTLIST,
    RPL_INVEXLIST,
    RPL_UMODEIS,
)
from salotto.server.accounts import persist_channel_state
from salotto.server.channel import Channel, ListEntry
from salotto.server.context import Context
from salotto.server.isupport import MODES_PER_COMMAND
from salotto.server.registry import ModeContext, ModeOutcome

_LIST_REPLIES = {
    "b": (RPL_BANLIST, RPL_ENDOFBANLIST, "End of channel ban list"),
    "e": (RPL_EXCEPTLIST, RPL_ENDOFEXCEPTLIST, "End of channel exception list"),
    "I": (RPL_INVEXLIST, RPL_ENDOFINVEXLIST, "End of channel invite list"),
}


def handle_mode(ctx: Context) -> None:
    # MODE <target> [<modestring> [<mode arguments>...]]
    target = ctx.msg.params[0]
    if target[:1] in CHANTYPES:
        _channel_mode(ctx, target)
    else:
        _user_mode(ctx, target)


def _user_mode(ctx: Context, nick: str) -> None:
    client = ctx.client
    server = ctx.server
    params = ctx.msg.params
    target = server.find_user(nick)
    if target is None:
        ctx.reply(ERR_NOSUCHNICK, nick, "No such nick/channel")
        return
    if target is not client:
        ctx.reply(ERR_USERSDONTMATCH, "Can't change mode for other users")
        return
    if len(params) < 2:
        ctx.reply(RPL_UMODEIS, "+" + "".join(sorted(client.modes)))
        return
    adding = True
    applied: list[str] = []
    unknown = False
    for ch in params[1]:
        if ch in "+-":
            adding = ch == "+"
        elif ch not in USER_MODES:
            unknown = True
        elif ch == "o" and adding:
            continue  # +o only comes from OPER
        elif adding and ch not in client.modes:
            client.modes |= {ch}
            applied.append("+" + ch)
            if ch == "i":
                server.invisible_count += 1
        elif not adding and ch in client.modes:
            client.modes -= {ch}
            applied.append("-" + ch)
            if ch == "i":
                server.invisible_count -= 1
            elif ch == "o":
                server.opers.discard(client)
    if unknown:
        ctx.reply(ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
    if applied:
        server.nick_registry.updated(client)
        change = server.from_user(client, "MODE", [client.nick, _join_modes(applied)], source=client.nick)
        ctx.send(change.variant(ctx.session.tag_flags))
        if client.devices:  # the user's other connections see its modes change too
            server.backplane.to_sessions(client, change, exclude=ctx.session)


def _join_modes(applied: list[str]) -> str:
    """['+o', '+v', '-b'] -> '+ov-b'."""
    out: list[str] = []
    sign = ""
    for item in applied:
        if item[0] != sign:
            sign = item[0]
            out.append(sign)
        out.append(item[1])
    return "".join(out)


def _channel_mode(ctx: Context, name: str) -> None:
    server = ctx.server
    client = ctx.client
    params = ctx.msg.params
    channel = server.find_channel(name)
    if channel is None:
        ctx.reply(ERR_NOSUCHCHANNEL, name, "No such channel")
        return
    if len(params) < 2:
        modes, mode_args = channel.mode_string(show_key=client in channel)
        ctx.reply(RPL_CHANNELMODEIS, channel.name, modes, *mode_args)
        ctx.reply(RPL_CREATIONTIME, channel.name, str(channel.created))
        return
    changes, unknown = parse_mode_string(params[1], params[2:])
    # Each unknown letter and each list answered once per command: "MODE #c bbbb..." must not
    # turn one line into tens of thousands of replies.
    for letter in dict.fromkeys(unknown):
        ctx.reply(ERR_UNKNOWNMODE, letter, "is an unknown mode char to me")
    context = ModeContext(channel.may_moderate(client), server.find_user, server.config.max_list_entries,
                          MODES_PER_COMMAND, int(server.wallclock()))
    ctx.call(lambda done: server.channel_registry.change_modes(channel, client, changes, context, done),
             partial(_modes_changed, ctx, channel))


def _modes_changed(ctx: Context, channel: Channel, outcomes: list[ModeOutcome]) -> None:
    """The channel registry's answer to a MODE: list replies, errors, and the change to everyone."""
    server = ctx.server
    client = ctx.client
    listed: set[str] = set()
    applied: list[str] = []
    args: list[str] = []
    for outcome in outcomes:
        change = outcome.change
        if outcome.listing is not None:
            if change.mode not in listed:
                listed.add(change.mode)
                _send_list(ctx, channel, change.mode, outcome.listing)
        elif outcome.refused:
            ctx.reply(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
            return
        elif outcome.error is not None:
            ctx.reply(*outcome.error)
        elif outcome.applied is not None:
            applied.append(("+" if change.adding else "-") + change.mode)
            if outcome.applied:
                args.append(outcome.applied)
    if applied:
        line = server.from_user(client, "MODE", [channel.name, _join_modes(applied), *args])
        server.backplane.to_channel(channel, line, ctx.session)
        ctx.send(line.variant(ctx.session.tag_flags))
        persist_channel_state(server, channel)


def _send_list(ctx: Context, channel: Channel, mode: str, entries: Iterable[ListEntry]) -> None:
    item, end, text = _LIST_REPLIES[mode]
    for entry in entries:
        ctx.reply(item, channel.name, entry.mask, entry.set_by, str(entry.set_at))
    ctx.reply(end, channel.name, text)
