"""Full-text search over history (soju.im/search), what both backends share: the query, how its text is
cut into words, and how the newest matches are collected page by page.

A search reads only the targets the caller names (the channels the user may read, each from the time it
may read it on) and the private conversations of one history identity; the backend checks every row it
returns against them again, so that no index can hand out a message of a target nobody asked for.
Words are matched whole (case and accents folded), every word must be in the message; user text is never
interpreted as query syntax: each word goes to the engine quoted (SQLite FTS5) or through
``plainto_tsquery`` (PostgreSQL).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from salotto.proto.casemap import casefold
from salotto.storage.base import HistoryMessage, StorageError

__all__ = ["SearchInvalid", "SearchQuery", "SearchTimeout", "collect_newest", "target_token", "words"]

# What a word is: runs of letters, digits and private-use characters (the Unicode categories SQLite's
# unicode61 tokenizer takes as token characters); anything else separates words.
_WORD_CATEGORIES: Final = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "No", "Co"})


class SearchTimeout(StorageError):
    """The search ran past its time (``search_timeout_ms``) and was stopped."""


class SearchInvalid(StorageError):
    """The search engine refused the words (a word the engine cuts where this module does not)."""


def words(text: str) -> tuple[str, ...]:
    """The words of ``text`` as the index has them (each once, in order); () when there is none."""
    found: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch.isascii():
            if ch.isalnum():
                current.append(ch)
                continue
        elif unicodedata.category(ch) in _WORD_CATEGORIES:
            current.append(ch)
            continue
        if current:
            found.append("".join(current))
            current = []
    if current:
        found.append("".join(current))
    return tuple(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What to look for, and where the caller may look.

    ``targets``: the targets to search (casefolded channel names, conversation keys), each with the oldest
    time (epoch seconds) the caller may read there. ``party``: with it, the private conversations of that
    history identity are searched too, from ``party_since`` on. ``words``: every one must be in the text
    (see :func:`words`); ``sender``: the casefolded nick the message was sent with. ``after`` and
    ``before``: at or after, at or before (epoch seconds). The newest ``limit`` matches are returned.
    """

    targets: Mapping[str, float]
    words: tuple[str, ...] = ()
    sender: str | None = None
    after: float | None = None
    before: float | None = None
    limit: int = 50
    party: str | None = None
    party_since: float = 0.0
    timeout_s: float = 1.0


def collect_newest(
    fetch: Callable[[object | None, int], list[tuple[object, HistoryMessage]]],
    readable: Mapping[str, float],
    limit: int,
    page: int,
    sender: str | None = None,
) -> list[HistoryMessage]:
    """The newest ``limit`` messages that ``fetch`` finds, oldest first.

    ``fetch(below, n)`` returns up to ``n`` matches, newest first, each with its position, strictly below
    the position ``below`` (None: from the newest). A match outside ``readable`` (target -> oldest time
    the caller may read there), or not sent by ``sender`` (a casefolded nick) when given, is dropped, and
    the next page asked for, until ``limit`` are kept or ``fetch`` has no more."""
    kept: list[HistoryMessage] = []
    below: object | None = None
    while len(kept) < limit:
        rows = fetch(below, page)
        for _, message in rows:
            since = readable.get(message.target)
            if since is not None and message.time >= since and (sender is None or sender_of(message) == sender):
                kept.append(message)
                if len(kept) == limit:
                    break
        if len(rows) < page:
            break
        below = rows[-1][0]
    kept.reverse()
    return kept


def sender_of(message: HistoryMessage) -> str:
    """The casefolded nick ``message`` was sent with."""
    return casefold(message.sender.partition("!")[0])


def target_token(target: str) -> str:
    """A target as one opaque word of the index's ``tgt`` column: ``t`` and the name's UTF-8 in hex (as the
    migration's SQL writes it), so that no name can read as another or as words."""
    return "t" + target.encode("utf-8", "replace").hex()

