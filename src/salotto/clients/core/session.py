"""A client's IRC session, sans-I/O: feed it parsed messages, it updates buffers and queues lines to send.

Registration and capability negotiation follow https://modern.ircdocs.horse/#connection-registration and
https://ircv3.net/specs/extensions/capability-negotiation; SASL PLAIN follows
https://ircv3.net/specs/extensions/sasl-3.1. The session never touches a socket or a clock of its own:
the connection layer (:mod:`salotto.clients.core.client`) feeds it and sends what it queued.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from salotto.clients.core import history
from salotto.clients.core import search as searching
from salotto.clients.core.commands import run_input
from salotto.clients.core.handlers import dispatch
from salotto.clients.core.model import (
    SERVER_KEY,
    Buffer,
    BufferKind,
    Change,
    ChangeKind,
    Line,
    LineKind,
)
from salotto.clients.core.protocol import CONCAT_TAG, MULTILINE_BATCH, REACT_TAG, REPLY_TAG
from salotto.clients.core.text import (
    casefold_for,
    format_server_time,
    parse_server_time,
    split_keeping_spaces,
    split_utf8,
)
from salotto.proto import Message, format_line

__all__ = ["QUICK_REACTIONS", "WANTED_CAPS", "Session", "SessionConfig"]

# NickServ's words for the account's always-on setting: INFO's "Always-on: on." and SET's
# "Always-on is off for alice: ...".
ALWAYS_ON_STATE = re.compile(r"^Always-on(?::| is) (on|off)\b")

# Capabilities we use when the server offers them. sasl is added only when an account is configured.
WANTED_CAPS = (
    "server-time",
    "message-tags",
    "multi-prefix",
    "echo-message",
    "batch",
    "draft/chathistory",
    "chathistory",
    "cap-notify",
    "draft/message-redaction",
    "draft/read-marker",
    "draft/multiline",
    searching.SEARCH_CAP,
)
# SASL payloads go out in chunks of 400 bytes (sasl-3.1).
SASL_CHUNK_BYTES = 400
# Bytes of text per PRIVMSG before it is split in several (leaves room for the relayed prefix).
MESSAGE_BYTES = 400
# Lines of history asked for on join, and per request when the user scrolls up, when the server offers
# chathistory (the server may cap it with ISUPPORT CHATHISTORY=; salotto's default cap is 100).
DEFAULT_HISTORY_LINES = 50
# draft/multiline limits when the server's cap value leaves them out: max-bytes is required by the spec
# (so a server without it gets no batches from us), max-lines is optional (then only max-bytes counts).
MULTILINE_NO_LINE_LIMIT = 1_000_000
# The reactions a GUI offers in one click (any emoji can be sent with Session.react).
QUICK_REACTIONS = ("\U0001f44d", "\u2764\ufe0f", "\U0001f602", "\U0001f389", "\U0001f440", "\U0001f64f")


@dataclass(slots=True)
class SessionConfig:
    nick: str
    username: str = ""
    realname: str = "salotto user"
    server_password: str = ""
    sasl_account: str = ""
    sasl_password: str = ""
    autojoin: tuple[str, ...] = ("#lobby",)
    history_lines: int = DEFAULT_HISTORY_LINES
    quit_message: str = "Leaving"
    # Once logged in (SASL), set the account's always-on (NickServ SET ALWAYS-ON ON/OFF): True or False;
    # None leaves it as it is.
    always_on: bool | None = None


class Session:
    """State of one client across connections: buffers survive reconnects, the rest is reset."""

    def __init__(self, config: SessionConfig, now: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.now = now or (lambda: datetime.now(UTC))
        self.nick = config.nick
        # The nick to ask for on every connection: the configured one, or the one the user changed to
        # (/nick), so a reconnection (to another server of the network too) keeps it.
        self.wanted_nick = config.nick
        self.buffers: dict[str, Buffer] = {SERVER_KEY: Buffer("server", BufferKind.SERVER)}
        self.active = SERVER_KEY
        self.outbox: list[str] = []
        self.changes: list[Change] = []
        self.quit_requested = False
        # Channels to show once joined (the user ran /join) and to drop once parted (/close, /part).
        self.activate_on_join: set[str] = set()
        self.closing: set[str] = set()
        self.away = False
        # Why registration cannot succeed as configured (a private server refused the server password,
        # 464): reconnecting would only be refused again. Cleared when a connection begins.
        self.refused: str | None = None
        # The account's always-on setting as NickServ last said it (None: not known), and whether the
        # configured one was sent (once: it is the account's, kept by the server).
        self.always_on: bool | None = None
        self._always_on_sent = False
        # The last search (soju.im/search) and its results, newest first; None before the first.
        self.search_results: searching.SearchResults | None = None
        # Files the user asked to share (/upload PATH): (path, buffer name), for the client to send.
        self.uploads_wanted: list[tuple[str, str]] = []
        self._reset_connection_state()

    # -- connection lifecycle -------------------------------------------------------------------

    def _reset_connection_state(self) -> None:
        self.connected = False
        self.registered = False
        self.server_name = ""
        # The account this connection is logged in to (900), "" when none.
        self.account = ""
        self.caps_offered: dict[str, str] = {}
        self.caps_enabled: set[str] = set()
        self.isupport: dict[str, str] = {}
        self.prefix_modes = "ov"
        self.prefix_symbols = "@+"
        self.chantypes = "#&"
        self.statusmsg = ""
        self.chanmodes = ("beI", "k", "l", "imnpst")
        self.fold: Callable[[str], str] = casefold_for("rfc1459")
        self.cap_ls_done = False
        self._cap_ended = False
        self._sasl_running = False
        self._welcomed_joins_sent = False
        self.names_pending: dict[str, dict[str, str]] = {}
        self.history = history.HistoryState()
        previous = getattr(self, "search_state", None)
        if previous is not None:  # requests in flight on the old connection get no answer now
            for results in previous.in_flight:
                results.pending = False
                results.more = bool(results.results)
        self.search_state = searching.SearchState()
        self._nick_attempts = 0
        # draft/multiline batches being received: ref -> (target, source, the opening BATCH, its lines).
        self.multiline: dict[str, tuple[str, str | None, Message, list[Message]]] = {}
        self._batch_counter = 0

    def begin(self) -> None:
        """A new connection is up: queue the registration lines."""
        self._reset_connection_state()
        self.connected = True
        self.refused = None
        self.nick = self.wanted_nick
        self.send("CAP", "LS", "302")
        if self.config.server_password:
            self.send("PASS", self.config.server_password)
        self.send("NICK", self.nick)
        self.send("USER", self.config.username or self.config.nick, "0", "*", self.config.realname)
        self.emit(ChangeKind.STATUS)

    def disconnected(self, reason: str, note: str = "") -> None:
        """The connection ended; say so in every open buffer and forget who was where.

        ``note``: the line to show instead of "Disconnected: reason" (which server was lost, what next).
        """
        was_connected = self.connected
        self._reset_connection_state()
        for key, buf in self.buffers.items():
            if was_connected or key == SERVER_KEY:
                self.add_line(key, self.line(LineKind.ERROR, note or f"Disconnected: {reason}"), count=False)
            if buf.kind is BufferKind.CHANNEL:
                buf.members.clear()
                buf.joined = False
                self.emit(ChangeKind.MEMBERS, key)
        self.emit(ChangeKind.STATUS)

    # -- output ---------------------------------------------------------------------------------

    def send(self, command: str, *params: str, tags: dict[str, str] | None = None) -> None:
        self.outbox.append(format_line(command, list(params), tags=tags))

    def send_raw(self, line: str) -> None:
        self.outbox.append(line)

    def take_outbox(self) -> list[str]:
        out, self.outbox = self.outbox, []
        return out

    def take_changes(self) -> list[Change]:
        out, self.changes = self.changes, []
        return out

    def emit(self, kind: ChangeKind, key: str = "", line: Line | None = None, lines: Iterable[Line] = ()) -> None:
        self.changes.append(Change(kind, key, line, tuple(lines)))

    # -- buffers --------------------------------------------------------------------------------

    def key(self, name: str) -> str:
        return self.fold(name)

    def is_channel(self, name: str) -> bool:
        return bool(name) and name[0] in self.chantypes

    def is_me(self, nick: str) -> bool:
        return bool(nick) and self.fold(nick) == self.fold(self.nick)

    def get_buffer(self, name: str) -> Buffer | None:
        return self.buffers.get(SERVER_KEY if name == SERVER_KEY else self.key(name))

    def open_buffer(self, name: str, kind: BufferKind | None = None) -> Buffer:
        """The buffer for a channel or nick, created when missing."""
        key = self.key(name)
        buf = self.buffers.get(key)
        if buf is None:
            if kind is None:
                kind = BufferKind.CHANNEL if self.is_channel(name) else BufferKind.QUERY
            buf = Buffer(name, kind)
            self.buffers[key] = buf
            self.emit(ChangeKind.BUFFERS)
        return buf

    def close_buffer(self, key: str) -> None:
        if key == SERVER_KEY or key not in self.buffers:
            return
        del self.buffers[key]
        if self.active == key:
            self.active = SERVER_KEY
            self.emit(ChangeKind.ACTIVATE, SERVER_KEY)
        self.emit(ChangeKind.BUFFERS)

    def set_active(self, key: str) -> None:
        """The GUI shows ``key`` now: its unread count and mention mark are cleared."""
        buf = self.buffers.get(key)
        if buf is None:
            return
        self.active = key
        if buf.unread or buf.mentioned:
            buf.unread = 0
            buf.mentioned = False
            self.emit(ChangeKind.BUFFERS)

    def activate(self, key: str) -> None:
        """Ask the GUI to show ``key`` (after /join or /query)."""
        self.set_active(key)
        self.emit(ChangeKind.ACTIVATE, key)

    def line(self, kind: LineKind, text: str, nick: str = "", msg: Message | None = None) -> Line:
        moment = self.now()
        msgid = ""
        if msg is not None:
            stamp = msg.tags.get("time")
            parsed = parse_server_time(stamp) if stamp else None
            if parsed is not None:
                moment = parsed
            msgid = msg.tags.get("msgid", "")
            return Line(moment, kind, text, nick, msgid=msgid, reply_to=msg.tags.get(REPLY_TAG, "") or "")
        return Line(moment, kind, text, nick, msgid=msgid)

    def add_line(
        self,
        name: str,
        line: Line,
        *,
        count: bool = True,
        kind: BufferKind | None = None,
        batch: str = "",
    ) -> None:
        """Append ``line`` to the buffer of ``name`` (created when missing) and account for it."""
        if batch and batch in self.history.batches:
            self.history.batches[batch].lines.append((name, line))
            return
        buf = self.buffers[SERVER_KEY] if name == SERVER_KEY else self.open_buffer(name, kind)
        if not buf.add(line):
            return
        key = SERVER_KEY if name == SERVER_KEY else self.key(name)
        self.emit(ChangeKind.LINE, key, line)
        if buf.read_until is not None and line.time <= buf.read_until:
            count = False  # read already (on another device, as the server's read marker says)
        if key != self.active and count and not line.own and not line.quiet:
            if line.kind in (LineKind.MESSAGE, LineKind.ACTION, LineKind.NOTICE):
                buf.unread += 1
            if line.highlight:
                buf.mentioned = True
            self.emit(ChangeKind.BUFFERS)

    def info(self, text: str, name: str | None = None, kind: LineKind = LineKind.INFO) -> None:
        """A line from the client or the server that is not chat, in ``name`` or the active buffer."""
        target = name if name is not None else self.active_name()
        if target != SERVER_KEY and self.get_buffer(target) is None:
            target = SERVER_KEY
        self.add_line(target, self.line(kind, text), count=False)

    def error(self, text: str, name: str | None = None) -> None:
        self.info(text, name, LineKind.ERROR)

    def active_name(self) -> str:
        return SERVER_KEY if self.active == SERVER_KEY else self.buffers[self.active].name

    def channels(self) -> list[Buffer]:
        return [b for b in self.buffers.values() if b.kind is BufferKind.CHANNEL]

    # -- batches and chathistory (the logic is in history.py) ----------------------------------

    def start_batch(self, ref: str, kind: str, target: str) -> None:
        history.start_batch(self, ref, kind, target)

    def end_batch(self, ref: str) -> None:
        history.end_batch(self, ref)

    def batch_of(self, msg: Message) -> str:
        return history.batch_of(self, msg)

    def request_history(self, channel: str) -> None:
        """The backlog on join (CHATHISTORY LATEST), when the server offers chathistory."""
        history.request_latest(self, channel)

    def request_older(self, key: str) -> bool:
        """Lines older than the oldest in buffer ``key`` (CHATHISTORY BEFORE); False when none were asked.

        The reply arrives as a :attr:`ChangeKind.PREPEND` change (lines inserted at the top), or, when the
        server has nothing older, as a one-line "start of history" note after which nothing more is asked.
        """
        return history.request_older(self, key)

    def fill_gap(self, key: str) -> bool:
        """Load the messages missing at buffer ``key``'s gap line (CHATHISTORY BETWEEN, a page at a time).

        A gap line (:attr:`LineKind.GAP`) appears after jumping to a search result older than everything
        loaded; the reply is merged (a ``RELOAD``) and the gap closes, or moves on while more are missing.
        """
        return history.fill_gap(self, key)

    def history_failed(self, context: list[str]) -> None:
        history.history_failed(self, context)

    # -- search (soju.im/search; the logic is in search.py) -----------------------------------

    def search(self, text: str, target: str = "", sender: str = "") -> bool:
        """Search the server's history for ``text`` (in ``target``, said by ``sender``; "" for any).

        Results come as :attr:`ChangeKind.SEARCH` changes, in :attr:`search_results` (newest first); False
        (and an error line, and an error in ``search_results``) when the search cannot be asked.
        """
        return searching.search(self, text, target, sender)

    def search_more(self) -> bool:
        """The next, older page of the current search; False when there is nothing more to ask."""
        return searching.search_more(self)

    def jump_to(self, result: searching.SearchResult) -> bool:
        """Show a search result in its buffer, fetching the lines around it (CHATHISTORY AROUND).

        A :attr:`ChangeKind.FOCUS` change names the line once it is there, for a GUI to scroll to.
        """
        return searching.jump_to(self, result)

    # -- capability negotiation and SASL --------------------------------------------------------

    def caps_to_request(self, offered: dict[str, str]) -> list[str]:
        wanted = [c for c in WANTED_CAPS if c in offered and c not in self.caps_enabled]
        if "draft/chathistory" in wanted and "chathistory" in wanted:
            wanted.remove("draft/chathistory")
        if self.config.sasl_account and "sasl" in offered and "sasl" not in self.caps_enabled:
            mechanisms = offered["sasl"]
            if not mechanisms or "PLAIN" in mechanisms.upper().split(","):
                wanted.append("sasl")
            else:
                self.error(f"The server offers SASL {mechanisms} but not PLAIN; not logging in.", SERVER_KEY)
        return wanted

    def cap_ls_finished(self) -> None:
        self.cap_ls_done = True
        wanted = self.caps_to_request(self.caps_offered)
        if self.config.sasl_account and "sasl" not in self.caps_offered:
            self.error("The server does not offer SASL; connecting without logging in.", SERVER_KEY)
        if wanted:
            self.send("CAP", "REQ", " ".join(wanted))
        else:
            self.end_cap()

    def caps_acked(self, caps: list[str]) -> None:
        for cap in caps:
            if cap.startswith("-"):
                self.caps_enabled.discard(cap[1:])
            else:
                self.caps_enabled.add(cap)
        if "sasl" in caps and self.config.sasl_account and not self.registered:
            self._sasl_running = True
            self.send("AUTHENTICATE", "PLAIN")
        elif not self._sasl_running:
            self.end_cap()

    def end_cap(self) -> None:
        if not self._cap_ended and not self.registered:
            self._cap_ended = True
            self.send("CAP", "END")

    def sasl_continue(self, challenge: str) -> None:
        if challenge != "+" or not self._sasl_running:
            return
        account, password = self.config.sasl_account, self.config.sasl_password
        payload = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode("ascii")
        chunks = [payload[i : i + SASL_CHUNK_BYTES] for i in range(0, len(payload), SASL_CHUNK_BYTES)]
        for chunk in chunks:
            self.send("AUTHENTICATE", chunk)
        if not chunks or len(chunks[-1]) == SASL_CHUNK_BYTES:
            self.send("AUTHENTICATE", "+")

    def sasl_finished(self, ok: bool, text: str) -> None:
        self._sasl_running = False
        if ok:
            self.info(text or "Logged in.", SERVER_KEY)
        else:
            self.error(f"Login failed: {text}", SERVER_KEY)
        self.end_cap()

    # -- registration -------------------------------------------------------------------------

    def password_refused(self, text: str) -> None:
        """464 before registration: the server password is missing or wrong (the server closes next)."""
        if self.config.server_password:
            self.refused = f"The server password was refused: {text}"
        else:
            self.refused = "This server is private: it needs a server password."
        self.error(self.refused, SERVER_KEY)
        self.emit(ChangeKind.STATUS)

    def welcome(self, nick: str, server: str) -> None:
        self.registered = True
        self.nick = nick
        self.server_name = server
        self.buffers[SERVER_KEY].name = server or "server"
        self.emit(ChangeKind.STATUS)
        self.emit(ChangeKind.BUFFERS)

    def nick_rejected(self) -> None:
        """The nick is taken or refused during registration: try another, as every client does."""
        self._nick_attempts += 1
        base = self.wanted_nick
        tries = self._nick_attempts
        self.nick = base + "_" * tries if tries < 4 else f"{base}{tries}"
        self.send("NICK", self.nick)

    def nick_freed(self, nick: str) -> None:
        """``nick`` quit or changed nick: when it is the one we want and have a fallback instead, take it.

        After a move to another server of a cluster, the old connection may hold the nick until the
        network notices it is gone (its QUIT): the client then gets its nick back.
        """
        if (self.registered and not self.is_me(nick) and self.fold(nick) == self.fold(self.wanted_nick)
                and not self.is_me(self.wanted_nick)):
            self.send("NICK", self.wanted_nick)

    def motd_done(self) -> None:
        """Registration is over: join the autojoin channels and every channel open before a reconnect."""
        if self._welcomed_joins_sent:
            return
        self._welcomed_joins_sent = True
        if self.account and self.config.always_on is not None and not self._always_on_sent:
            self._always_on_sent = True
            self.send("PRIVMSG", "NickServ", f"SET ALWAYS-ON {'ON' if self.config.always_on else 'OFF'}")
        names = [buf.name for buf in self.channels() if not buf.joined]
        for name in self.config.autojoin:
            if self.get_buffer(name) is None:
                names.append(name)
        if names:
            self.send("JOIN", ",".join(names))

    def service_notice(self, text: str) -> None:
        """A notice from NickServ: note the account's always-on setting when it states it."""
        match = ALWAYS_ON_STATE.match(text)
        if match is not None:
            self.always_on = match.group(1) == "on"
            self.emit(ChangeKind.STATUS)

    # -- user actions -------------------------------------------------------------------------

    def say(self, target: str, text: str, kind: LineKind = LineKind.MESSAGE, reply_to: str = "") -> None:
        """Send a message (or /me action, or notice) to a channel or nick, echoing it locally if needed.

        ``reply_to``: the msgid of the message this answers (``+draft/reply``, when the server takes client
        tags). Several lines go as one ``draft/multiline`` batch when the server offers it and they fit its
        limits; otherwise as one message each.
        """
        tags = {REPLY_TAG: reply_to} if reply_to and "message-tags" in self.caps_enabled else None
        text = text.strip("\r\n") if "\n" in text else text
        if "\n" in text and kind is not LineKind.ACTION and self._say_multiline(target, text, kind, tags):
            return
        # 512 bytes per line, minus our own prefix as the server relays it (nick!user@host, ~100 bytes).
        budget = max(MESSAGE_BYTES - len(target.encode("utf-8")), 64)
        chunks = [piece for part in text.split("\n") for piece in split_utf8(part.rstrip("\r"), budget)]
        for chunk in chunks:
            if kind is LineKind.ACTION:
                self.send("PRIVMSG", target, f"\x01ACTION {chunk}\x01", tags=tags)
            else:
                self.send("NOTICE" if kind is LineKind.NOTICE else "PRIVMSG", target, chunk, tags=tags)
            if "echo-message" not in self.caps_enabled:
                line = self.line(kind, chunk, self.nick)
                line.own = True
                line.reply_to = reply_to if tags else ""
                self.add_line(target, line)

    def multiline_limits(self) -> tuple[int, int] | None:
        """(max-bytes, max-lines) of the server's draft/multiline, or None when it cannot be used."""
        if MULTILINE_BATCH not in self.caps_enabled or "batch" not in self.caps_enabled:
            return None
        values = dict(item.partition("=")[::2] for item in self.caps_offered.get(MULTILINE_BATCH, "").split(","))
        max_bytes, max_lines = values.get("max-bytes", ""), values.get("max-lines", "")
        if not max_bytes.isdigit() or int(max_bytes) <= 0:
            return None
        return int(max_bytes), int(max_lines) if max_lines.isdigit() and int(max_lines) > 0 else (
            MULTILINE_NO_LINE_LIMIT)

    def _say_multiline(self, target: str, text: str, kind: LineKind, tags: dict[str, str] | None) -> bool:
        """Send ``text`` as one draft/multiline batch; False (nothing sent) when it cannot go as one."""
        limits = self.multiline_limits()
        if limits is None:
            return False
        max_bytes, max_lines = limits
        budget = max(MESSAGE_BYTES - len(target.encode("utf-8")), 64)
        pieces: list[tuple[str, bool]] = []  # (text, continues the line before without a break)
        for part in text.split("\n"):
            chunks = split_keeping_spaces(part.rstrip("\r"), budget)
            pieces.append((chunks[0], False))
            pieces.extend((chunk, True) for chunk in chunks[1:])
        # max-bytes counts the message as the recipient sees it: every line's text and the breaks.
        size = sum(len(piece.encode("utf-8")) for piece, _ in pieces) + text.count("\n")
        if len(pieces) > max_lines or size > max_bytes:
            return False
        self._batch_counter += 1
        ref = f"ml{self._batch_counter}"
        command = "NOTICE" if kind is LineKind.NOTICE else "PRIVMSG"
        self.send("BATCH", "+" + ref, MULTILINE_BATCH, target, tags=tags)
        for piece, concat in pieces:
            self.send(command, target, piece, tags={"batch": ref, **({CONCAT_TAG: ""} if concat else {})})
        self.send("BATCH", "-" + ref)
        if "echo-message" not in self.caps_enabled:
            line = self.line(kind, "\n".join(part.rstrip("\r") for part in text.split("\n")), self.nick)
            line.own = True
            line.reply_to = (tags or {}).get(REPLY_TAG, "")
            self.add_line(target, line)
        return True

    def react(self, target: str, msgid: str, emoji: str) -> bool:
        """React to the message ``msgid`` in ``target`` (TAGMSG with +draft/react); False when not possible.

        Needs ``message-tags`` (a server without it would drop the tags) and a message with a msgid.
        """
        if not msgid or "message-tags" not in self.caps_enabled or not self.registered:
            return False
        self.send("TAGMSG", target, tags={REACT_TAG: emoji, REPLY_TAG: msgid})
        if "echo-message" not in self.caps_enabled:
            buf = self.get_buffer(target)
            line = buf.react(msgid, emoji, self.nick) if buf is not None else None
            if line is not None:
                self.emit(ChangeKind.UPDATE, self.key(target), line)
        return True

    def reaction(self, name: str, msgid: str, emoji: str, nick: str, reaction_msgid: str = "",
                 remove: bool = False) -> None:
        """``nick`` reacted with ``emoji`` (or took it back) to the message ``msgid`` in buffer ``name``."""
        buf = self.get_buffer(name)
        if buf is None:
            return
        line = buf.unreact(msgid, emoji, nick) if remove else buf.react(msgid, emoji, nick, reaction_msgid)
        if line is not None:
            self.emit(ChangeKind.UPDATE, self.key(buf.name), line)

    def can_redact(self, key: str, line: Line) -> bool:
        """May the user delete ``line`` of buffer ``key``: their own message, or any as a channel operator."""
        buf = self.buffers.get(key)
        if (buf is None or not line.msgid or not self.registered
                or "draft/message-redaction" not in self.caps_enabled):
            return False
        if line.kind not in history.STORED_KINDS:
            return False
        if line.own:
            return True
        if buf.kind is not BufferKind.CHANNEL:
            return False
        me = buf.members.get(self.fold(self.nick))
        ops = self.prefix_symbols[: self.prefix_symbols.index("@") + 1] if "@" in self.prefix_symbols else ""
        return me is not None and any(p in ops for p in me.prefixes)

    def redact(self, key: str, msgid: str, reason: str = "") -> bool:
        """Delete the message ``msgid`` of buffer ``key`` (REDACT); the line goes when the server relays it."""
        buf = self.buffers.get(key)
        line = buf.find(msgid) if buf is not None else None
        if buf is None or line is None or not self.can_redact(key, line):
            return False
        self.send("REDACT", buf.name, msgid, *([reason] if reason else []))
        return True

    def redacted(self, target: str, msgid: str, by: str, reason: str) -> None:
        """The server relayed a REDACT: the message (or reaction) goes from the buffer it was in."""
        name = target if self.is_channel(target) or self.is_me(by) else by
        buf = self.get_buffer(name)
        if buf is None and not self.is_channel(target):
            buf = self.get_buffer(target)
        if buf is None:
            return
        key = self.key(buf.name) if buf.kind is not BufferKind.SERVER else SERVER_KEY
        changed = buf.redact(msgid)
        if changed is None:
            return
        if changed.msgid == msgid:
            self.emit(ChangeKind.RELOAD, key)
        else:
            self.emit(ChangeKind.UPDATE, key, changed)

    # -- read markers (draft/read-marker) -------------------------------------------------------

    def mark_read(self, key: str) -> bool:
        """The user has seen buffer ``key`` to its end: tell the server (MARKREAD) when it keeps markers."""
        buf = self.buffers.get(key)
        if buf is None or buf.kind is BufferKind.SERVER:
            return False
        if "draft/read-marker" not in self.caps_enabled or not self.registered or not self.account:
            return False  # the server keeps markers for accounts only
        # Only what the server keeps counts: a local line's time is this machine's clock.
        times = [line.time for line in buf.lines if line.kind in history.STORED_KINDS]
        if not times:
            return False
        newest = max(times)
        if buf.read_until is not None and newest <= buf.read_until:
            return False
        buf.read_until = newest
        self.send("MARKREAD", buf.name, "timestamp=" + format_server_time(newest))
        return True

    def read_marker(self, target: str, value: str) -> None:
        """MARKREAD from the server: read up to ``timestamp=...`` here (on this or another device)."""
        buf = self.get_buffer(target)
        if buf is None or not value.startswith("timestamp="):
            return
        moment = parse_server_time(value.removeprefix("timestamp="))
        if moment is None:
            return
        if buf.read_until is not None and moment <= buf.read_until:
            return
        buf.read_until = moment
        unread, mentioned = buf.unread_after(moment)
        if unread < buf.unread or (buf.mentioned and not mentioned):
            buf.unread = min(buf.unread, unread)
            buf.mentioned = buf.mentioned and mentioned
            self.emit(ChangeKind.BUFFERS)

    def input(self, text: str) -> None:
        """What the user typed in the entry of the active buffer: a slash command or a message."""
        run_input(self, text)

    def receive(self, msg: Message) -> None:
        """Handle one message from the server."""
        dispatch(self, msg)
