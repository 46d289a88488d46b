"""PRIVMSG, NOTICE and TAGMSG to channels and nicks; AWAY and SETNAME.

https://modern.ircdocs.horse/#privmsg-message, https://ircv3.net/specs/extensions/message-tags
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, cast

from salotto.proto.casemap import casefold
from salotto.proto.framing import encode_wire, valid_utf8
from salotto.proto.message import format_tags
from salotto.proto.modes import BOT_MODE
from salotto.proto.names import CHANTYPES
from salotto.proto.numerics import (
    ERR_CANNOTSENDTOCHAN,
    ERR_INPUTTOOLONG,
    ERR_NORECIPIENT,
    ERR_NOSUCHCHANNEL,
    ERR_NOSUCHNICK,
    ERR_NOTEXTTOSEND,
    ERR_TOOMANYTARGETS,
    RPL_AWAY,
    RPL_NOWAWAY,
    RPL_UNAWAY,
)
from salotto.server.accounts import SERVICES_CF
from salotto.server.client import Client
from salotto.server.context import Context
from salotto.server.fanout import Outgoing
from salotto.server.handlers.history import private_parties
from salotto.server.handlers.services import service_message
from salotto.server.multiline import Line, MultilineOutgoing, OpenBatch, stored_form
from salotto.storage.base import NO_TAGS, HistoryMessage, conversation_key

if TYPE_CHECKING:
    from salotto.server.state import Server

# IRCv3 message-tags: a client's tag data may take at most 4094 bytes. The transports refuse a longer tag
# section (max_tags_bytes); this holds the relayed client-only tags to it where an operator raised that.
MAX_CLIENT_TAG_BYTES = 4094

# HistoryMessage(*fields) without the named tuple's Python-level __new__ (a third of its cost), for every
# private message stored: every field must be given, in order.
_new_history = cast(Callable[[tuple[object, ...]], HistoryMessage], partial(tuple.__new__, HistoryMessage))
# Client tags that make a TAGMSG worth relaying but not keeping: a typing notice is stale at once.
_EPHEMERAL_TAGS = frozenset({"+typing", "+draft/typing"})


def handle_privmsg(ctx: Context) -> None:
    # PRIVMSG <target>{,<target>} <text to be sent>
    _message(ctx, "PRIVMSG")


def handle_notice(ctx: Context) -> None:
    # NOTICE <target>{,<target>} <text to be sent>
    _message(ctx, "NOTICE")


def handle_tagmsg(ctx: Context) -> None:
    # TAGMSG <target>{,<target>}  (only client tags, for clients with message-tags)
    _message(ctx, "TAGMSG")


def send_multiline(ctx: Context, batch: OpenBatch) -> None:
    """Deliver a closed draft/multiline batch as one message, with the checks and the history of a PRIVMSG
    or NOTICE to its target (salotto.server.handlers.multiline collected it)."""
    _message(ctx, batch.command or "PRIVMSG", batch)


def _message(ctx: Context, command: str, batch: OpenBatch | None = None) -> None:
    """The command's text to each of its targets (or, for a multiline ``batch``, the message of its lines
    to its target), as far as the sender may: relayed, echoed, recorded in history."""
    client = ctx.client
    server = ctx.server
    # No error replies to a NOTICE ever (RFC 2812 3.3.2): loops between bots stay impossible.
    quiet = command == "NOTICE"
    is_tagmsg = command == "TAGMSG"
    source = client.prefix  # built once: the relayed line and the stored message both name it
    lines: list[Line] | None = None
    if batch is None:
        params = ctx.msg.params
        if not params or not params[0]:
            if not quiet:
                ctx.reply(ERR_NORECIPIENT, f"No recipient given ({command})")
            return
        if not is_tagmsg and (len(params) < 2 or not params[1]):
            if not quiet:
                ctx.reply(ERR_NOTEXTTOSEND, "No text to send")
            return
        config = server.config
        target_param = params[0]
        if "," in target_param:
            targets = target_param.split(",")
            if len(targets) > config.max_targets:
                if not quiet:
                    ctx.reply(ERR_TOOMANYTARGETS, target_param, "Too many targets")
                return
        else:
            targets = [target_param]  # (max_targets is at least 1)
        tags = ctx.msg.tags
        if tags:
            client_tags = {k: v for k, v in tags.items() if k[:1] == "+"}
            if client_tags and len(format_tags(client_tags)) > MAX_CLIENT_TAG_BYTES:
                ctx.reply(ERR_INPUTTOOLONG, "Input line was too long (client tags)")
                return
        else:
            client_tags = None
        if is_tagmsg:
            if not client_tags:
                return
            text = ""
        else:
            text = params[1]
            # _fit's common case inlined: an ASCII line that fits (characters are bytes) is relayed as it came.
            if not (len(source) + len(command) + len(target_param) + len(text) + 7 <= config.max_line_bytes
                    and text.isascii() and source.isascii() and target_param.isascii()):
                text = _fit(text, source, command, target_param, config.max_line_bytes)
    else:
        targets = [batch.target]
        client_tags = batch.tags
        text = ""
        lines = batch.lines
    session = ctx.session  # the connection that sent it: echo-message is its, and it is not sent the message
    echo = "echo-message" in session.caps
    stats = server.stats
    stats.messages_in += 1
    client.idle_since = session.last_seen  # the clock as the line came in (Server.handle_line read it)
    # Milliseconds, as server-time shows them and history stores them: the two must agree. (The floor of a
    # positive float, as int() takes it, without the call.)
    wall = server.wallclock() * 1000 // 1 / 1000
    history = server.history
    if is_tagmsg:
        if history is not None and all(key in _EPHEMERAL_TAGS for key in client_tags or ()):
            history = None
        if client_tags and "+draft/react" in client_tags:
            stats.reactions += 1
    bot = BOT_MODE in client.modes
    # Relayed as sent; stored as text (the database takes UTF-8 only): what was not UTF-8 becomes U+FFFD.
    if history is not None:
        if lines is None:
            stored_text = valid_utf8(text)
            stored_tags: Mapping[str, str] = _valid_tags(client_tags) if client_tags else NO_TAGS
        else:
            stored_text, stored_tags = stored_form(lines, client_tags)
    relayed_text = None if is_tagmsg else text
    for target in targets:
        if not target:
            continue
        if target[0] in CHANTYPES:
            channel = server.find_channel(target)
            if channel is None:
                if not quiet:
                    ctx.reply(ERR_NOSUCHCHANNEL, target, "No such channel")
                continue
            if not channel.can_speak(client):
                if not quiet:
                    ctx.reply(ERR_CANNOTSENDTOCHAN, channel.name, "Cannot send to channel")
                continue
            msgid = server.new_msgid()
            if lines is None:
                out = Outgoing.text(source, command, channel.name, relayed_text, wall, msgid, client.account,
                                    client_tags, bot)
            else:
                out = _multiline(server, source, command, channel.name, lines, wall, msgid, client, client_tags, bot)
            if is_tagmsg:
                stats.deliveries_out += server.backplane.to_members(channel, out, exclude=session, cap="message-tags")
            else:
                stats.deliveries_out += server.backplane.to_channel(channel, out, session)
            if history is not None:
                history.record(_new_history((msgid, channel.name_cf, wall, source, client.account, command,
                                             stored_text, stored_tags, None)))
        else:
            target_cf = casefold(target)  # once: the services' names and the nick registry both take it
            if target_cf in SERVICES_CF:
                if lines is not None:
                    ctx.fail("BATCH", "MULTILINE_INVALID", description="Services take one line at a time")
                elif command == "PRIVMSG":
                    service_message(ctx, target, text)
                continue
            recipient = server.nick_registry.holder(target_cf)  # server.find_user, without a second casefold
            if recipient is None or not recipient.registered:
                if not quiet:
                    ctx.reply(ERR_NOSUCHNICK, target, "No such nick/channel")
                continue
            msgid = server.new_msgid()
            if lines is None:
                out = Outgoing.text(source, command, recipient.nick, relayed_text, wall, msgid, client.account,
                                    client_tags, bot)
            else:
                out = _multiline(server, source, command, recipient.nick, lines, wall, msgid, client, client_tags, bot)
            # A message to oneself arrives once: as the echo when echo-message is on.
            cap = "message-tags" if is_tagmsg else None
            if recipient is client:
                if not echo or client.devices:  # to oneself: once on each connection (the echo on this one)
                    stats.deliveries_out += server.backplane.to_sessions(
                        client, out, exclude=session if echo else None, cap=cap)
            else:
                stats.deliveries_out += server.backplane.to_nick(recipient, out, cap=cap)
                if client.devices:  # the sender's other connections see it as this one's echo would show it
                    stats.deliveries_out += server.backplane.to_sessions(client, out, exclude=session, cap=cap)
            if recipient.away is not None and command == "PRIVMSG":
                ctx.reply(RPL_AWAY, recipient.nick, recipient.away)
            if history is not None and server.config.history_private:
                pair = private_parties(server, client, recipient)
                if pair is not None:
                    # HistoryMessage(...) without its Python-level __new__: every field is given, in order.
                    history.record(_new_history((
                        msgid, conversation_key(*pair), wall, source, client.account, command, stored_text,
                        stored_tags, pair,
                    )))
        if echo:
            ctx.send(out.variant(session.tag_flags))
            stats.deliveries_out += 1


def _multiline(server: Server, source: str, command: str, target: str, lines: list[Line], wall: float,
               msgid: str, client: Client, client_tags: dict[str, str] | None, bot: bool) -> MultilineOutgoing:
    server.stats.multiline_batches += 1
    return MultilineOutgoing(source, command, target, lines, wall=wall, batch_id=server.new_batch_id(),
                             max_line_bytes=server.config.max_line_bytes, msgid=msgid, account=client.account,
                             client_tags=client_tags, bot=bot)


def _valid_tags(tags: dict[str, str]) -> dict[str, str]:
    """Client tags as text (see valid_utf8), the same dict when they already are."""
    if all(valid_utf8(k) is k and valid_utf8(v) is v for k, v in tags.items()):
        return tags
    return {valid_utf8(k): valid_utf8(v) for k, v in tags.items()}


def _fit(text: str, source: str, command: str, target: str, max_line_bytes: int) -> str:
    """``text`` cut so that the relayed line, with the sender's prefix added, still fits the line limit
    (clients drop longer lines); cut on a character boundary."""
    room = max_line_bytes - len(encode_wire(f":{source} {command} {target} :\r\n"))
    data = encode_wire(text)
    if len(data) <= room:
        return text
    # A character cut in two is left out; bytes that were not UTF-8 to begin with stay as they came.
    return data[: max(room, 0)].decode("utf-8", "ignore" if text is valid_utf8(text) else "surrogateescape")


def handle_away(ctx: Context) -> None:
    # AWAY [<text>]
    client = ctx.client
    server = ctx.server
    params = ctx.msg.params
    text = params[0][: server.config.away_max_len] if params and params[0] else None
    client.away = text
    server.nick_registry.updated(client)
    if text is None:
        ctx.reply(RPL_UNAWAY, "You are no longer marked as being away")
    else:
        ctx.reply(RPL_NOWAWAY, "You have been marked as being away")
    notice = server.from_user(client, "AWAY", [text] if text else [])
    server.backplane.to_peers(client, notice, cap="away-notify", exclude=ctx.session)


def handle_setname(ctx: Context) -> None:
    # SETNAME :<realname>   (https://ircv3.net/specs/extensions/setname)
    client = ctx.client
    server = ctx.server
    realname = ctx.msg.params[0]
    if not realname or len(realname) > server.config.realname_max_len:
        ctx.fail("SETNAME", "INVALID_REALNAME", description="Realname is not valid")
        return
    client.realname = realname
    server.nick_registry.updated(client)
    change = server.from_user(client, "SETNAME", [realname])
    server.backplane.to_peers(client, change, cap="setname", exclude=ctx.session)
    ctx.send(change.variant(ctx.session.tag_flags))

