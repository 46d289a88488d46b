"""SEARCH (soju.im/search, https://codeberg.org/emersion/soju/src/branch/master/doc/ext/search.md):
full-text search over the history the user may read, newest matches first.

``SEARCH <attributes>``, the attributes as message tags are written (``text=fast\\sfood;in=#chan;limit=20``):
``in`` (a channel the user is in, or a nick: their private conversation), ``from`` (the nick it was sent
with), ``after`` and ``before`` (server-time timestamps, both inclusive), ``text`` (every word must be
in the message; words are matched whole, case and accents folded) and ``limit``. The answer is the newest
``limit`` matches at or before ``before`` (and at or after ``after``), oldest first, in a ``soju.im/search``
batch, each line as CHATHISTORY sends it (time, msgid and account tags). Without ``in``: every channel the
user is in and its own private conversations, each from the time CHATHISTORY would let it read there
(:func:`~salotto.server.handlers.history.readable_since`).

The search runs on the history readers (``Store.read``), at most ``search_max_running`` at once in the
whole server (the others wait their turn, so CHATHISTORY always has a reader, and one that waited
``search_timeout_ms`` for it is answered TEMPORARILY_UNAVAILABLE), each stopped after
``search_timeout_ms``; an address runs at most ``search_per_ip`` per ``search_window_s``. The
connection's later commands wait for the answer (``ctx.wait``), as for CHATHISTORY.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from salotto.proto.casemap import casefold
from salotto.proto.message import parse_tags
from salotto.proto.names import CHANTYPES
from salotto.proto.numbers import parse_positive_int
from salotto.server.flood import Throttle, ip_key
from salotto.server.handlers.history import (
    _answer_in_batch,
    _history_line,
    _resolve_target,
    _within_budget,
    history_identity,
    parse_server_time,
    readable_since,
)
from salotto.storage.base import HistoryMessage
from salotto.storage.outcome import Outcome
from salotto.storage.search import SearchInvalid, SearchQuery, SearchTimeout, words

if TYPE_CHECKING:
    from salotto.server.client import Client
    from salotto.server.context import Context
    from salotto.server.state import Server

__all__ = ["SEARCH_BATCH", "SEARCH_CAP", "SearchGate", "handle_search"]

log = logging.getLogger("salotto.history")

SEARCH_CAP = "soju.im/search"
SEARCH_BATCH = "soju.im/search"


class SearchBusy(Exception):
    """The search waited ``search_timeout_ms`` for its turn: it is answered without being run."""


class SearchGate:
    """The server's searches: how many run, who waits for a turn, and each address's allowance."""

    def __init__(self) -> None:
        self.running = 0
        self.waiting: deque[tuple[Client, Callable[[], None], Callable[[], None], float]] = deque()
        self.per_ip = Throttle()

    def enter(self, server: Server, session: Client, start: Callable[[], None], give_up: Callable[[], None]) -> None:
        """Run ``start`` now if fewer than ``search_max_running`` searches run, else when one ends
        (:meth:`leave`); a connection gone meanwhile loses its turn, and one that waited longer than
        ``search_timeout_ms`` gets ``give_up`` instead (its connection's next lines wait meanwhile: the
        wait is bounded even when slow searches keep the turns busy)."""
        if self.running < server.config.search_max_running:
            self.running += 1
            start()
        else:
            deadline = server.clock() + server.config.search_timeout_ms / 1000
            self.waiting.append((session, start, give_up, deadline))

    def leave(self, server: Server) -> None:
        self.running -= 1
        while self.waiting and self.running < server.config.search_max_running:
            session, start, give_up, deadline = self.waiting.popleft()
            if session.quitting:
                continue
            if server.clock() > deadline:
                give_up()
                continue
            self.running += 1
            start()


def _gate(server: Server) -> SearchGate:
    gate = server.search_gate
    if gate is None:
        gate = server.search_gate = SearchGate()
    return gate


def handle_search(ctx: Context) -> None:
    server = ctx.server
    config = server.config
    params = ctx.msg.params
    if not params or not params[0]:
        ctx.fail("SEARCH", "NEED_MORE_PARAMS", description="Missing search attributes")
        return
    history = server.history
    if history is None or not config.search:
        ctx.fail("SEARCH", "INTERNAL_ERROR", description="Search is off on this server")
        return
    attrs = parse_tags(params[0])
    client = ctx.client
    limit = config.search_default_limit
    if "limit" in attrs:
        asked = parse_positive_int(attrs["limit"])
        if asked is None:
            ctx.fail("SEARCH", "INVALID_PARAMS", "limit", description="Invalid limit")
            return
        limit = asked
    limit = min(limit, config.search_max_limit)
    bounds: dict[str, float] = {}
    for name in ("after", "before"):
        if name in attrs:
            parsed = parse_server_time(attrs[name])
            if parsed is None:
                ctx.fail("SEARCH", "INVALID_PARAMS", name, description="Invalid timestamp")
                return
            bounds[name] = parsed
    found_words: tuple[str, ...] = ()
    if "text" in attrs:
        found_words = words(attrs["text"])
        if not found_words:
            ctx.fail("SEARCH", "INVALID_PARAMS", "text", description="No word to search for")
            return
    sender = None
    if "from" in attrs:
        if not attrs["from"] or " " in attrs["from"]:
            ctx.fail("SEARCH", "INVALID_PARAMS", "from", description="Invalid nick")
            return
        sender = casefold(attrs["from"])
    # Where the user may look, and the name each target is shown by.
    shown: dict[str, str] = {}
    party = None
    party_since = 0.0
    if "in" in attrs:
        resolved = _resolve_target(ctx, attrs["in"])
        if resolved is None:
            ctx.fail("SEARCH", "INVALID_PARAMS", "in", description="No such channel or nick")
            return
        key, name, since = resolved
        targets = {key: since}
        shown[key] = name
    else:
        targets = {}
        for channel in client.channels.values():
            targets[channel.name_cf] = readable_since(server, client, channel)
            shown[channel.name_cf] = channel.name
        party = history_identity(server, client)
        party_since = readable_since(server, client, None)
    wait = _gate(server).per_ip.take(ip_key(client.ip), config.search_per_ip, config.search_window_s, server.clock())
    if wait > 0:
        ctx.fail("SEARCH", "TEMPORARILY_UNAVAILABLE",
                 description=f"Too many searches, try again in {max(1, round(wait))} seconds")
        return
    query = SearchQuery(targets, found_words, sender, bounds.get("after"), bounds.get("before"), limit,
                        party, party_since, config.search_timeout_ms / 1000)
    def send(outcome: Outcome[list[HistoryMessage]]) -> None:
        _send_results(ctx, outcome, shown)

    answer = ctx.wait(send)
    gate = _gate(server)

    def done(outcome: Outcome[list[HistoryMessage]]) -> None:
        gate.leave(server)
        answer(outcome)

    def start() -> None:
        try:
            history.read(lambda storage: storage.search(query), done)
        except Exception as exc:  # the store is closing: answered, and the turn handed on
            done(Outcome(error=exc))

    gate.enter(server, ctx.session, start, lambda: answer(Outcome(error=SearchBusy())))


def _shown_name(server: Server, client: Client, target: str, shown: dict[str, str]) -> str:
    """The name a result's target is shown by: the channel's, or the other side of a private conversation."""
    name = shown.get(target)
    if name is not None:
        return name
    if target[:1] in CHANTYPES:
        return target
    me = casefold(history_identity(server, client) or client.nick)
    first, _, second = target.partition(" ")
    other = second if first == me else first
    return server.parties.name_of(other) or other


def _send_results(ctx: Context, outcome: Outcome[list[HistoryMessage]], shown: dict[str, str]) -> None:
    server = ctx.server
    client = ctx.client
    error = outcome.error
    if error is not None:
        if isinstance(error, SearchBusy):
            ctx.fail("SEARCH", "TEMPORARILY_UNAVAILABLE", description="Too many searches at once, try again")
        elif isinstance(error, SearchTimeout):
            ctx.fail("SEARCH", "INTERNAL_ERROR", description="The search took too long; narrow it down")
        elif isinstance(error, SearchInvalid):
            ctx.fail("SEARCH", "INVALID_PARAMS", "text", description="Cannot search for that text")
        else:
            log.error("could not search the history for %s: %s", client.nick, error)
            ctx.fail("SEARCH", "INTERNAL_ERROR", description="The search could not be run")
        return
    flags = ctx.session.tag_flags
    messages = outcome.value or []
    lines = _within_budget(
        server, messages,
        lambda msg: _history_line(server, msg, client, _shown_name(server, client, msg.target, shown), flags),
        newest=True,
    )
    _answer_in_batch(ctx, SEARCH_BATCH, lines)
