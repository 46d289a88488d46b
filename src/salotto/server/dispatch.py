"""The command table's rules, checked once for every command before its handler runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from salotto.proto.numerics import (
    ERR_NEEDMOREPARAMS,
    ERR_NOPRIVILEGES,
    ERR_NOTREGISTERED,
    ERR_PASSWDMISMATCH,
    ERR_UNKNOWNCOMMAND,
)
from salotto.server.context import Context

__all__ = ["Command", "dispatch", "refuse_password"]


@dataclass(frozen=True, slots=True)
class Command:
    """A command's handler and the rules the dispatcher enforces for it."""

    handler: Callable[[Context], None]
    min_params: int = 0
    before_registration: bool = False
    # Usable before the server password (server_password_hash) was given: registration itself.
    before_password: bool = False
    oper_only: bool = False
    capability: str | None = None


def dispatch(ctx: Context, table: dict[str, Command]) -> None:
    """Run the handler of ``ctx.msg`` if the sender may use it; answer with the numeric if not."""
    msg = ctx.msg
    command = table.get(msg.command)
    client = ctx.client
    if command is None or (command.capability is not None and command.capability not in ctx.session.caps):
        if client.registered:
            ctx.reply(ERR_UNKNOWNCOMMAND, msg.command, "Unknown command")
        else:
            ctx.reply(ERR_NOTREGISTERED, "You have not registered")
        return
    if not client.registered and not command.before_registration:
        ctx.reply(ERR_NOTREGISTERED, "You have not registered")
        return
    if (not client.registered and not command.before_password and ctx.server.config.server_password_hash
            and not client.password_given):  # password_missing(ctx), inlined: registration runs it thrice
        # A private server lends nothing (account registration, SASL guesses) to who lacks its password.
        refuse_password(ctx, "Password required: send PASS first")
        return
    if len(msg.params) < command.min_params:
        ctx.reply(ERR_NEEDMOREPARAMS, msg.command, "Not enough parameters")
        return
    if command.oper_only and not client.is_oper:
        ctx.reply(ERR_NOPRIVILEGES, "Permission Denied- You're not an IRC operator")
        return
    command.handler(ctx)


def password_missing(ctx: Context) -> bool:
    """The server has a password (server_password_hash) and the client has not given it."""
    return bool(ctx.server.config.server_password_hash) and not ctx.client.password_given


def refuse_password(ctx: Context, text: str) -> None:
    """464 with ``text``, then ERROR, and the connection closes (as common servers answer a bad PASS).

    The 464 is written at once, unlabelled, even while the command waits: after the ERROR the connection
    takes nothing more."""
    ctx.reply(ERR_PASSWDMISMATCH, text)
    ctx.disconnect_after("Bad server password")
