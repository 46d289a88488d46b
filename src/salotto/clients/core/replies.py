"""Numeric replies without a handler of their own, turned into readable lines.

Errors (4xx, 5xx) go to the buffer they name, in red; replies about the connection go to the server
buffer; the rest (WHOIS, LIST, ...) to the buffer the user is looking at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from salotto.clients.core.model import SERVER_KEY
from salotto.clients.core.text import strip_formatting
from salotto.proto import Message
from salotto.proto import numerics as n

if TYPE_CHECKING:
    from salotto.clients.core.session import Session

__all__ = ["on_numeric"]

# Numerics that belong to the connection, not to whatever buffer the user is looking at.
_SERVER_NUMERICS = frozenset(
    {"001", "002", "003", "250", "251", "252", "253", "254", "255", "265", "266", "372",
     "375", "376", "422", "396", n.RPL_LOGGEDIN, n.RPL_LOGGEDOUT}
)
# Numerics not worth a line.
_SILENT_NUMERICS = frozenset(
    {n.RPL_MYINFO, n.RPL_ISUPPORT, n.RPL_TOPICWHOTIME, n.RPL_CREATIONTIME, n.RPL_ENDOFWHO,
     n.RPL_ENDOFWHOIS, n.RPL_LISTSTART, n.RPL_SASLMECHS}
)


_FORMATS: dict[str, Callable[[list[str]], str]] = {
    n.RPL_WHOISUSER: lambda p: f"{p[1]} is {p[2]}@{p[3]} ({p[-1]})",
    n.RPL_WHOISSERVER: lambda p: f"{p[1]} is on {p[2]} ({p[-1]})",
    n.RPL_WHOISCHANNELS: lambda p: f"{p[1]} is in {p[-1]}",
    n.RPL_WHOISIDLE: lambda p: f"{p[1]} has been idle {p[2]} s",
    n.RPL_WHOISACCOUNT: lambda p: f"{p[1]} is logged in as {p[2]}",
    n.RPL_AWAY: lambda p: f"{p[1]} is away: {p[-1]}",
    n.RPL_LIST: lambda p: f"{p[1]}  ({p[2]} users)  {p[-1]}",
    n.RPL_CHANNELMODEIS: lambda p: f"{p[1]} modes: {' '.join(p[2:])}",
    n.RPL_INVITING: lambda p: f"Invited {p[1]} to {p[2]}",
}


def on_numeric(s: Session, msg: Message) -> None:
    # <numeric> <nick> [<params>...] <text>
    if msg.command in _SILENT_NUMERICS:
        return
    params = msg.params[1:] if len(msg.params) > 1 else msg.params
    fmt = _FORMATS.get(msg.command)
    text = ""
    if fmt is not None:
        try:
            text = fmt(msg.params)
        except IndexError:
            text = ""
    if not text and msg.command[0] in "45" and len(params) > 1:
        text = f"{' '.join(params[:-1])}: {params[-1]}"
    elif not text:
        text = " ".join(params)
    text = strip_formatting(text)
    if msg.command in _SERVER_NUMERICS or msg.command == n.ERR_NOMOTD:
        s.info(strip_formatting(msg.params[-1]) if msg.params else "", SERVER_KEY)
    elif msg.command[0] in "45" and msg.command not in (n.RPL_LOGGEDIN, n.RPL_LOGGEDOUT):
        target = msg.params[1] if len(msg.params) > 2 else ""
        where = target if target and s.get_buffer(target) is not None else None
        s.error(text, where)
    else:
        s.info(text)
