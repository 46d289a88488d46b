"""History as JSON lines (``salotto export``): one object per message, oldest first.

Each line: ``{"msgid", "time", "sender", "account", "command", "text", "tags"}``; ``time`` is ISO-8601 in
UTC with milliseconds, as the ``server-time`` tag writes it; ``account`` is null for a sender not logged
in; ``tags`` the client tags the message carried (``{}`` for most). Messages still waiting in the history
journals (those of the last moment, while the server runs) are included: the journals are read before
the database, as :mod:`salotto.storage.backup` does, so nothing delivered before the export began is
missing.

The export reads through the :class:`~salotto.storage.base.Storage` interface (CHATHISTORY's BETWEEN,
page by page), so it works on any backend; it runs with the file access of whoever runs it, and checks
no IRC permission: it is the operator's tool.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Final

from salotto.storage.base import HistoryMessage, Ref, Storage

__all__ = ["PAGE_MESSAGES", "export_history", "format_time", "message_json", "parse_time"]

# Messages per storage query; each page starts after the last message of the one before.
PAGE_MESSAGES: Final = 1000
# Bounds of "no bound": before every message, after every message (year 2286; any finite time works).
_EARLIEST_MS: Final = -1
_LATEST_MS: Final = 10**13


def parse_time(text: str) -> float:
    """Epoch seconds of an ISO-8601 time or date (``2026-11-24``, ``2026-11-24T18:00``,
    ``2026-11-24T18:00:00+01:00``); without an offset it is UTC. ValueError if it is none of those."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def format_time(time: float) -> str:
    """``2026-11-24T18:00:00.123Z``: the ``server-time`` form, to the stored millisecond."""
    ms = round(time * 1000)
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def message_json(message: HistoryMessage) -> str:
    """One message as one line of JSON (no newline)."""
    return json.dumps(
        {
            "msgid": message.msgid,
            "time": format_time(message.time),
            "sender": message.sender,
            "account": message.account,
            "command": message.command,
            "text": message.text,
            "tags": dict(message.tags),
        },
        ensure_ascii=False,
    )


def export_history(
    storage: Storage,
    waiting: Iterable[HistoryMessage],
    target: str,
    write: Callable[[str], object],
    since: float | None = None,
    until: float | None = None,
) -> int:
    """Write every message of ``target`` (a casefolded channel name or a conversation key) with
    ``since <= time < until`` as a line of JSON to ``write``; returns how many.

    ``waiting``: the journals' messages, read before ``storage`` was opened; those the database does not
    have yet come last (they are the newest)."""
    low = _EARLIEST_MS if since is None else round(since * 1000)
    high = _LATEST_MS if until is None else round(until * 1000)
    extra = {m.msgid: m for m in waiting if m.target == target and low <= round(m.time * 1000) < high}
    for msgid in storage.redacted(extra) if extra else ():  # a journal may hold a message since redacted
        del extra[msgid]
    # BETWEEN is strictly between its bounds: one millisecond before ``since`` includes ``since`` itself.
    start = Ref.by_time((low - 1) / 1000)
    end = Ref.by_time(high / 1000)
    written = 0
    while True:
        page = storage.between(target, start, end, PAGE_MESSAGES)
        for message in page:
            extra.pop(message.msgid, None)
            write(message_json(message))
            written += 1
        if len(page) < PAGE_MESSAGES:
            break
        start = Ref.by_msgid(page[-1].msgid)
    for message in sorted(extra.values(), key=lambda m: m.time):
        write(message_json(message))
        written += 1
    return written
