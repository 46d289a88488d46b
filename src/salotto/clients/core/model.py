"""What a chat client shows: buffers (server, channel, private conversation), their lines and members.

Plain data, no I/O and no GUI: the session fills it, a GUI draws it, tests read it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "SERVER_KEY",
    "Buffer",
    "BufferKind",
    "Change",
    "ChangeKind",
    "Line",
    "LineKind",
    "Member",
]

# The server buffer's key; no channel or nick can be "*".
SERVER_KEY = "*"
# Lines kept per buffer; older ones are dropped (HexChat keeps 300 by default, we keep more).
MAX_LINES_PER_BUFFER = 2000


class BufferKind(enum.Enum):
    SERVER = "server"
    CHANNEL = "channel"
    QUERY = "query"


class LineKind(enum.Enum):
    MESSAGE = "message"
    ACTION = "action"
    NOTICE = "notice"
    JOIN = "join"
    PART = "part"
    QUIT = "quit"
    KICK = "kick"
    NICK = "nick"
    TOPIC = "topic"
    MODE = "mode"
    INFO = "info"
    ERROR = "error"
    # Where messages are missing between two loaded stretches (after a jump to an old search result):
    # Session.fill_gap loads them.
    GAP = "gap"


# Kinds a GUI shows quietly (dim, no unread count).
QUIET_KINDS = frozenset({LineKind.JOIN, LineKind.PART, LineKind.QUIT, LineKind.NICK, LineKind.MODE})


@dataclass(slots=True)
class Line:
    """One line of a buffer. ``nick`` is the speaker for messages, the subject for events."""

    time: datetime
    kind: LineKind
    text: str
    nick: str = ""
    own: bool = False
    highlight: bool = False
    msgid: str = ""
    # The msgid this message answers (client tag ``+draft/reply``); "" when it is no reply.
    reply_to: str = ""
    # Reactions (``+draft/react``) received for this message: emoji -> nicks, in the order they came.
    reactions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def quiet(self) -> bool:
        return self.kind in QUIET_KINDS


@dataclass(slots=True)
class Member:
    nick: str
    # Membership prefixes held, highest first ("@+" with multi-prefix, else at most one).
    prefixes: str = ""

    @property
    def display(self) -> str:
        return self.prefixes[:1] + self.nick


@dataclass(slots=True)
class Buffer:
    """A channel, a private conversation or the server's own messages."""

    name: str
    kind: BufferKind
    lines: list[Line] = field(default_factory=list)
    # Folded nick -> member; channels only.
    members: dict[str, Member] = field(default_factory=dict)
    topic: str = ""
    unread: int = 0
    mentioned: bool = False
    joined: bool = False
    msgids: set[str] = field(default_factory=set)
    # The server has nothing older than lines[0] (a "start of history" note is there): stop asking.
    at_start_of_history: bool = False
    # Reactions whose message is not here (yet): msgid -> [(emoji, nick)]; they attach when it comes.
    orphan_reactions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # A reaction's own msgid -> (the message's msgid, emoji, nick): a REDACT of the reaction takes it back.
    reaction_ids: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # Messages deleted here (REDACT): a reply to one quotes "a deleted message".
    deleted: set[str] = field(default_factory=set)
    # The newest time the user has read up to here (draft/read-marker), None when unknown.
    read_until: datetime | None = None

    def find(self, msgid: str) -> Line | None:
        """The line with this msgid, newest first (a reply or reaction is usually about a recent line)."""
        if not msgid or msgid not in self.msgids:
            return None
        for line in reversed(self.lines):
            if line.msgid == msgid:
                return line
        return None

    def react(self, msgid: str, emoji: str, nick: str, reaction_msgid: str = "") -> Line | None:
        """Count ``nick``'s ``emoji`` on the message ``msgid``; the line changed, or None.

        A reaction seen twice (live and again in a history replay) is counted once, by its own msgid and
        by who reacted with what.
        """
        if reaction_msgid:
            if reaction_msgid in self.reaction_ids:
                return None
            self.reaction_ids[reaction_msgid] = (msgid, emoji, nick)
        line = self.find(msgid)
        if line is None:
            self.orphan_reactions.setdefault(msgid, []).append((emoji, nick))
            return None
        nicks = line.reactions.setdefault(emoji, [])
        if nick in nicks:
            return None
        nicks.append(nick)
        return line

    def unreact(self, msgid: str, emoji: str, nick: str) -> Line | None:
        line = self.find(msgid)
        if line is None or nick not in line.reactions.get(emoji, []):
            return None
        line.reactions[emoji].remove(nick)
        if not line.reactions[emoji]:
            del line.reactions[emoji]
        return line

    def redact(self, msgid: str) -> Line | None:
        """Remove the message (or take back the reaction) ``msgid``; what changed, or None."""
        reaction = self.reaction_ids.pop(msgid, None)
        if reaction is not None:
            return self.unreact(*reaction)
        line = self.find(msgid)
        if line is None:
            return None
        self.lines.remove(line)
        self.deleted.add(msgid)
        return line

    def _attach_orphans(self, line: Line) -> None:
        for emoji, nick in self.orphan_reactions.pop(line.msgid, ()):
            nicks = line.reactions.setdefault(emoji, [])
            if nick not in nicks:
                nicks.append(nick)

    def unread_after(self, moment: datetime) -> tuple[int, bool]:
        """(messages by others after ``moment``, whether one of them mentions you)."""
        count, mentioned = 0, False
        for line in reversed(self.lines):
            if line.time <= moment:
                break
            if not line.own and line.kind in (LineKind.MESSAGE, LineKind.ACTION, LineKind.NOTICE):
                count += 1
                mentioned = mentioned or line.highlight
        return count, mentioned

    def add(self, line: Line) -> bool:
        """Append a line; False (and nothing added) when its msgid was already seen."""
        if line.msgid:
            if line.msgid in self.msgids:
                return False
            self.msgids.add(line.msgid)
            if self.orphan_reactions:
                self._attach_orphans(line)
        self.lines.append(line)
        if len(self.lines) > MAX_LINES_PER_BUFFER:
            del self.lines[: len(self.lines) - MAX_LINES_PER_BUFFER]
        return True

    def merge_history(self, lines: list[Line]) -> int:
        """Merge older lines (a history batch) by time, skipping known msgids; returns how many were new."""
        fresh = [ln for ln in lines if not ln.msgid or ln.msgid not in self.msgids]
        for ln in fresh:
            if ln.msgid:
                self.msgids.add(ln.msgid)
                if self.orphan_reactions:
                    self._attach_orphans(ln)
        if fresh:
            self.lines = sorted(self.lines + fresh, key=lambda ln: ln.time)[-MAX_LINES_PER_BUFFER:]
        return len(fresh)

    def prepend_history(self, lines: list[Line]) -> list[Line]:
        """Insert older lines (a CHATHISTORY BEFORE reply, oldest first) above the others, in their order.

        Known msgids are skipped; only as many lines as fit under the cap are kept (the newest of them).
        Returns the lines inserted.
        """
        fresh: list[Line] = []
        seen: set[str] = set()
        for ln in lines:
            if ln.msgid:
                if ln.msgid in self.msgids or ln.msgid in seen:
                    continue
                seen.add(ln.msgid)
            fresh.append(ln)
        room = MAX_LINES_PER_BUFFER - len(self.lines)
        fresh = fresh[max(len(fresh) - room, 0):] if room > 0 else []
        self.msgids.update(ln.msgid for ln in fresh if ln.msgid)
        if self.orphan_reactions:
            for ln in fresh:
                if ln.msgid:
                    self._attach_orphans(ln)
        self.lines[:0] = fresh
        return fresh

    def sorted_members(self, prefix_order: str) -> list[Member]:
        """Members by rank (prefix_order is highest first, e.g. "@+"), then by name."""
        rank = {sym: i for i, sym in enumerate(prefix_order)}

        def key(m: Member) -> tuple[int, str]:
            return (rank.get(m.prefixes[:1], len(prefix_order)), m.nick.lower())

        return sorted(self.members.values(), key=key)


