"""Chat history for the session: the backlog on join, older lines on request, the batches that carry them.

Implements the client side of https://ircv3.net/specs/extensions/chathistory (``LATEST`` on join,
``BEFORE`` when the user scrolls to the top of a buffer) over https://ircv3.net/specs/extensions/batch.
Sans-I/O like the session: it queues lines with ``Session.send`` and reports with ``Session.emit``.

A reply batch names its target but not the request it answers, so each buffer has at most one request
in flight: the next batch for that target is its reply.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from salotto.clients.core import search
from salotto.clients.core.model import MAX_LINES_PER_BUFFER, Buffer, BufferKind, ChangeKind, Line, LineKind
from salotto.clients.core.text import format_server_time
from salotto.proto import Message

if TYPE_CHECKING:
    from salotto.clients.core.session import Session

__all__ = ["GAP_TEXT", "HISTORY_BATCH_TYPES", "START_OF_HISTORY", "HistoryState", "Request", "fill_gap"]

HISTORY_BATCH_TYPES = frozenset({"chathistory", "draft/chathistory"})
# Lines a server keeps in its history: their msgid is a reference it can resolve. Events (JOIN, MODE...)
# may carry a msgid the history store has never seen, and BEFORE such a msgid would come back empty.
STORED_KINDS = frozenset({LineKind.MESSAGE, LineKind.ACTION, LineKind.NOTICE})
# The note shown once above the oldest line when the server has nothing older.
START_OF_HISTORY = "Start of history."
# The line between an old stretch of history jumped to and the newer lines loaded before it.
GAP_TEXT = "Newer messages are not loaded here: click to load them."


class Request(enum.Enum):
    LATEST = "LATEST"  # the backlog on join: merged by time
    BEFORE = "BEFORE"  # older lines on scroll-up: inserted at the top
    AROUND = "AROUND"  # the lines around a message jumped to (a search result): merged by time
    BETWEEN = "BETWEEN"  # the lines of a gap (after AROUND), oldest first: merged by time


@dataclass(slots=True)
class _Batch:
    kind: str
    target: str
    lines: list[tuple[str, Line]] = field(default_factory=list)
    # Reactions replayed with the lines: (buffer name, msgid, emoji, nick, the reaction's msgid, unreact).
    reactions: list[tuple[str, str, str, str, str, bool]] = field(default_factory=list)


@dataclass(slots=True)
class HistoryState:
    """What one connection has open: batches being received, and the request in flight per buffer key."""

    batches: dict[str, _Batch] = field(default_factory=dict)
    pending: dict[str, Request] = field(default_factory=dict)


def history_cap(s: Session) -> str:
    """The chathistory capability in use, or "" when history cannot be asked for (needs batch too)."""
    if "batch" not in s.caps_enabled:
        return ""
    for cap in ("chathistory", "draft/chathistory"):
        if cap in s.caps_enabled:
            return cap
    return ""


def _limit(s: Session, room: int = MAX_LINES_PER_BUFFER) -> int:
    """Lines to ask for: the configured amount, capped by ISUPPORT CHATHISTORY= and the buffer's room."""
    limit = min(s.config.history_lines, room)
    server_max = s.isupport.get("CHATHISTORY", "")
    if server_max.isdigit() and int(server_max) > 0:
        limit = min(limit, int(server_max))
    return max(limit, 1)


def request_latest(s: Session, channel: str) -> None:
    """CHATHISTORY LATEST on join: the last lines, or those since the newest one already shown."""
    if not history_cap(s):
        return
    buf = s.get_buffer(channel)
    reference = "*"
    if buf is not None:
        known = [ln for ln in buf.lines if ln.msgid and ln.kind in STORED_KINDS]
        if known:
            reference = f"msgid={known[-1].msgid}"
    s.send("CHATHISTORY", "LATEST", channel, reference, str(_limit(s)))
    s.history.pending[s.key(channel)] = Request.LATEST


