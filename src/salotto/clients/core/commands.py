"""Slash commands typed in the entry: one table maps each name to its handler, usage and help.

Every handler has the signature ``(session, args) -> None``, where ``args`` is the text after the
command name, and starts with its syntax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from salotto.clients.core.model import SERVER_KEY, BufferKind, ChangeKind, LineKind

if TYPE_CHECKING:
    from salotto.clients.core.session import Session

__all__ = ["ALIASES", "COMMANDS", "Command", "run_input"]


@dataclass(frozen=True, slots=True)
class Command:
    handler: Callable[[Session, str], None]
    usage: str
    help: str
    # Needs a registered connection (everything that sends, except /quit and /help).
    online: bool = True


def _words(args: str, count: int) -> list[str]:
    """Split off ``count - 1`` words; the last item holds the rest (possibly with spaces)."""
    parts = args.split(None, count - 1)
    return parts + [""] * (count - len(parts))


def _channel_or_active(s: Session, args: str) -> tuple[str, str]:
    """(channel, rest): the first word when it names a channel, else the active buffer's channel."""
    first, rest = _words(args, 2)
    if first and s.is_channel(first):
        return first, rest
    buf = s.buffers.get(s.active)
    channel = buf.name if buf is not None and buf.kind is BufferKind.CHANNEL else ""
    return channel, args.strip()


def _need_channel(s: Session, channel: str, usage: str) -> bool:
    if not channel:
        s.error(f"Not in a channel here. Usage: {usage}")
        return False
    return True


def cmd_join(s: Session, args: str) -> None:
    # /join <#channel>[,<#channel>...] [<key>]
    names, key = _words(args, 2)
    if not names:
        s.error("Usage: " + COMMANDS["join"].usage)
        return
    channels = [name if s.is_channel(name) else "#" + name for name in names.split(",") if name]
    for channel in channels:
        buf = s.get_buffer(channel)
        if buf is not None and buf.joined:
            s.activate(s.key(channel))
        else:
            s.activate_on_join.add(s.key(channel))
    s.send("JOIN", ",".join(channels), *([key] if key else []))


def cmd_part(s: Session, args: str) -> None:
    # /part [<#channel>] [<reason>]
    channel, reason = _channel_or_active(s, args)
    buf = s.buffers.get(s.active)
    if not channel and buf is not None and buf.kind is BufferKind.QUERY:
        s.close_buffer(s.active)
        return
    if _need_channel(s, channel, COMMANDS["part"].usage):
        s.send("PART", channel, *([reason] if reason else []))


def cmd_close(s: Session, args: str) -> None:
    # /close
    buf = s.buffers.get(s.active)
    if buf is None or buf.kind is BufferKind.SERVER:
        s.error("The server tab stays open; use /quit to leave.")
    elif buf.kind is BufferKind.CHANNEL and buf.joined and s.registered:
        s.closing.add(s.active)
        s.send("PART", buf.name, *([args.strip()] if args.strip() else []))
    else:
        s.close_buffer(s.active)


def cmd_msg(s: Session, args: str) -> None:
    # /msg <nick|#channel> <text>
    target, text = _words(args, 2)
    if not target or not text:
        s.error("Usage: " + COMMANDS["msg"].usage)
        return
    s.say(target, text)


def cmd_notice(s: Session, args: str) -> None:
    # /notice <nick|#channel> <text>
    target, text = _words(args, 2)
    if not target or not text:
        s.error("Usage: " + COMMANDS["notice"].usage)
        return
    s.say(target, text, LineKind.NOTICE)


def cmd_query(s: Session, args: str) -> None:
    # /query <nick> [<text>]
    nick, text = _words(args, 2)
    if not nick or s.is_channel(nick):
        s.error("Usage: " + COMMANDS["query"].usage)
        return
    s.open_buffer(nick, BufferKind.QUERY)
    s.activate(s.key(nick))
    if text and s.registered:
        s.say(nick, text)


def cmd_me(s: Session, args: str) -> None:
    # /me <action>
    if s.active == SERVER_KEY or not args.strip():
        s.error("Usage: " + COMMANDS["me"].usage + " (in a channel or conversation)")
        return
    s.say(s.active_name(), args.strip(), LineKind.ACTION)