class ChangeKind(enum.Enum):
    LINE = "line"  # a line was appended to ``key``
    UPDATE = "update"  # ``line`` of ``key`` changed (a reaction came): redraw it
    RELOAD = "reload"  # ``key``'s lines changed in place (history merged): redraw them all
    PREPEND = "prepend"  # ``lines`` were inserted above ``key``'s others (older history): keep the view
    MEMBERS = "members"
    TOPIC = "topic"
    BUFFERS = "buffers"  # a buffer opened or closed, or unread/mention marks changed
    ACTIVATE = "activate"  # the session wants ``key`` shown (the user ran /join, /query)
    STATUS = "status"  # connection state or own nick changed
    QUIT = "quit"  # the user asked to quit
    SEARCH = "search"  # the search results (Session.search_results) changed
    FOCUS = "focus"  # show ``line`` of ``key`` (a search result jumped to): scroll there, highlight it
    PREVIEW = "preview"  # the preview of the file at the URL ``key`` is ready: redraw lines that link it
    TRANSFER = "transfer"  # an upload started, progressed or ended (Client.transfers)
    PICK_FILE = "pick_file"  # /upload without a path: a GUI asks which file (for buffer ``key``)


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    key: str = ""
    line: Line | None = None
    lines: tuple[Line, ...] = ()
