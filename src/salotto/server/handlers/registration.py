"""Connection registration: CAP, PASS, NICK, USER, PING, PONG, QUIT and the welcome burst.

https://modern.ircdocs.horse/#connection-registration, https://ircv3.net/specs/extensions/capability-negotiation
"""

from __future__ import annotations

import logging
import time
from functools import partial
from math import ceil

from salotto.passwords import verify_password
from salotto.proto.casemap import casefold
from salotto.proto.modes import CHANNEL_MODES, CHANNEL_MODES_WITH_PARAM, USER_MODES
from salotto.proto.names import is_valid_nick
from salotto.proto.numbers import parse_positive_int
from salotto.proto.numerics import (
    ERR_ALREADYREGISTERED,
    ERR_ERRONEUSNICKNAME,
    ERR_INVALIDCAPCMD,
    ERR_NEEDMOREPARAMS,
    ERR_NICKNAMEINUSE,
    ERR_NONICKNAMEGIVEN,
    ERR_SASLABORTED,
    ERR_UNAVAILRESOURCE,
    RPL_CREATED,
    RPL_MYINFO,
    RPL_NOWAWAY,
    RPL_WELCOME,
    RPL_YOURHOST,
)
from salotto.server import monitor
from salotto.server.accounts import is_service, nick_protection_check
from salotto.server.client import TAG_ACCOUNT, TAG_MESSAGE_TAGS, TAG_MULTILINE, TAG_SERVER_TIME, Client
from salotto.server.context import Context
from salotto.server.dispatch import password_missing, refuse_password
from salotto.server.flood import ip_key
from salotto.server.handlers.channels import channel_burst, join_channel
from salotto.server.handlers.history import replay_while_detached
from salotto.server.handlers.queries import send_isupport, send_lusers, send_motd
from salotto.server.isupport import USERLEN
from salotto.server.sasl import MECHANISMS
from salotto.server.server_password import Attempt
from salotto.storage.outcome import Outcome

# EXTERNAL needs client certificates that the stdlib's TLS cannot accept unless a CA signed them.
SASL_MECHANISMS = tuple(m for m in MECHANISMS if m != "EXTERNAL")

log = logging.getLogger("salotto.server")

# Capabilities always offered (https://ircv3.net/registry); Server.capabilities() adds those that
# depend on configuration. Values are shown to CAP LS 302 clients.
CAPABILITIES: dict[str, str] = {
    "away-notify": "",
    "batch": "",
    "cap-notify": "",
    "chghost": "",
    "echo-message": "",
    "extended-join": "",
    "extended-monitor": "",
    "invite-notify": "",
    "labeled-response": "",
    "message-tags": "",
    "multi-prefix": "",
    "server-time": "",
    "setname": "",
    "userhost-in-names": "",
}
# Offered when accounts are on (Server.capabilities). The sasl value lists the mechanisms (CAP 302).
ACCOUNT_CAPABILITIES: dict[str, str] = {
    "account-notify": "",
    "account-tag": "",
    "sasl": ",".join(SASL_MECHANISMS),
}
# The most of a line (without CRLF) that a CAP reply may fill (RFC 1459's 512 bytes with it).
_CAP_LINE_MAX = 510


def _tag_flags(caps: set[str]) -> int:
    flags = 0
    if "message-tags" in caps:
        flags |= TAG_MESSAGE_TAGS
    if "server-time" in caps:
        flags |= TAG_SERVER_TIME
    if "account-tag" in caps:
        flags |= TAG_ACCOUNT
    if "draft/multiline" in caps and "batch" in caps:
        flags |= TAG_MULTILINE
    return flags


def _cap_lines(ctx: Context, subcommand: str, items: list[str]) -> None:
    """CAP LS/LIST, split over several lines (``*`` marks continuation) only when one line cannot hold it:
    each line as full as 512 bytes allow, so that a client that reads only the first line (pydle 1.2 does)
    still sees every capability when they fit."""
    target = ctx.client.nick
    # ":server CAP nick LS * :" (tags do not count against the 512 bytes)
    budget = _CAP_LINE_MAX - len(f":{ctx.server.name} CAP {target} {subcommand} * :".encode())
    chunks: list[list[str]] = [[]]
    size = 0
    for item in items:
        if chunks[-1] and size + len(item) + 1 > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += len(item) + 1
    for i, chunk in enumerate(chunks):
        more = ["*"] if i < len(chunks) - 1 and ctx.session.cap_version >= 302 else []
        ctx.from_server("CAP", target, subcommand, *more, " ".join(chunk))