def cmd_nick(s: Session, args: str) -> None:
    # /nick <newnick>
    nick = args.strip()
    if not nick or " " in nick:
        s.error("Usage: " + COMMANDS["nick"].usage)
        return
    s.config.nick = nick
    s.send("NICK", nick)


def cmd_topic(s: Session, args: str) -> None:
    # /topic [<#channel>] [<new topic>]
    channel, text = _channel_or_active(s, args)
    if _need_channel(s, channel, COMMANDS["topic"].usage):
        s.send("TOPIC", channel, *([text] if text else []))


def cmd_away(s: Session, args: str) -> None:
    # /away [<message>]
    s.send("AWAY", args.strip() or "Away")


def cmd_back(s: Session, args: str) -> None:
    # /back
    s.send("AWAY")


def cmd_whois(s: Session, args: str) -> None:
    # /whois <nick>
    nick = args.strip()
    if not nick:
        s.error("Usage: " + COMMANDS["whois"].usage)
        return
    s.send("WHOIS", nick)


def cmd_list(s: Session, args: str) -> None:
    # /list [<#channel>...]
    s.send("LIST", *args.split())


def cmd_names(s: Session, args: str) -> None:
    # /names [<#channel>]
    channel, _ = _channel_or_active(s, args)
    if _need_channel(s, channel, COMMANDS["names"].usage):
        s.send("NAMES", channel)


def cmd_kick(s: Session, args: str) -> None:
    # /kick [<#channel>] <nick> [<reason>]
    channel, rest = _channel_or_active(s, args)
    nick, reason = _words(rest, 2)
    if not nick:
        s.error("Usage: " + COMMANDS["kick"].usage)
    elif _need_channel(s, channel, COMMANDS["kick"].usage):
        s.send("KICK", channel, nick, *([reason] if reason else []))


def cmd_mode(s: Session, args: str) -> None:
    # /mode [<#channel>|<nick>] <modes> [<args>...]
    words = args.split()
    if words and words[0][:1] not in "+-":
        s.send("MODE", *words)
        return
    channel, _ = _channel_or_active(s, "")
    if _need_channel(s, channel, COMMANDS["mode"].usage):
        s.send("MODE", channel, *words)


def cmd_invite(s: Session, args: str) -> None:
    # /invite <nick> [<#channel>]
    nick, rest = _words(args, 2)
    channel, _ = _channel_or_active(s, rest)
    if not nick:
        s.error("Usage: " + COMMANDS["invite"].usage)
    elif _need_channel(s, channel, COMMANDS["invite"].usage):
        s.send("INVITE", nick, channel)


def cmd_quit(s: Session, args: str) -> None:
    # /quit [<reason>]
    s.quit_requested = True
    if s.connected:
        s.send("QUIT", args.strip() or s.config.quit_message)
    s.emit(ChangeKind.QUIT)


def cmd_raw(s: Session, args: str) -> None:
    # /raw <line>
    if not args.strip():
        s.error("Usage: " + COMMANDS["raw"].usage)
        return
    s.send_raw(args.strip())
    s.info("-> " + args.strip(), SERVER_KEY)


def cmd_clear(s: Session, args: str) -> None:
    # /clear
    buf = s.buffers.get(s.active)
    if buf is not None:
        buf.lines.clear()
        buf.at_start_of_history = True  # scrolling up must not bring the cleared lines back
        s.emit(ChangeKind.RELOAD, s.active)


def cmd_search(s: Session, args: str) -> None:
    # /search [-in <#channel|nick>|-here] [-from <nick>] <text>
    words = args.split()
    target = sender = ""
    while words and words[0].startswith("-") and words[0].lower() in ("-in", "-from", "-here"):
        option = words.pop(0).lower()
        if option == "-here":
            buf = s.buffers.get(s.active)
            if buf is None or buf.kind is BufferKind.SERVER:
                s.error("-here searches the channel or conversation shown; this is the server tab.")
                return
            target = buf.name
        elif not words:
            s.error("Usage: " + COMMANDS["search"].usage)
            return
        elif option == "-in":
            target = words.pop(0)
        else:
            sender = words.pop(0)
    if not words and not sender:
        s.error("Usage: " + COMMANDS["search"].usage)
        return
    s.search(" ".join(words), target, sender)


