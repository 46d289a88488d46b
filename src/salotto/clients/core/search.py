"""Searching the server's history: soju's ``soju.im/search`` extension, and jumping to a found message.

The client side of https://codeberg.org/emersion/soju/src/branch/master/doc/ext/search.md: ``SEARCH
text=...;in=...;before=...;limit=...`` (attributes escaped as message-tag values), answered with a batch
of type ``soju.im/search`` (``search`` in older texts) holding the matching PRIVMSG and NOTICE lines,
oldest first. Results are kept newest first; "more" asks again ``before`` the oldest one shown, and a
message already listed (the same msgid, at the edge of two pages) is listed once.

A reply batch does not name the request it answers, so requests are answered in the order they were
sent (FIFO), as the server handles a connection's commands in order.

Jumping to a result opens its buffer and asks ``CHATHISTORY AROUND <target> msgid=<id> <n>``; once the
lines are in, a :attr:`ChangeKind.FOCUS` change names the message for a GUI to scroll to and highlight.

Sans-I/O like the session: it queues lines with ``Session.send`` and reports with ``Session.emit``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from salotto.clients.core.model import BufferKind, ChangeKind, LineKind
from salotto.clients.core.text import format_server_time, parse_server_time, source_nick, strip_formatting
from salotto.proto import Message
from salotto.proto.message import escape_tag_value

if TYPE_CHECKING:
    from salotto.clients.core.session import Session

__all__ = [
    "AROUND_LINES",
    "SEARCH_BATCH_TYPES",
    "SEARCH_CAP",
    "SEARCH_PAGE",
    "SearchResult",
    "SearchResults",
    "SearchState",
    "search_attributes",
]

SEARCH_CAP = "soju.im/search"
# The spec's prose says "search", its examples and soju say "soju.im/search": take either.
SEARCH_BATCH_TYPES = frozenset({"soju.im/search", "search"})
# Results asked for per page (the server may send fewer, and caps it itself).
SEARCH_PAGE = 50
# Lines of context asked for around a message jumped to (CHATHISTORY AROUND), before ISUPPORT's cap.
AROUND_LINES = 40
# Search text the client sends at most (a SEARCH line must fit 512 bytes with its other attributes).
MAX_SEARCH_TEXT_BYTES = 300


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One found message: ``buffer`` is where it belongs here (the channel, or the other party's nick)."""

    buffer: str
    time: datetime
    nick: str
    text: str
    msgid: str
    kind: LineKind = LineKind.MESSAGE


@dataclass(slots=True)
class SearchResults:
    """The current search: what was asked, what came back (newest first), and whether more may exist."""

    text: str
    target: str = ""  # "" for everywhere
    sender: str = ""  # "" for anyone
    results: list[SearchResult] = field(default_factory=list)
    pending: bool = True  # a request is in flight
    more: bool = False  # a full page came back: older matches may exist
    error: str = ""  # the server's FAIL, when it refused
    msgids: set[str] = field(default_factory=set)

    @property
    def oldest(self) -> datetime | None:
        return self.results[-1].time if self.results else None


@dataclass(slots=True)
class SearchState:
    """One connection's searches: requests in flight (oldest first), batches being received."""

    in_flight: deque[SearchResults] = field(default_factory=deque)
    batches: dict[str, list[SearchResult]] = field(default_factory=dict)
    # The buffer key and msgid a jump waits for (the AROUND reply), if any.
    jump: tuple[str, str] | None = None


def search_attributes(
    text: str = "", target: str = "", sender: str = "", before: datetime | None = None, limit: int = 0
) -> str:
    """The SEARCH command's one parameter: ``key=value`` pairs joined by ``;``, values tag-escaped."""
    pairs = []
    for key, value in (("text", text), ("in", target), ("from", sender)):
        if value:
            pairs.append(f"{key}={escape_tag_value(value)}")
    if before is not None:
        pairs.append("before=" + format_server_time(before))
    if limit:
        pairs.append(f"limit={limit}")
    return ";".join(pairs)


def can_search(s: Session) -> str:
    """Why searching is not possible now, or "" when it is."""
    if not s.registered:
        return "Not connected; search works once the connection is back."
    if SEARCH_CAP not in s.caps_enabled:
        return "This server does not offer search (the soju.im/search extension)."
    if "batch" not in s.caps_enabled:
        return "This server does not send search results in a batch; the client cannot read them."
    return ""


def search(s: Session, text: str, target: str = "", sender: str = "") -> bool:
    """Start a new search (the old results go); False (with an error line) when it cannot be asked."""
    text = " ".join(text.split())
    problem = can_search(s)
    if not problem and not (text or sender):
        problem = "Nothing to search for: give some words."
    if not problem and len(text.encode("utf-8")) > MAX_SEARCH_TEXT_BYTES:
        problem = f"The search text is too long (at most {MAX_SEARCH_TEXT_BYTES} bytes)."
    if problem:
        s.search_results = SearchResults(text, target, sender, pending=False, error=problem)
        s.emit(ChangeKind.SEARCH)
        s.error(problem)
        return False
    results = SearchResults(text, target, sender)
    s.search_results = results
    _ask(s, results, None)
    return True