def handle_cap(ctx: Context) -> None:
    # CAP <subcommand> [:<capabilities>]
    client = ctx.session  # capabilities are the connection's (a device has its own)
    params = ctx.msg.params
    sub = params[0].upper()
    if sub == "LS":
        if not client.registered:
            client.cap_negotiating = True
        version = (parse_positive_int(params[1]) if len(params) > 1 else None) or 0
        client.cap_version = max(client.cap_version, version)
        if client.cap_version >= 302:
            client.caps |= {"cap-notify"}
        items = [
            f"{name}={value}" if value and client.cap_version >= 302 else name
            for name, value in ctx.server.capabilities(client).items()
        ]
        _cap_lines(ctx, "LS", items)
    elif sub == "LIST":
        _cap_lines(ctx, "LIST", sorted(client.caps))
    elif sub == "REQ":
        if not client.registered:
            client.cap_negotiating = True
        requested = params[1].split() if len(params) > 1 else []
        wanted = set(client.caps)
        offered = ctx.server.capabilities(client)
        for item in requested:
            name = item[1:] if item.startswith("-") else item
            # sts is a policy to read, never to request (the spec lets servers NAK it).
            if name not in offered or name == "sts":
                ctx.from_server("CAP", client.nick, "NAK", " ".join(requested))
                return
            if item.startswith("-"):
                wanted.discard(name)
            else:
                wanted.add(name)
        client.caps = frozenset(wanted)
        client.tag_flags = _tag_flags(wanted)
        ctx.from_server("CAP", client.nick, "ACK", " ".join(requested))
    elif sub == "END":
        if not client.registered:
            client.cap_negotiating = False
            try_register(ctx)
    else:
        ctx.reply(ERR_INVALIDCAPCMD, params[0], "Invalid CAP command")


def handle_pass(ctx: Context) -> None:
    # PASS <password>
    # Without a server password (server_password_hash), PASS is accepted before registration and
    # ignored, as clients configured with one for another network send it anyway.
    client = ctx.client
    server = ctx.server
    if client.registered:
        ctx.reply(ERR_ALREADYREGISTERED, "You may not reregister")
        return
    stored = server.config.server_password_hash
    if not stored or client.password_given:
        return
    password = ctx.msg.params[0]
    gate = server.password_gate

    def answer(right: bool) -> None:
        if right:
            client.password_given = True
        else:
            log.warning("wrong server password from %s", client.ip)
            refuse_password(ctx, "Password incorrect")

    attempt = Attempt(ip_key(client.ip))
    if gate.join(stored, password, attempt):
        # The same password is being checked: its answer is this one's too. Meanwhile the client's next
        # lines (NICK, USER, CAP END) wait.
        attempt.answer = ctx.wait(answer)
        return
    wait, why = gate.start(attempt, server.config, server.clock())
    if wait:
        log.info("server password attempt from %s held back: %s", client.ip, why)
        _refuse_for_now(ctx, f"{why}; try again in {ceil(wait)} seconds")
        return
    attempt.answer = ctx.wait(answer)
    gate.checking(stored, password, attempt)

    def checked(outcome: Outcome[bool]) -> None:
        # Noted even if the client left meanwhile (its answer is then not sent): a guesser that hangs up
        # before the answer still counts as one that failed.
        if outcome.error is not None:
            log.error("could not check a server password: %s", outcome.error)
        for waiting in gate.checked(stored, password, outcome.value is True, server.clock()):
            waiting.answer(outcome.value is True)

    # scrypt, off the loop.
    server.offload.run(lambda: verify_password(password, stored), checked)


def _refuse_for_now(ctx: Context, text: str) -> None:
    """A limit holds the attempt back: ERROR and the connection closes, without 464, which clients take
    as "wrong password, do not retry"; this one they retry (the text says when)."""
    ctx.disconnect_after("Server password attempts held back", error=text)