def cmd_upload(s: Session, args: str) -> None:
    # /upload [<path>]
    if s.active == SERVER_KEY:
        s.error("Pick a channel or conversation to share the file in; this is the server tab.")
        return
    path = args.strip()
    if len(path) > 1 and path[0] == path[-1] and path[0] in "'\"":
        path = path[1:-1]  # a path pasted with quotes around it
    if path:
        s.uploads_wanted.append((path, s.active_name()))
    else:
        s.emit(ChangeKind.PICK_FILE, s.active)


def cmd_help(s: Session, args: str) -> None:
    # /help [<command>]
    name = args.strip().lstrip("/").lower()
    name = ALIASES.get(name, name)
    if name:
        command = COMMANDS.get(name)
        if command is None:
            s.error(f"No command /{name}. Type /help for the list.")
        else:
            s.info(f"{command.usage}  -  {command.help}")
        return
    s.info("Type a message and press Enter to send it. Commands:")
    for command in COMMANDS.values():
        s.info(f"  {command.usage:<34} {command.help}")
    s.info("Tab completes nicks and commands; Up/Down recall what you typed; "
           "// sends a line starting with /.")


COMMANDS: dict[str, Command] = {
    "join": Command(cmd_join, "/join #channel [key]", "join a channel (and show it)"),
    "part": Command(cmd_part, "/part [#channel] [reason]", "leave a channel"),
    "close": Command(cmd_close, "/close [reason]", "leave this channel or close this conversation", False),
    "msg": Command(cmd_msg, "/msg nick text", "send a private message without switching to it"),
    "query": Command(cmd_query, "/query nick [text]", "open a private conversation", False),
    "me": Command(cmd_me, "/me action", "say what you are doing (* you waves)"),
    "notice": Command(cmd_notice, "/notice target text", "send a notice"),
    "nick": Command(cmd_nick, "/nick newnick", "change your nickname"),
    "topic": Command(cmd_topic, "/topic [#channel] [text]", "show or set the channel topic"),
    "away": Command(cmd_away, "/away [message]", "mark yourself away"),
    "back": Command(cmd_back, "/back", "mark yourself back"),
    "whois": Command(cmd_whois, "/whois nick", "who is this?"),
    "list": Command(cmd_list, "/list", "list the server's channels"),
    "names": Command(cmd_names, "/names [#channel]", "refresh the list of people here"),
    "kick": Command(cmd_kick, "/kick [#channel] nick [reason]", "remove someone from the channel (ops)"),
    "mode": Command(cmd_mode, "/mode [target] +modes [args]", "show or change modes (+o nick, +t, ...)"),
    "invite": Command(cmd_invite, "/invite nick [#channel]", "invite someone to a channel"),
    "search": Command(cmd_search, "/search [-in #channel|-here] [-from nick] text",
                      "search the server's history (everywhere, or in one channel or conversation)"),
    "upload": Command(cmd_upload, "/upload [path]", "share a file here (a file dialog without a path)"),
    "clear": Command(cmd_clear, "/clear", "clear this window", False),
    "raw": Command(cmd_raw, "/raw LINE", "send a raw IRC line"),
    "quit": Command(cmd_quit, "/quit [reason]", "disconnect and close", False),
    "help": Command(cmd_help, "/help [command]", "this help", False),
}
ALIASES = {"j": "join", "leave": "part", "m": "msg", "q": "query", "quote": "raw", "exit": "quit"}


def run_input(s: Session, text: str) -> None:
    """Run what the user typed in the active buffer: a /command, or a message to the buffer."""
    text = text.rstrip("\r\n")
    if not text.strip():
        return
    if text.startswith("/") and not text.startswith("//"):
        name, _, args = text[1:].partition(" ")
        name = ALIASES.get(name.lower(), name.lower())
        command = COMMANDS.get(name)
        if command is None:
            s.error(f"Unknown command /{name}. Type /help for the list of commands.")
        elif command.online and not s.registered:
            s.error(f"Not connected yet; /{name} will work once the connection is back.")
        else:
            command.handler(s, args)
        return
    if text.startswith("//"):
        text = text[1:]
    if s.active == SERVER_KEY:
        s.error("This is the server tab. Pick a channel on the left, or /join #channel.")
    elif not s.registered:
        s.error("Not connected; the message was not sent.")
    else:
        s.say(s.active_name(), text)