def search_more(s: Session) -> bool:
    """The next (older) page of the current search; False when there is none to ask for."""
    results = s.search_results
    if results is None or results.pending or not results.more or can_search(s):
        return False
    results.pending = True
    _ask(s, results, results.oldest)
    return True


def _ask(s: Session, results: SearchResults, before: datetime | None) -> None:
    s.send("SEARCH", search_attributes(results.text, results.target, results.sender, before, SEARCH_PAGE))
    s.search_state.in_flight.append(results)
    s.emit(ChangeKind.SEARCH)


def start_batch(s: Session, ref: str) -> None:
    s.search_state.batches[ref] = []


def is_search_batch(s: Session, msg: Message) -> bool:
    return msg.tags.get("batch", "") in s.search_state.batches


def add_result(s: Session, msg: Message) -> None:
    """A PRIVMSG or NOTICE inside a search batch."""
    if len(msg.params) < 2:
        return
    target, text = msg.params[0], msg.params[1]
    nick = source_nick(msg.source)
    kind = LineKind.NOTICE if msg.command == "NOTICE" else LineKind.MESSAGE
    if text.startswith("\x01ACTION ") and kind is LineKind.MESSAGE:
        kind, text = LineKind.ACTION, text[len("\x01ACTION "):].rstrip("\x01")
    bare = target.lstrip(s.statusmsg) if s.statusmsg else target
    if s.is_channel(bare):
        buffer = bare
    elif s.is_me(nick) or not nick:
        buffer = target
    else:
        buffer = nick
    moment = parse_server_time(msg.tags.get("time", "")) or s.now()
    result = SearchResult(buffer, moment, nick, strip_formatting(text), msg.tags.get("msgid", ""), kind)
    s.search_state.batches[msg.tags["batch"]].append(result)


def end_batch(s: Session, ref: str) -> bool:
    """The end of a search batch: its results go to the request it answers. False when ``ref`` is none."""
    found = s.search_state.batches.pop(ref, None)
    if found is None:
        return False
    if not s.search_state.in_flight:
        return True  # an answer to nothing we asked (another client's library on this connection?)
    results = s.search_state.in_flight.popleft()
    results.pending = False
    fresh = []
    for result in sorted(found, key=lambda r: r.time, reverse=True):
        if result.msgid and result.msgid in results.msgids:
            continue
        if result.msgid:
            results.msgids.add(result.msgid)
        fresh.append(result)
    results.results.extend(fresh)
    # A full page may have older ones behind it; a page that brought nothing new ends the paging (the
    # server keeps answering the same messages at one instant).
    results.more = len(found) >= SEARCH_PAGE and bool(fresh)
    if results is s.search_results:
        s.emit(ChangeKind.SEARCH)
    return True


def search_failed(s: Session, text: str) -> None:
    """FAIL SEARCH: the oldest request in flight is over."""
    if not s.search_state.in_flight:
        return
    results = s.search_state.in_flight.popleft()
    results.pending = False
    results.more = False
    results.error = text or "The server could not run the search."
    if results is s.search_results:
        s.emit(ChangeKind.SEARCH)


def jump_to(s: Session, result: SearchResult) -> bool:
    """Show ``result`` in its buffer: at once when the line is there, else after CHATHISTORY AROUND.

    Emits :attr:`ChangeKind.FOCUS` (the buffer's key, the msgid) when the line is in the buffer. False
    when it cannot be fetched (no msgid, no chathistory, not connected): the buffer is shown all the same.
    """
    from salotto.clients.core import history

    buf = s.open_buffer(result.buffer, BufferKind.CHANNEL if s.is_channel(result.buffer) else BufferKind.QUERY)
    key = s.key(buf.name)
    s.activate(key)
    if result.msgid and buf.find(result.msgid) is not None:
        s.search_state.jump = None
        s.emit(ChangeKind.FOCUS, key, buf.find(result.msgid))
        return True
    if not result.msgid or not s.registered or not history.history_cap(s):
        s.error("This message cannot be fetched from the server's history here.", buf.name)
        return False
    s.search_state.jump = (key, result.msgid)
    if key not in s.history.pending:  # else asked once that reply is in (batches name no request)
        history.request_around(s, buf.name, result.msgid, AROUND_LINES)
    return True


def history_arrived(s: Session, key: str, around: bool) -> None:
    """A history reply for ``key`` was merged: focus the message jumped to when it came, or ask for it.

    ``around``: the reply was our CHATHISTORY AROUND (else the backlog or older lines, which may hold it).
    """
    from salotto.clients.core import history

    jump = s.search_state.jump
    if jump is None or jump[0] != key:
        return
    buf = s.buffers.get(key)
    line = buf.find(jump[1]) if buf is not None else None
    if line is None and not around and buf is not None:
        history.request_around(s, buf.name, jump[1], AROUND_LINES)
        return
    s.search_state.jump = None
    if line is None:
        s.error("The message is no longer in the server's history.", buf.name if buf is not None else None)
        return
    s.emit(ChangeKind.FOCUS, key, line)
