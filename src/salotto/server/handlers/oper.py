"""Server operators: OPER, KILL, REHASH, CHGHOST (https://modern.ircdocs.horse/#operator-messages)."""

from __future__ import annotations

import logging

from salotto.config import OperBlock
from salotto.passwords import verify_password
from salotto.proto.framing import valid_utf8
from salotto.proto.names import mask_match
from salotto.proto.numerics import (
    ERR_NOOPERHOST,
    ERR_NOSUCHNICK,
    ERR_PASSWDMISMATCH,
    RPL_REHASHING,
    RPL_YOUREOPER,
)
from salotto.server.context import Context
from salotto.server.flood import ip_key
from salotto.storage.outcome import Outcome

log = logging.getLogger("salotto.server")



def handle_oper(ctx: Context) -> None:
    # OPER <name> <password>
    client = ctx.client
    server = ctx.server
    name, password = ctx.msg.params[0], ctx.msg.params[1]
    block = server.config.opers.get(name)
    # Each try costs a scrypt hash (off the loop, but still CPU): a connection gets a few, no more.
    if client.oper_failures >= server.config.oper_attempts_per_connection:
        ctx.reply(ERR_PASSWDMISMATCH, "Password incorrect (too many attempts on this connection)")
        return
    accounts = server.accounts
    if accounts is not None:  # the login limit per address covers OPER too
        config = server.config
        wait = accounts.per_ip.take(ip_key(client.ip), config.login_attempts_per_ip,
                                    config.login_throttle_window_s, server.clock())
        if wait:
            ctx.reply(ERR_PASSWDMISMATCH, f"Password incorrect (too many attempts, try again in {wait:.0f} seconds)")
            return
    # Counted now, not when the hash comes back: a burst of OPER lines must not all get a try.
    client.oper_failures += 1
    stored = block.password_hash if block is not None else None

    def checked(outcome: Outcome[bool]) -> None:
        _oper_checked(ctx, name, block if outcome.value else None)

    server.offload.run(lambda: stored is not None and verify_password(password, stored), ctx.wait(checked))


def _oper_checked(ctx: Context, name: str, block: OperBlock | None) -> None:
    client = ctx.client
    server = ctx.server
    if block is None:
        log.warning("failed OPER as %r by %s (%s)", name, client.nick, client.ip)
        ctx.reply(ERR_PASSWDMISMATCH, "Password incorrect")
        return
    if not mask_match(block.hostmask, client.prefix) and not mask_match(
        block.hostmask, f"{client.nick}!{client.user}@{client.ip}"
    ):
        ctx.reply(ERR_NOOPERHOST, "No O-lines for your host")
        return
    client.oper_failures -= 1  # a success does not use up the connection's tries
    client.modes |= {"o"}
    server.opers.add(client)
    server.nick_registry.updated(client)
    log.info("%s (%s) is now an operator as %s", client.nick, client.ip, name)
    ctx.reply(RPL_YOUREOPER, "You are now an IRC operator")
    change = server.from_user(client, "MODE", [client.nick, "+o"], source=client.nick)
    ctx.send(change.variant(ctx.session.tag_flags))
    if client.devices:
        server.backplane.to_sessions(client, change, exclude=ctx.session)


def handle_kill(ctx: Context) -> None:
    # KILL <nickname> <comment>
    client = ctx.client
    server = ctx.server
    nick, comment = ctx.msg.params[0], ctx.msg.params[1]
    target = server.find_user(nick)
    if target is None:
        ctx.reply(ERR_NOSUCHNICK, nick, "No such nick/channel")
        return
    reason = f"Killed ({client.nick} ({comment}))"
    log.info("%s killed %s: %s", client.nick, target.nick, comment)
    server.end_user(target, reason)  # every connection of it, always-on or not


def handle_rehash(ctx: Context) -> None:
    # REHASH
    server = ctx.server
    source = server.config.source_file or "(no config file)"
    ctx.reply(RPL_REHASHING, source, "Rehashing")
    if server.rehash_hook is None:
        return
    error = server.rehash_hook()
    if error is not None:
        ctx.notice(f"REHASH failed, the old configuration stays: {error}")


def handle_chghost(ctx: Context) -> None:
    # CHGHOST <nickname> <user> <host>  (https://ircv3.net/specs/extensions/chghost)
    server = ctx.server
    nick, user, host = ctx.msg.params[0], ctx.msg.params[1], ctx.msg.params[2]
    target = server.find_user(nick)
    if target is None:
        ctx.reply(ERR_NOSUCHNICK, nick, "No such nick/channel")
        return
    if not user or not host or any(ch in user + host for ch in " !@:,*?") or valid_utf8(user + host) != user + host:
        ctx.fail("CHGHOST", "INVALID_PARAMS", description="Invalid user or host")
        return
    change = server.from_user(target, "CHGHOST", [user, host])
    target.user, target.host = user, host
    server.nick_registry.updated(target)
    # Its peers and extended-monitor watchers that asked for chghost, and itself if it did.
    server.backplane.to_peers(target, change, cap="chghost", include_self=True)
    ctx.notice(f"{target.nick} is now {target.prefix}")
