"""MODE for users and channels (https://modern.ircdocs.horse/#mode-message)."""

from __future__ import annotations

from salotto.proto.modes import PREFIX_MODES, USER_MODES, ModeChange, parse_mode_string
from salotto.proto.names import CHANTYPES, normalize_mask
from salotto.proto.numbers import parse_positive_int
from salotto.proto.numerics import (
    ERR_BANLISTFULL,
    ERR_CHANOPRIVSNEEDED,
    ERR_INVALIDKEY,
    ERR_INVALIDMODEPARAM,
    ERR_NOSUCHCHANNEL,
    ERR_NOSUCHNICK,
    ERR_UMODEUNKNOWNFLAG,
    ERR_UNKNOWNMODE,
    ERR_USERNOTINCHANNEL,
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

_LIST_REPLIES = {
    "b": (RPL_BANLIST, RPL_ENDOFBANLIST, "End of channel ban list"),
    "e": (RPL_EXCEPTLIST, RPL_ENDOFEXCEPTLIST, "End of channel exception list"),
    "I": (RPL_INVEXLIST, RPL_ENDOFINVEXLIST, "End of channel invite list"),
}
# Longest channel key, as in InspIRCd and ergo.
_KEY_MAX_LEN = 32


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
            client.modes.add(ch)
            applied.append("+" + ch)
            if ch == "i":
                server.invisible_count += 1
        elif not adding and ch in client.modes:
            client.modes.discard(ch)
            applied.append("-" + ch)
            if ch == "i":
                server.invisible_count -= 1
            elif ch == "o":
                server.opers.discard(client)
    if unknown:
        ctx.reply(ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag")
    if applied:
        change = server.from_user(client, "MODE", [client.nick, _join_modes(applied)], source=client.nick)
        ctx.send(change.variant(client.tag_flags))


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
        modes, mode_args = channel.mode_string(show_key=client in channel.members)
        ctx.reply(RPL_CHANNELMODEIS, channel.name, modes, *mode_args)
        ctx.reply(RPL_CREATIONTIME, channel.name, str(channel.created))
        return
    changes, unknown = parse_mode_string(params[1], params[2:])
    # Each unknown letter and each list answered once per command: "MODE #c bbbb..." must not
    # turn one line into tens of thousands of replies.
    for letter in dict.fromkeys(unknown):
        ctx.reply(ERR_UNKNOWNMODE, letter, "is an unknown mode char to me")
    listed: set[str] = set()
    is_op = channel.may_moderate(client)
    applied: list[str] = []
    args: list[str] = []
    with_param = 0
    for change in changes:
        if change.param is None and change.mode in _LIST_REPLIES:
            if change.mode not in listed:
                listed.add(change.mode)
                _send_list(ctx, channel, change.mode)
            continue
        if not is_op:
            ctx.reply(ERR_CHANOPRIVSNEEDED, channel.name, "You're not channel operator")
            return
        if change.param is not None:
            with_param += 1
            if with_param > MODES_PER_COMMAND:
                break
        arg = _apply(ctx, channel, change)
        if arg is None:
            continue
        applied.append(("+" if change.adding else "-") + change.mode)
        if arg:
            args.append(arg)
    if applied:
        line = server.from_user(client, "MODE", [channel.name, _join_modes(applied), *args])
        line.deliver(channel.members, exclude=client)
        ctx.send(line.variant(client.tag_flags))
        persist_channel_state(server, channel)


def _apply(ctx: Context, channel: Channel, change: ModeChange) -> str | None:
    """Apply one change. Returns its argument for the MODE line ("" for none), None if nothing changed."""
    adding, mode, param = change
    if mode in PREFIX_MODES:
        if param is None:
            return None
        target = ctx.server.find_user(param)
        if target is None:
            ctx.reply(ERR_NOSUCHNICK, param, "No such nick/channel")
            return None
        status = channel.members.get(target)
        if status is None:
            ctx.reply(ERR_USERNOTINCHANNEL, target.nick, channel.name, "They aren't on that channel")
            return None
        if adding == (mode in status):
            return None
        new = status + mode if adding else status.replace(mode, "")
        channel.set_status(target, "".join(m for m in PREFIX_MODES if m in new))
        return target.nick
    if mode in _LIST_REPLIES:
        assert param is not None
        return _change_list(ctx, channel, mode, adding, param)
    if mode == "k":
        if adding:
            if not param or " " in param or "," in param or param[0] == ":" or len(param) > _KEY_MAX_LEN:
                ctx.reply(ERR_INVALIDKEY, channel.name, "Key is not well-formed")
                return None
            channel.key = param
            return param
        if channel.key is None:
            return None
        channel.key = None
        return "*"
    if mode == "l":
        if not adding:
            if channel.limit is None:
                return None
            channel.limit = None
            return ""
        limit = parse_positive_int(param) if param is not None else None
        if limit is None:
            ctx.reply(ERR_INVALIDMODEPARAM, channel.name, "l", param or "*", "Invalid limit")
            return None
        channel.limit = limit
        return str(limit)
    if adding == (mode in channel.modes):
        return None
    if adding:
        channel.modes.add(mode)
    else:
        channel.modes.discard(mode)
    return ""


def _change_list(ctx: Context, channel: Channel, mode: str, adding: bool, param: str) -> str | None:
    if not param or " " in param or param[0] == ":":
        return None
    entries = channel.mode_list(mode)
    mask = normalize_mask(param)
    existing = next((e for e in entries if e.mask == mask), None)
    if adding:
        if existing is not None:
            return None
        if len(entries) >= ctx.server.config.max_list_entries:
            ctx.reply(ERR_BANLISTFULL, channel.name, mode, "Channel list is full")
            return None
        entries.append(ListEntry(mask, ctx.client.nick, int(ctx.server.wallclock())))
        return mask
    if existing is None:
        return None
    entries.remove(existing)
    return mask


def _send_list(ctx: Context, channel: Channel, mode: str) -> None:
    item, end, text = _LIST_REPLIES[mode]
    for entry in channel.mode_list(mode):
        ctx.reply(item, channel.name, entry.mask, entry.set_by, str(entry.set_at))
    ctx.reply(end, channel.name, text)
