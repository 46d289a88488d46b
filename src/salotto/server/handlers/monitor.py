"""MONITOR: a list of nicks a client is told about when they come online or go offline
(https://ircv3.net/specs/extensions/monitor). The index and the notifications are in
:mod:`salotto.server.monitor`."""

from __future__ import annotations

from collections.abc import Iterable

from salotto.proto.casemap import casefold
from salotto.proto.names import is_valid_nick
from salotto.proto.numerics import (
    ERR_MONLISTFULL,
    ERR_NEEDMOREPARAMS,
    RPL_ENDOFMONLIST,
    RPL_MONLIST,
    RPL_MONOFFLINE,
    RPL_MONONLINE,
)
from salotto.server import monitor
from salotto.server.context import WORDS_BUDGET, Context, chunk_words


def handle_monitor(ctx: Context) -> None:
    # MONITOR + <target>{,<target>} | MONITOR - <target>{,<target>} | MONITOR C | MONITOR L | MONITOR S
    server = ctx.server
    client = ctx.client
    params = ctx.msg.params
    modifier = params[0].upper()
    if modifier in ("+", "-"):
        targets = [target for target in params[1].split(",") if target] if len(params) > 1 else []
        if not targets:
            ctx.reply(ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
            return
        if modifier == "-":
            monitor.remove(server, client, targets)
            return
        # The spec wants valid nicks; anything else could never come online, and is dropped.
        nick_max_len = server.config.nick_max_len
        valid = [target for target in targets if is_valid_nick(target, nick_max_len)]
        refused = monitor.add(server, client, valid)
        refused_cf = {casefold(target) for target in refused}
        _send_status(ctx, (target for target in valid if casefold(target) not in refused_cf))
        limit = str(server.config.monitor_max_targets)
        for line in _comma_lines(refused):
            ctx.reply(ERR_MONLISTFULL, limit, line, "Monitor list is full.")
    elif modifier == "C":
        monitor.clear(server, client)
    elif modifier == "L":
        for line in _comma_lines(list((client.monitoring or {}).values())):
            ctx.reply(RPL_MONLIST, line)
        ctx.reply(RPL_ENDOFMONLIST, "End of MONITOR list")
    elif modifier == "S":
        _send_status(ctx, (client.monitoring or {}).values())
    else:
        ctx.fail("MONITOR", "INVALID_PARAMS", params[0], description="Unknown MONITOR modifier (+, -, C, L or S)")


def _send_status(ctx: Context, targets: Iterable[str]) -> None:
    """730 for the targets online (``nick!user@host``), 731 for the others (as given), each nick once."""
    server = ctx.server
    online: list[str] = []
    offline: list[str] = []
    seen: set[str] = set()
    for target in targets:
        target_cf = casefold(target)
        if target_cf in seen:
            continue
        seen.add(target_cf)
        user = server.find_user(target)
        if user is not None:
            online.append(user.prefix)
        else:
            offline.append(target)
    for line in _comma_lines(online):
        ctx.reply(RPL_MONONLINE, line)
    for line in _comma_lines(offline):
        ctx.reply(RPL_MONOFFLINE, line)


def _comma_lines(words: list[str]) -> list[str]:
    """``words`` joined with commas into lines that fit 512 bytes. Nicks and ``nick!user@host`` have
    no spaces, so the space-joined chunks turn into comma-joined ones."""
    return [line.replace(" ", ",") for line in chunk_words(words, WORDS_BUDGET)]