def request_around(s: Session, name: str, msgid: str, lines: int) -> None:
    """CHATHISTORY AROUND a message (a search result to show); merged by time like the backlog."""
    s.send("CHATHISTORY", "AROUND", name, f"msgid={msgid}", str(_limit(s, lines)))
    s.history.pending[s.key(name)] = Request.AROUND


def oldest_reference(s: Session, buf: Buffer) -> str:
    """``msgid=`` of the oldest stored line, else ``timestamp=`` of the oldest line (now if none)."""
    for ln in buf.lines:
        if ln.msgid and ln.kind in STORED_KINDS:
            return f"msgid={ln.msgid}"
    return "timestamp=" + format_server_time(buf.lines[0].time if buf.lines else s.now())


def request_older(s: Session, key: str) -> bool:
    """CHATHISTORY BEFORE the oldest line of buffer ``key``; False when nothing was asked.

    Nothing is asked for the server buffer, a channel we are not in, without the capability, while a
    request for the buffer is in flight, once the start of history was reached, or when the buffer is full.
    """
    buf = s.buffers.get(key)
    if buf is None or buf.kind is BufferKind.SERVER or not s.registered or not history_cap(s):
        return False
    if buf.at_start_of_history or key in s.history.pending:
        return False
    if buf.kind is BufferKind.CHANNEL and not buf.joined:
        return False  # the server answers only for channels we are in
    room = MAX_LINES_PER_BUFFER - len(buf.lines)
    if room <= 0:
        return False  # older lines would push out the newest ones
    s.send("CHATHISTORY", "BEFORE", buf.name, oldest_reference(s, buf), str(_limit(s, room)))
    s.history.pending[key] = Request.BEFORE
    return True


def start_batch(s: Session, ref: str, kind: str, target: str) -> None:
    if kind in HISTORY_BATCH_TYPES:
        s.history.batches[ref] = _Batch(kind, target)


def batch_of(s: Session, msg: Message) -> str:
    """The history batch ``msg`` belongs to, or ""."""
    ref = msg.tags.get("batch", "")
    return ref if ref in s.history.batches else ""


def end_batch(s: Session, ref: str) -> None:
    batch = s.history.batches.pop(ref, None)
    if batch is None:
        return
    key = s.key(batch.target) if batch.target else ""
    request = s.history.pending.pop(key, None) if key else None
    if request is Request.BETWEEN:
        _fill_gap_arrived(s, key, [line for _name, line in batch.lines], batch.reactions)
        return
    newest_before = _oldest_stored_time(s, key) if request is Request.AROUND else None
    if request is Request.BEFORE:
        _insert_older(s, key, [line for _name, line in batch.lines], batch.reactions)
        search.history_arrived(s, key, False)
        return
    by_name: dict[str, list[Line]] = {}
    for name, line in batch.lines:
        by_name.setdefault(name, []).append(line)
    changed = set()
    for name, lines in by_name.items():
        buf = s.open_buffer(name)
        if buf.merge_history(lines):
            changed.add(name)
    changed |= _apply_reactions(s, batch.reactions)
    for name in changed:
        s.emit(ChangeKind.RELOAD, s.key(name))
    if request is Request.AROUND and newest_before is not None:
        _mark_gap(s, key, newest_before)
    if request is not None:
        search.history_arrived(s, key, request is Request.AROUND)


def _oldest_stored_time(s: Session, key: str) -> datetime | None:
    """The time of the oldest stored line of buffer ``key`` (before an AROUND merge), None if none."""
    buf = s.buffers.get(key)
    if buf is None:
        return None
    return next((ln.time for ln in buf.lines if ln.msgid and ln.kind in STORED_KINDS), None)


def _mark_gap(s: Session, key: str, loaded_from: datetime) -> None:
    """After AROUND: when what came is all older than what was loaded, a GAP line goes between them."""
    buf = s.buffers.get(key)
    if buf is None:
        return
    older = [ln for ln in buf.lines if ln.kind in STORED_KINDS and ln.time < loaded_from]
    if not older or any(ln.kind is LineKind.GAP for ln in buf.lines):
        return
    moment = older[-1].time + timedelta(microseconds=1)
    buf.merge_history([Line(moment, LineKind.GAP, GAP_TEXT)])
    s.emit(ChangeKind.RELOAD, key)


