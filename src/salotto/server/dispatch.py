"""The command table's rules, checked once for every command before its handler runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from salotto.proto.numerics import (
    ERR_NEEDMOREPARAMS,
    ERR_NOPRIVILEGES,
    ERR_NOTREGISTERED,
    ERR_UNKNOWNCOMMAND,
)
from salotto.server.context import Context

__all__ = ["Command", "dispatch"]


@dataclass(frozen=True, slots=True)
class Command:
    """A command's handler and the rules the dispatcher enforces for it."""

    handler: Callable[[Context], None]
    min_params: int = 0
    before_registration: bool = False
    oper_only: bool = False
    capability: str | None = None


def dispatch(ctx: Context, table: dict[str, Command]) -> None:
    """Run the handler of ``ctx.msg`` if the sender may use it; answer with the numeric if not."""
    msg = ctx.msg
    command = table.get(msg.command)
    client = ctx.client
    if command is None or (command.capability is not None and command.capability not in client.caps):
        if client.registered:
            ctx.reply(ERR_UNKNOWNCOMMAND, msg.command, "Unknown command")
        else:
            ctx.reply(ERR_NOTREGISTERED, "You have not registered")
        return
    if not client.registered and not command.before_registration:
        ctx.reply(ERR_NOTREGISTERED, "You have not registered")
        return
    if len(msg.params) < command.min_params:
        ctx.reply(ERR_NEEDMOREPARAMS, msg.command, "Not enough parameters")
        return
    if command.oper_only and not client.is_oper:
        ctx.reply(ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator")
        return
    command.handler(ctx)
