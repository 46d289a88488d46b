"""What the client does with each message from the server: one handler per command, in one table.

Every handler has the signature ``(session, msg) -> None`` and starts with the message's syntax.
Numerics without a handler of their own become readable lines (errors in red, the rest as info).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from salotto.clients.core import search
from salotto.clients.core.model import SERVER_KEY, BufferKind, ChangeKind, LineKind, Member
from salotto.clients.core.protocol import (
    CONCAT_TAG,
    MULTILINE_BATCH,
    REACT_TAG,
    REPLY_TAG,
    UNREACT_TAG,
)
from salotto.clients.core.replies import on_numeric
from salotto.clients.core.text import casefold_for, mentions, source_nick, strip_formatting
from salotto.proto import Message
from salotto.proto import numerics as n
from salotto.proto.numerics import (
    ERR_NICKLOCKED,
    ERR_SASLABORTED,
    ERR_SASLALREADY,
    ERR_SASLFAIL,
    ERR_SASLTOOLONG,
    RPL_SASLSUCCESS,
)

if TYPE_CHECKING:
    from salotto.clients.core.session import Session

__all__ = ["HANDLERS", "dispatch"]

Handler = Callable[["Session", Message], None]

def dispatch(s: Session, msg: Message) -> None:
    handler = HANDLERS.get(msg.command)
    if handler is not None:
        handler(s, msg)
    elif msg.command.isdigit():
        on_numeric(s, msg)
    else:
        s.info(strip_formatting(msg.to_line()), SERVER_KEY)


def on_ping(s: Session, msg: Message) -> None:
    # PING <token>
    s.send("PONG", *(msg.params[-1:] or [""]))


def on_pong(s: Session, msg: Message) -> None:
    # PONG <server> <token>
    return


def on_error(s: Session, msg: Message) -> None:
    # ERROR <reason>
    s.error("Server closed the connection: " + (msg.params[-1] if msg.params else ""), SERVER_KEY)


def on_cap(s: Session, msg: Message) -> None:
    # CAP <nick> <subcommand> [*] <caps>
    if len(msg.params) < 3:
        return
    sub = msg.params[1].upper()
    more = len(msg.params) > 3 and msg.params[2] == "*"
    caps_text = msg.params[-1]
    caps: dict[str, str] = {}
    for item in caps_text.split():
        name, _, value = item.partition("=")
        caps[name] = value
    if sub == "LS":
        s.caps_offered.update(caps)
        if not more and not s.cap_ls_done:
            s.cap_ls_finished()
    elif sub == "ACK":
        s.caps_acked(list(caps))
    elif sub == "NAK":
        if not s.registered:
            s.end_cap()
    elif sub == "NEW":
        s.caps_offered.update(caps)
        wanted = [c for c in s.caps_to_request(caps) if c != "sasl"]
        if wanted:
            s.send("CAP", "REQ", " ".join(wanted))
    elif sub == "DEL":
        for name in caps:
            s.caps_offered.pop(name, None)
            s.caps_enabled.discard(name)


def on_authenticate(s: Session, msg: Message) -> None:
    # AUTHENTICATE <data>
    s.sasl_continue(msg.params[0] if msg.params else "")


def on_sasl_ok(s: Session, msg: Message) -> None:
    s.sasl_finished(True, msg.params[-1] if msg.params else "")


def on_sasl_fail(s: Session, msg: Message) -> None:
    s.sasl_finished(False, msg.params[-1] if msg.params else "")


def on_password_mismatch(s: Session, msg: Message) -> None:
    # 464 [<nick>] :<text>: before registration, the server password; after, OPER's.
    if s.registered:
        on_numeric(s, msg)
    else:
        s.password_refused(msg.params[-1] if msg.params else "")


def on_logged_in(s: Session, msg: Message) -> None:
    # 900 <nick> <nick!user@host> <account> :You are now logged in as <account>  /  901 <nick> <mask> :...
    s.account = msg.params[2] if msg.command == n.RPL_LOGGEDIN and len(msg.params) > 3 else ""
    s.emit(ChangeKind.STATUS)
    on_numeric(s, msg)


def on_welcome(s: Session, msg: Message) -> None:
    # 001 <nick> :Welcome ...
    s.welcome(msg.params[0] if msg.params else s.nick, msg.source or "")
    s.end_cap()
    on_numeric(s, msg)


def on_isupport(s: Session, msg: Message) -> None:
    # 005 <nick> <token>... :are supported by this server
    for token in msg.params[1:-1]:
        name, _, value = token.partition("=")
        if name.startswith("-"):
            s.isupport.pop(name[1:], None)
            continue
        s.isupport[name] = value
        if name == "PREFIX" and value.startswith("(") and ")" in value:
            modes, symbols = value[1:].split(")", 1)
            if len(modes) == len(symbols):
                s.prefix_modes, s.prefix_symbols = modes, symbols
        elif name == "CHANTYPES" and value:
            s.chantypes = value
        elif name == "STATUSMSG":
            s.statusmsg = value
        elif name == "CASEMAPPING":
            s.fold = casefold_for(value)
        elif name == "CHANMODES":
            parts = value.split(",")
            if len(parts) >= 4:
                s.chanmodes = (parts[0], parts[1], parts[2], parts[3])


def on_motd_end(s: Session, msg: Message) -> None:
    # 376 <nick> :End of MOTD  /  422 <nick> :MOTD File is missing
    on_numeric(s, msg)
    s.motd_done()


def on_nick_in_use(s: Session, msg: Message) -> None:
    # 433 <nick> <wanted> :Nickname is already in use  (432 alike)
    if not s.registered:
        s.nick_rejected()
    else:
        on_numeric(s, msg)


def on_privmsg(s: Session, msg: Message) -> None:
    # PRIVMSG <target> <text>  /  NOTICE <target> <text>
    if len(msg.params) < 2:
        return
    if msg.tags.get("batch", "") in s.multiline:
        s.multiline[msg.tags["batch"]][3].append(msg)
        return
    if search.is_search_batch(s, msg):
        search.add_result(s, msg)
        return
    target, text = msg.params[0], msg.params[1]
    nick = source_nick(msg.source)
    own = s.is_me(nick)
    kind = LineKind.NOTICE if msg.command == "NOTICE" else LineKind.MESSAGE
    if text.startswith("\x01"):
        ctcp, _, arg = text.strip("\x01").partition(" ")
        if ctcp.upper() == "ACTION" and kind is LineKind.MESSAGE:
            kind, text = LineKind.ACTION, arg
        else:
            _on_ctcp(s, msg, nick, own, ctcp.upper(), arg)
            return
    bare = target.lstrip(s.statusmsg) if s.statusmsg else target
    batch = s.batch_of(msg)
    if s.is_channel(bare):
        name = bare
    elif own:
        name = target
    elif kind is LineKind.NOTICE and (msg.source is None or "!" not in msg.source or not s.registered):
        name = SERVER_KEY
    elif kind is LineKind.NOTICE and s.get_buffer(nick) is None:
        name = s.active_name()
    else:
        name = nick
    if kind is LineKind.NOTICE and nick.lower() == "nickserv":
        s.service_notice(text)
    line = s.line(kind, strip_formatting(text), nick, msg)
    line.own = own
    if not own and not batch:
        private = not s.is_channel(bare) and name != SERVER_KEY
        line.highlight = mentions(text, s.nick) or (private and kind is not LineKind.NOTICE)
    s.add_line(name, line, batch=batch, kind=BufferKind.QUERY if not s.is_channel(name) else None)


def _on_ctcp(s: Session, msg: Message, nick: str, own: bool, ctcp: str, arg: str) -> None:
    if own:
        return
    if msg.command == "NOTICE":
        s.info(f"CTCP {ctcp} reply from {nick}: {arg}")
        return
    replies = {"VERSION": "salotto desktop client", "PING": arg, "TIME": s.now().isoformat()}
    if ctcp in replies:
        s.send("NOTICE", nick, f"\x01{ctcp} {replies[ctcp]}\x01")
    s.info(f"{nick} sent a CTCP {ctcp}", SERVER_KEY)


def on_join(s: Session, msg: Message) -> None:
    # JOIN <channel> [<account> <realname>]  (extended-join adds the last two)
    if not msg.params or s.batch_of(msg):
        return
    channel = msg.params[0]
    nick = source_nick(msg.source)
    buf = s.open_buffer(channel, BufferKind.CHANNEL)
    key = s.key(channel)
    if s.is_me(nick):
        if buf.joined:
            return
        buf.joined = True
        buf.members.clear()
        s.add_line(channel, s.line(LineKind.JOIN, f"You joined {channel}", nick, msg), count=False)
        if s.active == SERVER_KEY or key in s.activate_on_join:
            s.activate_on_join.discard(key)
            s.activate(key)
        s.request_history(channel)
    else:
        buf.members[s.fold(nick)] = Member(nick)
        s.add_line(channel, s.line(LineKind.JOIN, f"{nick} joined", nick, msg), count=False)
    s.emit(ChangeKind.MEMBERS, key)


def on_part(s: Session, msg: Message) -> None:
    # PART <channel> [<reason>]
    if not msg.params or s.batch_of(msg):
        return
    channel = msg.params[0]
    reason = f" ({msg.params[1]})" if len(msg.params) > 1 and msg.params[1] else ""
    nick = source_nick(msg.source)
    buf = s.get_buffer(channel)
    if buf is None:
        return
    key = s.key(channel)
    if s.is_me(nick):
        buf.joined = False
        buf.members.clear()
        if key in s.closing:
            s.closing.discard(key)
            s.close_buffer(key)
            return
        s.add_line(channel, s.line(LineKind.PART, f"You left {channel}{reason}", nick, msg), count=False)
    else:
        buf.members.pop(s.fold(nick), None)
        s.add_line(channel, s.line(LineKind.PART, f"{nick} left{reason}", nick, msg), count=False)
    s.emit(ChangeKind.MEMBERS, key)


def on_quit(s: Session, msg: Message) -> None:
    # QUIT [<reason>]
    if s.batch_of(msg):
        return
    nick = source_nick(msg.source)
    reason = f" ({msg.params[0]})" if msg.params and msg.params[0] else ""
    folded = s.fold(nick)
    for key, buf in list(s.buffers.items()):
        if buf.members.pop(folded, None) is not None or (buf.kind is BufferKind.QUERY and key == folded):
            s.add_line(buf.name, s.line(LineKind.QUIT, f"{nick} quit{reason}", nick, msg), count=False)
            s.emit(ChangeKind.MEMBERS, key)
    s.nick_freed(nick)


def on_kick(s: Session, msg: Message) -> None:
    # KICK <channel> <nick> [<reason>]
    if len(msg.params) < 2:
        return
    channel, victim = msg.params[0], msg.params[1]
    reason = f" ({msg.params[2]})" if len(msg.params) > 2 and msg.params[2] else ""
    by = source_nick(msg.source)
    buf = s.get_buffer(channel)
    if buf is None:
        return
    if s.is_me(victim):
        buf.joined = False
        buf.members.clear()
        line = s.line(LineKind.KICK, f"You were kicked from {channel} by {by}{reason}", by, msg)
        line.highlight = True
        s.add_line(channel, line)
    else:
        buf.members.pop(s.fold(victim), None)
        s.add_line(channel, s.line(LineKind.KICK, f"{by} kicked {victim}{reason}", by, msg), count=False)
    s.emit(ChangeKind.MEMBERS, s.key(channel))


def on_nick(s: Session, msg: Message) -> None:
    # NICK <newnick>
    if not msg.params:
        return
    old, new = source_nick(msg.source), msg.params[0]
    if s.is_me(old):
        s.nick = new
        if s.registered:
            s.wanted_nick = new  # kept across reconnections
        s.emit(ChangeKind.STATUS)
        s.info(f"You are now known as {new}", SERVER_KEY, LineKind.NICK)
    old_key, new_key = s.fold(old), s.fold(new)
    for key, buf in list(s.buffers.items()):
        member = buf.members.pop(old_key, None)
        if member is not None:
            buf.members[new_key] = Member(new, member.prefixes)
            s.add_line(buf.name, s.line(LineKind.NICK, f"{old} is now known as {new}", new, msg), count=False)
            s.emit(ChangeKind.MEMBERS, key)
    if not s.is_me(new):
        s.nick_freed(old)
    query = s.buffers.get(old_key)
    if query is not None and query.kind is BufferKind.QUERY and new_key not in s.buffers:
        del s.buffers[old_key]
        query.name = new
        s.buffers[new_key] = query
        s.add_line(new, s.line(LineKind.NICK, f"{old} is now known as {new}", new, msg), count=False)
        if s.active == old_key:
            s.active = new_key
            s.emit(ChangeKind.ACTIVATE, new_key)
        s.emit(ChangeKind.BUFFERS)


def on_topic(s: Session, msg: Message) -> None:
    # TOPIC <channel> <topic>
    if len(msg.params) < 2 or s.batch_of(msg):
        return
    channel, topic = msg.params[0], msg.params[1]
    buf = s.open_buffer(channel, BufferKind.CHANNEL)
    buf.topic = strip_formatting(topic)
    nick = source_nick(msg.source)
    text = f"{nick} changed the topic to: {buf.topic}" if topic else f"{nick} cleared the topic"
    s.add_line(channel, s.line(LineKind.TOPIC, text, nick, msg), count=False)
    s.emit(ChangeKind.TOPIC, s.key(channel))


def on_rpl_topic(s: Session, msg: Message) -> None:
    # 332 <nick> <channel> <topic>  /  331 <nick> <channel> :No topic is set
    if len(msg.params) < 3:
        return
    buf = s.open_buffer(msg.params[1], BufferKind.CHANNEL)
    buf.topic = strip_formatting(msg.params[2]) if msg.command == n.RPL_TOPIC else ""
    if buf.topic:
        s.add_line(buf.name, s.line(LineKind.TOPIC, f"Topic: {buf.topic}"), count=False)
    s.emit(ChangeKind.TOPIC, s.key(buf.name))


def on_mode(s: Session, msg: Message) -> None:
    # MODE <target> <modestring> [<args>...]
    if len(msg.params) < 2:
        return
    target, modestring, args = msg.params[0], msg.params[1], msg.params[2:]
    by = source_nick(msg.source)
    text = " ".join(msg.params[1:])
    if not s.is_channel(target):
        who = "Your" if s.is_me(target) else f"{target}'s"
        s.info(f"{who} modes: {text}", SERVER_KEY, LineKind.MODE)
        return
    buf = s.get_buffer(target)
    if buf is None:
        return
    list_modes, always, when_set, _flags = s.chanmodes
    adding = True
    arg_iter = iter(args)
    for ch in modestring:
        if ch in "+-":
            adding = ch == "+"
        elif ch in s.prefix_modes:
            who = next(arg_iter, "")
            member = buf.members.get(s.fold(who))
            if member is not None:
                _set_prefix(s, member, s.prefix_symbols[s.prefix_modes.index(ch)], adding)
        elif ch in list_modes or ch in always or (ch in when_set and adding):
            next(arg_iter, None)
    s.add_line(target, s.line(LineKind.MODE, f"{by} sets mode {text}", by, msg), count=False)
    s.emit(ChangeKind.MEMBERS, s.key(target))


def _set_prefix(s: Session, member: Member, symbol: str, adding: bool) -> None:
    held = set(member.prefixes)
    if adding:
        held.add(symbol)
    else:
        held.discard(symbol)
    member.prefixes = "".join(sym for sym in s.prefix_symbols if sym in held)


def on_names(s: Session, msg: Message) -> None:
    # 353 <nick> <symbol> <channel> :[prefix]<nick>{ [prefix]<nick>}
    if len(msg.params) < 4:
        return
    channel = msg.params[2]
    buf = s.get_buffer(channel)
    if buf is None or not buf.joined:
        on_numeric(s, msg)
        return
    pending = s.names_pending.setdefault(s.key(channel), {})
    for item in msg.params[3].split():
        i = 0
        while i < len(item) and item[i] in s.prefix_symbols:
            i += 1
        nick = item[i:].split("!", 1)[0]
        if nick:
            pending[nick] = item[:i]


def on_end_of_names(s: Session, msg: Message) -> None:
    # 366 <nick> <channel> :End of /NAMES list
    if len(msg.params) < 2:
        return
    key = s.key(msg.params[1])
    pending = s.names_pending.pop(key, None)
    buf = s.buffers.get(key)
    if pending is None or buf is None:
        return
    buf.members = {s.fold(nick): Member(nick, "".join(p for p in s.prefix_symbols if p in prefixes))
                   for nick, prefixes in pending.items()}
    s.emit(ChangeKind.MEMBERS, key)


def on_batch(s: Session, msg: Message) -> None:
    # BATCH +<ref> <type> [<params>...]  /  BATCH -<ref>
    if not msg.params:
        return
    ref = msg.params[0]
    if ref.startswith("+") and len(msg.params) >= 3 and msg.params[1] == MULTILINE_BATCH:
        s.multiline[ref[1:]] = (msg.params[2], msg.source, msg, [])
    elif ref.startswith("+") and len(msg.params) >= 2 and msg.params[1] in search.SEARCH_BATCH_TYPES:
        search.start_batch(s, ref[1:])
    elif ref.startswith("+") and len(msg.params) >= 2:
        s.start_batch(ref[1:], msg.params[1], msg.params[2] if len(msg.params) > 2 else "")
    elif ref.startswith("-") and ref[1:] in s.multiline:
        _end_multiline(s, ref[1:])
    elif ref.startswith("-") and not search.end_batch(s, ref[1:]):
        s.end_batch(ref[1:])


def _end_multiline(s: Session, ref: str) -> None:
    """A draft/multiline batch is complete: its lines are one message (concat lines join the one before)."""
    target, source, opening, lines = s.multiline.pop(ref)
    if not lines:
        return
    text = ""
    for i, line in enumerate(lines):
        piece = line.params[1] if len(line.params) > 1 else ""
        text += piece if i == 0 or CONCAT_TAG in line.tags else "\n" + piece
    # The message's tags are the batch's (msgid, time, reply); each line's own are a fallback.
    tags = {**lines[0].tags, **opening.tags}
    tags.pop("batch", None)
    if "batch" in opening.tags:  # the batch sits inside another one (a history replay)
        tags["batch"] = opening.tags["batch"]
    on_privmsg(s, Message(lines[0].command, [target, text], source or lines[0].source, tags))


def on_tagmsg(s: Session, msg: Message) -> None:
    # TAGMSG <target>, with +draft/react=<emoji> and +draft/reply=<msgid> for a reaction
    emoji, msgid = msg.tags.get(REACT_TAG, ""), msg.tags.get(REPLY_TAG, "")
    unreact = msg.tags.get(UNREACT_TAG, "")
    if not msg.params or not msgid or not (emoji or unreact):
        return  # typing notices and other client tags: nothing to show
    target, nick = msg.params[0], source_nick(msg.source)
    bare = target.lstrip(s.statusmsg) if s.statusmsg else target
    name = bare if s.is_channel(bare) or s.is_me(nick) else nick
    batch = s.batch_of(msg)
    if batch:  # in a history replay: applied after the batch's lines are in
        s.history.batches[batch].reactions.append((name, msgid, emoji or unreact, nick, msg.tags.get("msgid", ""),
                                                   bool(unreact and not emoji)))
        return
    s.reaction(name, msgid, emoji or unreact, nick, msg.tags.get("msgid", ""), remove=bool(unreact and not emoji))


def on_redact(s: Session, msg: Message) -> None:
    # REDACT <target> <msgid> [<reason>]
    if len(msg.params) < 2:
        return
    s.redacted(msg.params[0], msg.params[1], source_nick(msg.source), msg.params[2] if len(msg.params) > 2 else "")


def on_markread(s: Session, msg: Message) -> None:
    # MARKREAD <target> [timestamp=<time>|*]
    if len(msg.params) >= 2:
        s.read_marker(msg.params[0], msg.params[1])


def on_invite(s: Session, msg: Message) -> None:
    # INVITE <nick> <channel>
    if len(msg.params) >= 2:
        line = s.line(LineKind.INFO, f"{source_nick(msg.source)} invites you to {msg.params[1]} "
                      f"(type /join {msg.params[1]})")
        line.highlight = True
        s.add_line(s.active_name(), line)


def on_away_state(s: Session, msg: Message) -> None:
    # 305 <nick> :You are no longer marked as being away  /  306 ... marked as away
    s.away = msg.command == n.RPL_NOWAWAY
    s.emit(ChangeKind.STATUS)
    on_numeric(s, msg)


def on_standard_reply(s: Session, msg: Message) -> None:
    # FAIL/WARN/NOTE <command> <code> [<context>...] <description>
    text = msg.params[-1] if msg.params else ""
    where = f"{msg.params[0]}: " if msg.params else ""
    if msg.command == "FAIL" and msg.params and msg.params[0].upper() == "CHATHISTORY":
        s.history_failed(msg.params[2:-1])
    if msg.command == "FAIL" and msg.params and msg.params[0].upper() == "SEARCH":
        search.search_failed(s, text)
    if msg.command == "FAIL":
        s.error(where + text)
    else:
        s.info(where + text)


HANDLERS: dict[str, Handler] = {
    "PING": on_ping,
    "PONG": on_pong,
    "ERROR": on_error,
    "CAP": on_cap,
    "AUTHENTICATE": on_authenticate,
    "PRIVMSG": on_privmsg,
    "NOTICE": on_privmsg,
    "JOIN": on_join,
    "PART": on_part,
    "QUIT": on_quit,
    "KICK": on_kick,
    "NICK": on_nick,
    "TOPIC": on_topic,
    "MODE": on_mode,
    "BATCH": on_batch,
    "TAGMSG": on_tagmsg,
    "REDACT": on_redact,
    "MARKREAD": on_markread,
    "INVITE": on_invite,
    "FAIL": on_standard_reply,
    "WARN": on_standard_reply,
    "NOTE": on_standard_reply,
    n.RPL_WELCOME: on_welcome,
    n.RPL_LOGGEDIN: on_logged_in,
    n.RPL_LOGGEDOUT: on_logged_in,
    n.RPL_ISUPPORT: on_isupport,
    n.RPL_ENDOFMOTD: on_motd_end,
    n.ERR_NOMOTD: on_motd_end,
    n.ERR_NICKNAMEINUSE: on_nick_in_use,
    n.ERR_PASSWDMISMATCH: on_password_mismatch,
    n.ERR_ERRONEUSNICKNAME: on_nick_in_use,
    n.RPL_TOPIC: on_rpl_topic,
    n.RPL_NOTOPIC: on_rpl_topic,
    n.RPL_NAMREPLY: on_names,
    n.RPL_ENDOFNAMES: on_end_of_names,
    n.RPL_UNAWAY: on_away_state,
    n.RPL_NOWAWAY: on_away_state,
    RPL_SASLSUCCESS: on_sasl_ok,
    ERR_SASLFAIL: on_sasl_fail,
    ERR_SASLTOOLONG: on_sasl_fail,
    ERR_SASLABORTED: on_sasl_fail,
    ERR_SASLALREADY: on_sasl_fail,
    ERR_NICKLOCKED: on_sasl_fail,
}