def fill_gap(s: Session, key: str) -> bool:
    """Load the messages of buffer ``key``'s gap (CHATHISTORY BETWEEN); False when nothing was asked."""
    buf = s.buffers.get(key)
    if buf is None or not s.registered or not history_cap(s) or key in s.history.pending:
        return False
    gap = next((ln for ln in buf.lines if ln.kind is LineKind.GAP), None)
    if gap is None:
        return False
    before = [ln for ln in buf.lines if ln.msgid and ln.kind in STORED_KINDS and ln.time < gap.time]
    after = [ln for ln in buf.lines if ln.msgid and ln.kind in STORED_KINDS and ln.time > gap.time]
    if not before or not after:
        _remove_gap(s, key)
        return False
    s.send("CHATHISTORY", "BETWEEN", buf.name, f"msgid={before[-1].msgid}", f"msgid={after[0].msgid}",
           str(_limit(s)))
    s.history.pending[key] = Request.BETWEEN
    return True


def _remove_gap(s: Session, key: str) -> None:
    buf = s.buffers.get(key)
    if buf is not None:
        buf.lines = [ln for ln in buf.lines if ln.kind is not LineKind.GAP]
        s.emit(ChangeKind.RELOAD, key)


def _fill_gap_arrived(
    s: Session, key: str, lines: list[Line], reactions: list[tuple[str, str, str, str, str, bool]]
) -> None:
    """The reply to BETWEEN: merged; the gap moves past it when a full page came, else it is closed."""
    buf = s.buffers.get(key)
    if buf is None:
        return
    buf.merge_history(lines)
    _apply_reactions(s, reactions)
    gap = next((ln for ln in buf.lines if ln.kind is LineKind.GAP), None)
    stored = [ln for ln in lines if ln.kind in STORED_KINDS]
    if gap is not None and stored and len(lines) >= _limit(s):
        gap.time = max(ln.time for ln in stored) + timedelta(microseconds=1)
        buf.lines.sort(key=lambda ln: ln.time)
        s.emit(ChangeKind.RELOAD, key)
    else:
        _remove_gap(s, key)


def _apply_reactions(s: Session, reactions: list[tuple[str, str, str, str, str, bool]]) -> set[str]:
    """Count a replay's reactions on their messages; the names of the buffers that changed."""
    changed: set[str] = set()
    for name, msgid, emoji, nick, reaction_msgid, remove in reactions:
        buf = s.get_buffer(name)
        if buf is None:
            continue
        line = buf.unreact(msgid, emoji, nick) if remove else buf.react(msgid, emoji, nick, reaction_msgid)
        if line is not None:
            changed.add(buf.name)
    return changed


def _insert_older(
    s: Session, key: str, lines: list[Line], reactions: list[tuple[str, str, str, str, str, bool]]
) -> None:
    """The reply to BEFORE: older lines go on top; nothing new means the start of history."""
    buf = s.buffers.get(key)
    if buf is None:  # closed while the request was in flight
        return
    added = buf.prepend_history(lines)
    _apply_reactions(s, reactions)  # on the lines just added, before they are drawn
    if not added:
        # An empty reply (or only lines already shown, which asking again would not change).
        buf.at_start_of_history = True
        moment = buf.lines[0].time if buf.lines else s.now()
        added = buf.prepend_history([Line(moment, LineKind.INFO, START_OF_HISTORY)])
    if added:
        s.emit(ChangeKind.PREPEND, key, lines=added)


def history_failed(s: Session, context: list[str]) -> None:
    """FAIL CHATHISTORY: the request for the named target is over (all of them if none is named)."""
    keys = {s.key(param) for param in context} & s.history.pending.keys()
    if not keys:
        keys = set(s.history.pending)
    for key in keys:
        jump = s.search_state.jump
        if s.history.pending.pop(key) is Request.AROUND and jump is not None and jump[0] == key:
            s.search_state.jump = None
