"""Queries about users and the server: WHO, WHOIS, WHOWAS, USERHOST, ISON, LUSERS, MOTD, VERSION,
TIME, ADMIN, INFO (https://modern.ircdocs.horse/#user-based-queries)."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from salotto.proto.casemap import casefold
from salotto.proto.modes import BOT_MODE
from salotto.proto.names import CHANTYPES, mask_match
from salotto.proto.numbers import parse_positive_int
from salotto.proto.numerics import (
    ERR_NOMOTD,
    ERR_NOSUCHNICK,
    ERR_WASNOSUCHNICK,
    RPL_ADMINEMAIL,
    RPL_ADMINLOC1,
    RPL_ADMINLOC2,
    RPL_ADMINME,
    RPL_AWAY,
    RPL_ENDOFINFO,
    RPL_ENDOFMOTD,
    RPL_ENDOFWHO,
    RPL_ENDOFWHOIS,
    RPL_ENDOFWHOWAS,
    RPL_GLOBALUSERS,
    RPL_INFO,
    RPL_ISON,
    RPL_ISUPPORT,
    RPL_LOCALUSERS,
    RPL_LUSERCHANNELS,
    RPL_LUSERCLIENT,
    RPL_LUSERME,
    RPL_LUSEROP,
    RPL_LUSERUNKNOWN,
    RPL_MOTD,
    RPL_MOTDSTART,
    RPL_TIME,
    RPL_USERHOST,
    RPL_VERSION,
    RPL_WHOISACCOUNT,
    RPL_WHOISBOT,
    RPL_WHOISCHANNELS,
    RPL_WHOISHOST,
    RPL_WHOISIDLE,
    RPL_WHOISOPERATOR,
    RPL_WHOISSERVER,
    RPL_WHOISUSER,
    RPL_WHOREPLY,
    RPL_WHOSPCRPL,
    RPL_WHOWASUSER,
)
from salotto.server.channel import Channel
from salotto.server.client import Client, shown_address
from salotto.server.context import WORDS_BUDGET, Context, chunk_words
from salotto.server.isupport import ISUPPORT_TOKENS_PER_LINE

# Nicks answered by one USERHOST (RFC 2812: up to 5).
USERHOST_MAX_NICKS = 5


def send_lusers(ctx: Context) -> None:
    server = ctx.server
    registered = server.registered_count
    invisible = server.invisible_count
    opers = len(server.opers)
    # Devices are connections of users counted already; detached users are users without a connection.
    unknown = len(server.clients) - server.device_count - registered + len(server.detached_users)
    # The network's users: this node's and, in a cluster, the other nodes'.
    other_users, other_invisible, other_opers, other_servers = server.nick_registry.others_counted()
    users = registered + other_users
    invisible += other_invisible
    opers += other_opers
    servers = 1 + other_servers
    ctx.reply(RPL_LUSERCLIENT, f"There are {users - invisible} users and {invisible} invisible on {servers} servers")
    ctx.reply(RPL_LUSEROP, str(opers), "operator(s) online")
    ctx.reply(RPL_LUSERUNKNOWN, str(unknown), "unknown connection(s)")
    ctx.reply(RPL_LUSERCHANNELS, str(server.channel_registry.count()), "channels formed")
    ctx.reply(RPL_LUSERME, f"I have {registered} clients and 0 servers")
    peak = server.registered_peak
    ctx.reply(RPL_LOCALUSERS, str(registered), str(peak), f"Current local users {registered}, max {peak}")
    top = max(peak, users)
    ctx.reply(RPL_GLOBALUSERS, str(users), str(top), f"Current global users {users}, max {top}")


def handle_lusers(ctx: Context) -> None:
    # LUSERS
    send_lusers(ctx)


def send_motd(ctx: Context) -> None:
    server = ctx.server
    if not server.motd:
        ctx.reply(ERR_NOMOTD, "MOTD File is missing")
        return
    ctx.reply(RPL_MOTDSTART, f"- {server.name} Message of the day - ")
    for line in server.motd:
        ctx.reply(RPL_MOTD, f"- {line}")
    ctx.reply(RPL_ENDOFMOTD, "End of /MOTD command.")


def handle_motd(ctx: Context) -> None:
    # MOTD [<target>]
    send_motd(ctx)


def handle_version(ctx: Context) -> None:
    # VERSION [<target>]
    server = ctx.server
    ctx.reply(RPL_VERSION, server.version, server.name, "salotto, a self-hosted chat server")
    send_isupport(ctx)


def send_isupport(ctx: Context) -> None:
    tokens = ctx.server.isupport
    for i in range(0, len(tokens), ISUPPORT_TOKENS_PER_LINE):
        ctx.reply(RPL_ISUPPORT, *tokens[i : i + ISUPPORT_TOKENS_PER_LINE], "are supported by this server")


def handle_time(ctx: Context) -> None:
    # TIME [<server>]
    now = ctx.server.wallclock()
    text = time.strftime("%A %B %d %Y -- %H:%M:%S +00:00", time.gmtime(now))
    ctx.reply(RPL_TIME, ctx.server.name, str(int(now)), "0", text)


def handle_admin(ctx: Context) -> None:
    # ADMIN [<target>]
    server = ctx.server
    config = server.config
    ctx.reply(RPL_ADMINME, server.name, "Administrative info")
    ctx.reply(RPL_ADMINLOC1, config.admin_name)
    ctx.reply(RPL_ADMINLOC2, config.admin_location or "-")
    ctx.reply(RPL_ADMINEMAIL, config.admin_email or "-")


def handle_info(ctx: Context) -> None:
    # INFO [<target>]
    server = ctx.server
    for line in (
        f"{server.version}: a self-hosted chat server that speaks IRC.",
        "Written in Python; protocol core, server, transports and clients in one package.",
        f"Running since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(server.created))}.",
    ):
        ctx.reply(RPL_INFO, line)
    ctx.reply(RPL_ENDOFINFO, "End of INFO list")


def _visible(viewer: Client, target: Client) -> bool:
    """Invisible (+i) users show up in WHO masks only to people sharing a channel, and opers."""
    if "i" not in target.modes or viewer is target or viewer.is_oper:
        return True
    return any(name in viewer.channels for name in target.channels)


# WHOX (https://ircv3.net/specs/extensions/whox): the fields a 354 can carry, in the order it carries
# them: token, channel, user, IP, host, server, nick, flags, hop count, idle, account, oplevel, realname.
WHOX_FIELDS = "tcuihsnfdlaor"
# What the IP field says when the viewer may not see the address (hidden behind a changed host).
WHOX_HIDDEN_IP = "255.255.255.255"


@dataclass(frozen=True, slots=True)
class WhoxRequest:
    fields: str  # the standard fields asked for, each once, in WHOX_FIELDS order
    token: str


def parse_whox(param: str) -> WhoxRequest | None:
    """``[flags]%<fields>[,<token>]`` -> the request, or None for a plain WHO. Unknown fields are
    ignored; a token must be one to three digits, else it is ``0``."""
    _, percent, spec = param.partition("%")
    if not percent:
        return None
    letters, _, token = spec.partition(",")
    if not (token.isascii() and token.isdigit() and len(token) <= 3):
        token = "0"
    return WhoxRequest("".join(field for field in WHOX_FIELDS if field in letters), token)


def _who_flags(ctx: Context, channel: Channel | None, target: Client) -> str:
    flags = "G" if target.away is not None else "H"
    if target.is_oper:
        flags += "*"
    if BOT_MODE in target.modes:
        flags += BOT_MODE
    if channel is not None:
        flags += channel.prefix_of(target, multi="multi-prefix" in ctx.session.caps)
    return flags


def _who_line(ctx: Context, channel: Channel | None, target: Client, whox: WhoxRequest | None) -> None:
    if whox is not None:
        _whox_line(ctx, channel, target, whox)
        return
    ctx.reply(
        RPL_WHOREPLY,
        channel.name if channel is not None else "*",
        target.user,
        target.host,
        ctx.server.name,
        target.nick,
        _who_flags(ctx, channel, target),
        f"0 {target.realname}",
    )


def _whox_line(ctx: Context, channel: Channel | None, target: Client, whox: WhoxRequest) -> None:
    server = ctx.server
    viewer = ctx.client
    values: list[str] = []
    for field in whox.fields:
        if field == "t":
            values.append(whox.token)
        elif field == "c":
            values.append(channel.name if channel is not None else "*")
        elif field == "u":
            values.append(target.user)
        elif field == "i":
            # The address is no secret while it is the host (plain WHO shows it); behind a changed
            # host only the user and operators see it, as with WHOIS.
            address = shown_address(target.ip)
            shown = target.host == address or viewer is target or viewer.is_oper
            values.append(address if shown else WHOX_HIDDEN_IP)
        elif field == "h":
            values.append(target.host)
        elif field == "s":
            values.append(server.name)
        elif field == "n":
            values.append(target.nick)
        elif field == "f":
            values.append(_who_flags(ctx, channel, target))
        elif field == "d":
            values.append("0")  # one server: no hops
        elif field == "l":
            values.append(str(int(server.clock() - target.idle_since)))
        elif field == "a":
            values.append(target.account or "0")
        elif field == "o":
            values.append("n/a")
        else:  # "r", always the last
            values.append(target.realname)
    ctx.reply(RPL_WHOSPCRPL, *values)


def handle_who(ctx: Context) -> None:
    # WHO <mask> [[<flags>]%<fields>[,<token>]]   (WHOX: https://ircv3.net/specs/extensions/whox)
    server = ctx.server
    client = ctx.client
    params = ctx.msg.params
    mask = params[0]
    whox = parse_whox(params[1]) if len(params) > 1 else None
    if mask[:1] in CHANTYPES:
        channel = server.find_channel(mask)
        if channel is not None and (client in channel or "s" not in channel.modes):
            # A large channel answers a non-operator with at most who_max_results lines, as a mask does.
            limit = None
            if channel.size() > server.config.large_channel_threshold and not channel.may_moderate(client):
                limit = server.config.who_max_results
            for member in itertools.islice(channel.roster(), limit):
                _who_line(ctx, channel, member, whox)
    else:
        target = server.find_user(mask)
        if target is not None:
            _who_line(ctx, None, target, whox)
        elif "*" in mask or "?" in mask:
            shown = 0
            for other in itertools.chain(server.clients, server.detached_users, server.nick_registry.others()):
                if not other.registered or other.primary is not None or not _visible(client, other):
                    continue
                if mask_match(mask, other.nick) or mask_match(mask, other.prefix):
                    _who_line(ctx, None, other, whox)
                    shown += 1
                    if shown >= server.config.who_max_results:
                        break
    ctx.reply(RPL_ENDOFWHO, mask, "End of WHO list")


def handle_whois(ctx: Context) -> None:
    # WHOIS [<target>] <nick>
    server = ctx.server
    client = ctx.client
    params = ctx.msg.params
    nick = params[-1]
    target = server.find_user(nick)
    if target is None:
        ctx.reply(ERR_NOSUCHNICK, nick, "No such nick/channel")
        ctx.reply(RPL_ENDOFWHOIS, nick, "End of /WHOIS list")
        return
    ctx.reply(RPL_WHOISUSER, target.nick, target.user, target.host, "*", target.realname)
    multi = "multi-prefix" in ctx.session.caps
    channels = [
        channel.prefix_of(target, multi=multi) + channel.name
        for channel in target.channels.values()
        if "s" not in channel.modes or client in channel
    ]
    for line in chunk_words(channels, WORDS_BUDGET):
        ctx.reply(RPL_WHOISCHANNELS, target.nick, line)
    ctx.reply(RPL_WHOISSERVER, target.nick, server.name, server.config.network_name)
    if target.away is not None:
        ctx.reply(RPL_AWAY, target.nick, target.away)
    if target.is_oper:
        ctx.reply(RPL_WHOISOPERATOR, target.nick, "is an IRC operator")
    if BOT_MODE in target.modes:
        ctx.reply(RPL_WHOISBOT, target.nick, f"is a Bot on {server.config.network_name}")
    if target.account is not None:
        ctx.reply(RPL_WHOISACCOUNT, target.nick, target.account, "is logged in as")
    if client is target or client.is_oper:
        ctx.reply(RPL_WHOISHOST, target.nick, f"is connecting from {target.user}@{target.ip} {target.ip}")
    idle = int(server.clock() - target.idle_since)
    ctx.reply(RPL_WHOISIDLE, target.nick, str(idle), str(int(target.signon)), "seconds idle, signon time")
    ctx.reply(RPL_ENDOFWHOIS, target.nick, "End of /WHOIS list")


def handle_whowas(ctx: Context) -> None:
    # WHOWAS <nick> [<count>]
    server = ctx.server
    params = ctx.msg.params
    nick = params[0]
    count = (parse_positive_int(params[1]) if len(params) > 1 else None) or 0
    nick_cf = casefold(nick)
    found = 0
    for entry in server.whowas:
        if casefold(entry.nick) != nick_cf:
            continue
        ctx.reply(RPL_WHOWASUSER, entry.nick, entry.user, entry.host, "*", entry.realname)
        ctx.reply(RPL_WHOISSERVER, entry.nick, server.name, time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime(entry.left_at)))
        found += 1
        if count and found >= count:
            break
    if not found:
        ctx.reply(ERR_WASNOSUCHNICK, nick, "There was no such nickname")
    ctx.reply(RPL_ENDOFWHOWAS, nick, "End of WHOWAS")


def handle_userhost(ctx: Context) -> None:
    # USERHOST <nickname>{ <nickname>}
    server = ctx.server
    replies = []
    for nick in ctx.msg.params[:USERHOST_MAX_NICKS]:
        target = server.find_user(nick)
        if target is None:
            continue
        oper = "*" if target.is_oper else ""
        away = "-" if target.away is not None else "+"
        replies.append(f"{target.nick}{oper}={away}{target.user}@{target.host}")
    ctx.reply(RPL_USERHOST, " ".join(replies))


def handle_ison(ctx: Context) -> None:
    # ISON <nickname>{ <nickname>}
    server = ctx.server
    present = []
    for param in ctx.msg.params:
        for nick in param.split():
            target = server.find_user(nick)
            if target is not None:
                present.append(target.nick)
    ctx.reply(RPL_ISON, " ".join(present))