def handle_nick(ctx: Context) -> None:
    # NICK <nickname>
    client = ctx.client
    server = ctx.server
    params = ctx.msg.params
    if not params or not params[0]:
        ctx.reply(ERR_NONICKNAMEGIVEN, "No nickname given")
        return
    nick = params[0]
    if not is_valid_nick(nick, server.config.nick_max_len):
        ctx.reply(ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname")
        return
    nick_cf = casefold(nick)
    holder = server.nick_registry.holder(nick_cf)
    if holder is not None and holder is not client and not client.registered and _may_attach_to(ctx, holder):
        # Several devices on one nick: taken for now, without claiming it; registration attaches this
        # connection to the holder if it logged in to the same account (try_register), or answers 433.
        server.nick_registry.release(client)  # a nick it claimed before: it holds none while it waits
        client.nick, client.nick_cf = holder.nick, nick_cf
        try_register(ctx)
        return
    if (holder is not None and holder is not client) or is_service(nick):
        ctx.reply(ERR_NICKNAMEINUSE, nick, "Nickname is already in use")
        return
    if nick == client.nick:
        return
    if client.registered and _refused_as_registered(ctx, nick):
        return
    if not client.registered:
        ctx.call(lambda done: server.claim_nick(client, nick_cf, done, nick=nick),
                 partial(_nick_claimed, ctx, nick, nick_cf))
        return
    case_only = nick_cf == client.nick_cf

    def renamed(own: bytes | None) -> None:
        if own is None:  # taken meanwhile (by a client of another node)
            _nick_refused(ctx, nick)
            return
        ctx.send(own)
        if not case_only:  # same nick in other letters: the grace already running goes on
            nick_protection_check(server, client, ctx)

    ctx.call(lambda done: server.rename(client, nick, done, session=ctx.session), renamed)


def _may_attach_to(ctx: Context, holder: Client) -> bool:
    """Whether a connection may take ``holder``'s nick for now, to attach to it: multiclient is on and the
    holder is a user logged in to an account (that this connection must log in to before registering)."""
    return ctx.server.config.multiclient and holder.registered and holder.account is not None


def _nick_claimed(ctx: Context, nick: str, nick_cf: str, claimed: bool) -> None:
    """The nick registry's answer to a NICK before registration."""
    client = ctx.client
    if not claimed:  # taken meanwhile (by a client of another node)
        _nick_refused(ctx, nick)
        return
    client.nick, client.nick_cf = nick, nick_cf
    client.nick_since = int(ctx.server.wallclock() * 1000) / 1000
    try_register(ctx)


def _nick_refused(ctx: Context, nick: str) -> None:
    """433, or 437 when the registry could not decide (a cluster node cut off from the others)."""
    why = ctx.server.nick_registry.unavailable()
    if why is not None:
        ctx.reply(ERR_UNAVAILRESOURCE, nick, why)
    else:
        ctx.reply(ERR_NICKNAMEINUSE, nick, "Nickname is already in use")


def _refused_as_registered(ctx: Context, nick: str) -> bool:
    """With ``nick_protection_grace_s = 0`` a registered nick is refused to anyone not logged in to it."""
    server = ctx.server
    client = ctx.client
    accounts = server.accounts
    if accounts is None or server.config.nick_protection_grace_s > 0:
        return False
    if client.account is not None and casefold(client.account) == casefold(nick):
        return False
    if not accounts.is_registered(nick):
        return False
    ctx.reply(ERR_NICKNAMEINUSE, nick, "Nickname is registered to an account: log in first (SASL or NickServ)")
    return True


def handle_user(ctx: Context) -> None:
    # USER <username> <mode> <unused> :<realname>
    client = ctx.client
    if client.registered or client.user:
        ctx.reply(ERR_ALREADYREGISTERED, "You may not reregister")
        return
    params = ctx.msg.params
    if not params[0] or not params[3]:
        # Modern IRC: neither the username nor the realname may be empty.
        ctx.reply(ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
        return
    username = "".join(ch for ch in params[0] if ch.isalnum() or ch in "-_.")[: USERLEN - 1] or "user"
    # No ident lookup: the "~" says the username is the client's own claim.
    client.user = "~" + username
    client.realname = params[3][: ctx.server.config.realname_max_len]
    try_register(ctx)


def try_register(ctx: Context) -> None:
    """Finish registration once NICK and USER are in and CAP negotiation is over."""
    client = ctx.client
    if client.registered or not client.nick_cf or not client.user or client.cap_negotiating:
        return
    if password_missing(ctx):
        refuse_password(ctx, "Password required: this server needs PASS before NICK and USER")
        return
    server = ctx.server
    holder = server.nick_registry.holder(client.nick_cf)
    if holder is not client:  # a nick taken for now (handle_nick): attach to its holder, or 433
        refusal = _attach_refusal(ctx, holder)
        if refusal is not None:
            nick = client.nick
            client.nick, client.nick_cf = "*", ""
            ctx.reply(ERR_NICKNAMEINUSE, nick, refusal)  # registration waits for another NICK
            return
        assert holder is not None
        _attach(ctx, holder)
        return
    if _refused_as_registered(ctx, client.nick):
        # Registration waits for another NICK, as after any 433.
        ctx.server.nick_registry.release(client)
        client.nick, client.nick_cf = "*", ""
        return
    if client.sasl is not None:
        # sasl-3.1: registration completing while an exchange is unfinished aborts it.
        client.sasl = None
        ctx.reply(ERR_SASLABORTED, "SASL authentication aborted")
    client.registered = True
    server.nick_registry.updated(client)
    server.registered_count += 1
    if server.registered_count > server.registered_peak:
        server.registered_peak = server.registered_count
    ctx.server.stats.registrations += 1
    log.info("registered %s!%s@%s (%s)", client.nick, client.user, client.host, client.conn.transport_name)
    monitor.came_online(ctx.server, client)
    welcome(ctx)
    nick_protection_check(ctx.server, client, ctx)
    for name in ctx.server.config.autojoin:
        join_channel(ctx, name, None)


def _attach_refusal(ctx: Context, holder: Client | None) -> str | None:
    """Why this registering connection may not attach to ``holder`` (the holder of the nick it took for
    now), or None when it may."""
    client = ctx.client
    server = ctx.server
    if holder is None or not holder.registered or holder.quitting:
        return "Nickname is already in use"  # it left meanwhile: the nick is free again, to be asked for anew
    if (client.account is None or holder.account is None or not server.config.multiclient
            or casefold(client.account) != casefold(holder.account)):
        return "Nickname is already in use"
    if holder.conn.transport_name == "remote":
        return (f"Nickname is already in use: {holder.nick} is connected to another server of this network; "
                "a second device must connect to the same one")
    if client.sasl is not None:
        client.sasl = None
        ctx.reply(ERR_SASLABORTED, "SASL authentication aborted")
    if len(holder.sessions()) >= server.config.multiclient_max_devices:
        return (f"Nickname is already in use: {holder.nick} has {server.config.multiclient_max_devices} "
                "connections, the most one user may have (multiclient_max_devices)")
    return None


def _attach(ctx: Context, user: Client) -> None:
    """The registering connection becomes a device of ``user``: the welcome for the user's nick, then each
    of its channels as on a join."""
    server = ctx.server
    device = ctx.client
    absent_since = server.attach(user, device)
    server.stats.registrations += 1
    log.info("attached a device to %s (%s, %s)", user.nick, device.ip, device.conn.transport_name)
    ctx.client = user
    welcome(ctx)
    if user.modes:
        ctx.send(server.from_user(user, "MODE", [user.nick, "+" + "".join(sorted(user.modes))], source=user.nick)
                 .variant(device.tag_flags))
    if user.away is not None:
        ctx.reply(RPL_NOWAWAY, "You have been marked as being away")
    ctx.flush()
    for channel in list(user.channels.values()):
        plain = server.from_user(user, "JOIN", [channel.name])
        extended = server.from_user(user, "JOIN", [channel.name, user.account or "*", user.realname])
        channel_burst(ctx, channel, device, join=(plain, extended))
    if absent_since:
        replay_while_detached(ctx, absent_since)


def welcome(ctx: Context) -> None:
    """001-005, LUSERS and MOTD."""
    server = ctx.server
    client = ctx.client
    config = server.config
    ctx.reply(RPL_WELCOME, f"Welcome to the {config.network_name} IRC Network {client.prefix}")
    ctx.reply(RPL_YOURHOST, f"Your host is {server.name}, running version {server.version}")
    created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(server.created))
    ctx.reply(RPL_CREATED, f"This server was created {created}")
    ctx.reply(RPL_MYINFO, server.name, server.version, USER_MODES, CHANNEL_MODES, CHANNEL_MODES_WITH_PARAM)
    send_isupport(ctx)
    send_lusers(ctx)
    send_motd(ctx)


def handle_ping(ctx: Context) -> None:
    # PING <token>
    ctx.from_server("PONG", ctx.server.name, ctx.msg.params[0])


def handle_pong(ctx: Context) -> None:
    # PONG [<server>] <token>: any line resets the ping timer, nothing else to do.
    return


def handle_quit(ctx: Context) -> None:
    # QUIT [<reason>]
    params = ctx.msg.params
    reason = "Quit: " + params[0] if params and params[0] else "Quit"
    ctx.flush()
    ctx.out.clear()
    ctx.label = None
    ctx.server.disconnect(ctx.session, reason, error="Quit")  # a device's QUIT ends that connection only
