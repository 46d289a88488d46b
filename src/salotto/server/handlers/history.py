"""CHATHISTORY (https://ircv3.net/specs/extensions/chathistory) and the replay on join for clients
that cannot ask for history themselves."""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from salotto.proto.casemap import casefold
from salotto.proto.framing import encode_wire
from salotto.proto.names import CHANTYPES, split_userhost
from salotto.proto.numbers import parse_positive_int
from salotto.server.channel import Channel
from salotto.server.client import TAG_SERVER_TIME, Client
from salotto.server.context import Context, add_tag, in_outer_batch
from salotto.server.fanout import Outgoing, format_server_time
from salotto.server.multiline import STORED_CONCAT, MultilineOutgoing, stored_lines
from salotto.storage.base import HistoryMessage, Ref, Storage, TargetListing, conversation_key
from salotto.storage.outcome import Outcome

if TYPE_CHECKING:
    from salotto.server.state import Server

log = logging.getLogger("salotto.history")

CHATHISTORY_CAP = "draft/chathistory"
_SUBCOMMANDS = frozenset({"LATEST", "BEFORE", "AFTER", "AROUND", "BETWEEN", "TARGETS"})


def _parse_ref(text: str, *, star: bool = False) -> Ref | str | None:
    """``msgid=...`` / ``timestamp=...`` -> Ref; ``*`` -> None when allowed; anything else -> "bad"."""
    if star and text == "*":
        return None
    kind, _, value = text.partition("=")
    if kind == "msgid" and value:
        return Ref.by_msgid(value)
    if kind == "timestamp" and value:
        parsed = parse_server_time(value)
        if parsed is not None:
            return Ref.by_time(parsed)
    return "bad"


def parse_server_time(text: str) -> float | None:
    """``2026-11-24T12:00:00.123Z`` -> epoch seconds, or None."""
    try:
        main, _, rest = text.partition(".")
        fraction = rest.rstrip("Z") if rest else "0"
        if not text.endswith("Z") or not fraction.isascii() or not fraction.isdigit():
            return None
        base = calendar.timegm(time.strptime(main.rstrip("Z"), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
    return base + int(fraction[:3].ljust(3, "0")) / 1000


def handle_chathistory(ctx: Context) -> None:
    # CHATHISTORY <subcommand> <target> <reference> [<reference>] <limit>
    #             TARGETS <timestamp> <timestamp> <limit>
    server = ctx.server
    params = ctx.msg.params
    sub = params[0].upper()
    if sub not in _SUBCOMMANDS:
        ctx.fail("CHATHISTORY", "INVALID_PARAMS", params[0], description="Unknown subcommand")
        return
    needed = 5 if sub == "BETWEEN" else 4
    if len(params) < needed:
        ctx.fail("CHATHISTORY", "NEED_MORE_PARAMS", sub, description="Missing parameters")
        return
    asked = parse_positive_int(params[needed - 1])
    if asked is None:
        ctx.fail("CHATHISTORY", "INVALID_PARAMS", sub, params[needed - 1], description="Invalid limit")
        return
    limit = min(asked, server.config.chathistory_max_lines)
    history = server.history
    if history is None:
        ctx.fail("CHATHISTORY", "MESSAGE_ERROR", sub, description="History is off on this server")
        return
    if sub == "TARGETS":
        start, end = _parse_ref(params[1]), _parse_ref(params[2])
        if not isinstance(start, Ref) or not isinstance(end, Ref) or start.time is None or end.time is None:
            ctx.fail("CHATHISTORY", "INVALID_PARAMS", sub, description="TARGETS needs two timestamps")
            return
        _targets(ctx, start.time, end.time, limit)
        return
    resolved = _resolve_target(ctx, params[1])
    if resolved is None:
        ctx.fail("CHATHISTORY", "INVALID_TARGET", sub, params[1], description="No such channel or nick")
        return
    key, shown, since = resolved
    first = _parse_ref(params[2], star=sub == "LATEST")
    second = _parse_ref(params[3]) if sub == "BETWEEN" else None
    if first == "bad" or second == "bad":
        ctx.fail("CHATHISTORY", "INVALID_PARAMS", sub, description="Invalid message reference")
        return
    query = _query(sub, key, first, second, limit)
    # Which end of the answer to keep when it must be cut (see _within_budget): the one nearest the
    # first reference, where the client pages on from (BETWEEN with msgids: taken as paging forward).
    if sub == "BETWEEN":
        assert isinstance(first, Ref) and isinstance(second, Ref)
        newest = first.time is not None and second.time is not None and first.time > second.time
    else:
        newest = sub != "AFTER"
    history.read(query, ctx.wait(lambda outcome: _send_batch(ctx, shown, outcome, since, newest)))


def _query(
    sub: str, key: str, first: Ref | str | None, second: Ref | str | None, limit: int
) -> Callable[[Storage], list[HistoryMessage]]:
    """The storage call for a validated subcommand (``first`` is None only for LATEST *)."""
    if sub == "LATEST":
        after = first if isinstance(first, Ref) else None
        return lambda s: s.latest(key, limit, after=after)
    assert isinstance(first, Ref)
    if sub == "BETWEEN":
        assert isinstance(second, Ref)
        return lambda s: s.between(key, first, second, limit)
    ref = first
    if sub == "BEFORE":
        return lambda s: s.before(key, ref, limit)
    if sub == "AFTER":
        return lambda s: s.after(key, ref, limit)
    return lambda s: s.around(key, ref, limit)


def readable_since(server: Server, client: Client, channel: Channel | None) -> float:
    """The oldest history ``client`` may read in ``channel`` (None: its private conversations).

    A nick or a channel name alone is not proof of being the same person or room as before: whoever
    takes the nick ``alice`` must not read alice's private messages, whoever re-creates ``#secret``
    must not read the old one's. So:

    - private history: a logged-in client reads its account's conversations from the account's
      creation on; anyone else reads from its connection on (see :func:`history_identity`);
    - a registered channel: for those on its access list, from its registration on; for others, as
      any channel (its bans are not kept, so a banned nick could otherwise read it once it empties);
    - the autojoin channels are public by design and keep their whole history, across restarts;
    - any other channel: from its creation on.
    """
    if channel is None:
        return client.account_since if client.account is not None else client.signon
    if channel.permanent:
        return 0.0
    accounts = server.accounts
    registration = accounts.channels.get(channel.name_cf) if accounts is not None else None
    if registration is not None and accounts is not None and accounts.access_level(channel.name_cf, client.account):
        # Bans are not kept with a registered channel, so only its people read across its emptyings.
        return min(registration.registered, float(channel.created))
    return float(channel.created)


def history_identity(server: Server, client: Client) -> str | None:
    """Whose private history a client's messages belong to: its account when logged in, else its
    connection's token (salotto.server.parties), never its nick; None (nothing stored or readable)
    while it holds a registered nick it has not logged in to."""
    if client.account is not None:
        return client.account
    if client in server.nick_deadlines:
        return None
    accounts = server.accounts
    if accounts is not None and accounts.is_registered_cf(client.nick_cf or casefold(client.nick)):
        return None  # protected or not (the account may be newer than the nick change): not theirs
    parties = server.parties
    return parties.known.get(client) or parties.token(client)  # noted already: no need to make it again


def private_parties(server: Server, sender: Client, recipient: Client) -> tuple[str, str] | None:
    """The history identities of both sides of a private message being stored (sender first), as
    :func:`history_identity` gives them, a token noted for later (Parties.noted); None when either side
    has none. A token already noted (a conversation going on: Parties.known) is not noted again."""
    sender_id = history_identity(server, sender)
    if sender_id is None:
        return None
    recipient_id = history_identity(server, recipient)
    if recipient_id is None:
        return None
    parties = server.parties
    known = parties.known
    if sender.account is None and known.get(sender) != sender_id:
        parties.noted(sender, sender_id)
    if recipient.account is None and known.get(recipient) != recipient_id:
        parties.noted(recipient, recipient_id)
    return sender_id, recipient_id


def _party_of(server: Server, name: str) -> str:
    """The history identity behind a nick named in CHATHISTORY: whoever holds it now (an account, or a
    connection's token); else the account of that name, else the connection that last left with it."""
    holder = server.find_user(name)
    if holder is not None:
        return history_identity(server, holder) or name
    accounts = server.accounts
    if accounts is not None and accounts.is_registered(name):
        return name
    return server.parties.departed(name) or name


def _resolve_target(ctx: Context, name: str) -> tuple[str, str, float] | None:
    """The storage key of a target the client may read, its name as the client knows it, and the
    oldest time the client may read there."""
    server = ctx.server
    client = ctx.client
    if name[:1] in CHANTYPES:
        channel = server.find_channel(name)
        if channel is None or client not in channel:
            return None
        return channel.name_cf, channel.name, readable_since(server, client, channel)
    me = history_identity(server, client)
    if me is None or not name or any(ch in name for ch in " ,*?!@~"):
        return None
    return conversation_key(me, _party_of(server, name)), name, readable_since(server, client, None)


def _in_batch(server: Server, session: Client, kind: str, lines: list[bytes], label: str | None = None) -> bytes:
    """``lines`` (serialized, CRLF included; an entry may be several lines, a multiline message) as one
    batch of ``kind`` (its type and parameters), with ``label`` on its start, for a client that negotiated
    batch; the lines alone for one that did not (a label needs the batch to go on). A multiline message's
    own batch nests inside it."""
    if "batch" not in session.caps:
        return b"".join(lines)
    ref = server.new_batch_id()
    start = encode_wire(f":{server.name} BATCH +{ref} {kind}\r\n")
    if label:
        start = add_tag(start, label)
    return start + b"".join(in_outer_batch(lines, "batch=" + ref)) + f":{server.name} BATCH -{ref}\r\n".encode()


def _history_line(server: Server, msg: HistoryMessage, client: Client, shown: str, flags: int) -> bytes:
    """``msg`` as ``client`` (the user) sees it, for a connection whose tag_flags are ``flags``."""
    if shown[:1] in CHANTYPES:
        target = shown
    else:
        # A private message went to whichever side did not send it.
        sender_nick = split_userhost(msg.sender).nick
        mine = casefold(sender_nick) == client.nick_cf or (
            msg.account is not None and client.account is not None and casefold(msg.account) == casefold(client.account)
        )
        target = shown if mine else client.nick
    text = msg.text
    lines = stored_lines(text, msg.tags)
    if lines is not None:
        text = lines[0][0]
    if not flags & TAG_SERVER_TIME:
        # Without server-time the client would show an old message as new: say when it was
        # (inside a CTCP ACTION, so that /me stays an action).
        stamp = time.strftime("[%Y-%m-%d %H:%M UTC] ", time.gmtime(msg.time))
        action = "\x01ACTION "
        text = action + stamp + text[len(action):] if text.startswith(action) else stamp + text
    client_tags = dict(msg.tags) if msg.tags else None
    if lines is None:
        params = [target] if msg.command == "TAGMSG" else [target, text]
        out = Outgoing(msg.sender, msg.command, params, wall=msg.time, msgid=msg.msgid, account=msg.account,
                       client_tags=client_tags)
    else:
        if client_tags is not None:
            client_tags.pop(STORED_CONCAT, None)
        lines[0] = (text, False)
        out = MultilineOutgoing(msg.sender, msg.command, target, lines, wall=msg.time, batch_id=server.new_batch_id(),
                                max_line_bytes=server.config.max_line_bytes, msgid=msg.msgid, account=msg.account,
                                client_tags=client_tags)
    return out.variant(flags)


def _send_batch(ctx: Context, shown: str, outcome: Outcome[list[HistoryMessage]], since: float,
                newest: bool) -> None:
    client = ctx.client
    if outcome.error is not None:
        log.error("could not read the history of %s for %s: %s", shown, client.nick, outcome.error)
        ctx.fail("CHATHISTORY", "MESSAGE_ERROR", shown, description="Could not read history")
        return
    server = ctx.server
    flags = ctx.session.tag_flags
    messages = [msg for msg in outcome.value or [] if msg.time >= since]
    lines = _within_budget(server, messages, lambda msg: _history_line(server, msg, client, shown, flags),
                           newest=newest)
    _answer_in_batch(ctx, f"chathistory {shown}", lines)


def _within_budget(server: Server, messages: list[HistoryMessage], render: Callable[[HistoryMessage], bytes], *,
                   newest: bool) -> list[bytes]:
    """The lines of a history answer (oldest first) that fit in half of ``max_sendq_bytes``: the newest
    (``newest``: LATEST, BEFORE...) or the oldest (AFTER), at least one. A multiline message is one entry of
    up to ``multiline_max_bytes`` and a line each: a hundred of them could pass the reader's send queue and
    have it disconnected; it gets fewer than it asked for instead, and pages on from the last it got.
    Messages are rendered from the kept end and no further than the budget: what would be cut costs nothing."""
    budget = server.config.max_sendq_bytes // 2
    total = 0
    kept: list[bytes] = []
    for msg in reversed(messages) if newest else messages:
        line = render(msg)
        total += len(line)
        if total > budget and kept:
            break
        kept.append(line)
    if newest:
        kept.reverse()
    return kept


def _answer_in_batch(ctx: Context, kind: str, lines: list[bytes]) -> None:
    """The whole answer is ``lines`` in one batch of ``kind``, which carries the command's label itself
    (or no batch, when the client has no batch cap, and then no label either)."""
    ctx.send(_in_batch(ctx.server, ctx.session, kind, lines, ctx.label_tag()))
    ctx.label = None


def _targets(ctx: Context, start: float, end: float, limit: int) -> None:
    server = ctx.server
    client = ctx.client
    history = server.history
    assert history is not None
    channels = list(client.channels)
    party = history_identity(server, client)

    def done(outcome: Outcome[list[TargetListing]]) -> None:
        lines = []
        if outcome.error is not None:
            log.error("could not list the history targets of %s: %s", client.nick, outcome.error)
            ctx.fail("CHATHISTORY", "MESSAGE_ERROR", "TARGETS", description="Could not read history")
            return
        for listing in outcome.value or []:
            name: str | None = listing.name
            channel = server.find_channel(listing.name) if listing.name[:1] in CHANTYPES else None
            if channel is None:
                # A private conversation: listed under a name that leads back to it (none, for a connection
                # that is long gone), and only if that name does.
                name = server.parties.name_of(listing.name)
                if name is None or casefold(_party_of(server, name)) != casefold(listing.name):
                    continue
            if listing.latest < readable_since(server, client, channel):
                continue
            # draft/chathistory: the target and its latest message's time, bare (no "timestamp=").
            stamp = format_server_time(listing.latest)
            line = f":{server.name} CHATHISTORY TARGETS {channel.name if channel else name} {stamp}\r\n"
            lines.append(encode_wire(line))
        _answer_in_batch(ctx, "draft/chathistory-targets", lines)

    history.read(lambda s: s.targets(channels, party, start, end, limit), ctx.wait(done))


def replay_on_join(ctx: Context, channel: Channel) -> None:
    """The last messages of ``channel`` for a client that did not ask for chathistory. The JOIN's answer
    (JOIN, topic, NAMES) leaves at once, as the channel's traffic starts to reach the client; the replay
    follows it (ctx.followup()), and the client's next command is answered after the replay."""
    server = ctx.server
    client = ctx.client
    history = server.history
    lines = server.config.history_replay_lines
    session = ctx.session
    if history is None or lines <= 0 or CHATHISTORY_CAP in session.caps:
        return
    key, shown = channel.name_cf, channel.name
    since = readable_since(server, client, channel)
    # Only what was said before the join: the read runs later, and what came after reaches the
    # client live. (A message in the very millisecond of the join is left out rather than doubled.)
    joined_at = Ref.by_time(int(server.wallclock() * 1000) / 1000)
    replay = ctx.followup()

    def done(outcome: Outcome[list[HistoryMessage]]) -> None:
        if outcome.error is not None:
            log.error("could not read the history of %s to replay to %s: %s", shown, client.nick, outcome.error)
        messages = [msg for msg in outcome.value or [] if msg.time >= since]
        if not messages or channel.name_cf not in client.channels:
            return
        flags = session.tag_flags
        lines = _within_budget(server, messages, lambda msg: _history_line(server, msg, client, shown, flags),
                               newest=True)
        replay.send(_in_batch(server, session, f"chathistory {shown}", lines))

    callback = replay.wait(done)
    try:
        history.read(lambda s: s.before(key, joined_at, lines), callback)
    except BaseException:
        replay.abandon()  # the read will not call back: the client's next lines must not wait for it
        raise


def replay_while_detached(ctx: Context, since: float) -> None:
    """The private messages the user received since ``since`` (when its last connection went; always-on),
    for a connection that attaches without draft/chathistory: one batch per conversation, at most
    ``history_replay_lines`` each, after the rest of its welcome. One with chathistory fetches them itself."""
    server = ctx.server
    client = ctx.client
    session = ctx.session
    history = server.history
    lines = server.config.history_replay_lines
    party = client.account
    if history is None or lines <= 0 or party is None or CHATHISTORY_CAP in session.caps:
        return
    # From the very millisecond the last connection went (the store compares whole milliseconds, and a
    # message may share that one with the leaving: shown twice at worst, rather than lost).
    since -= 0.001
    start = Ref.by_time(since)
    end = int(server.wallclock() * 1000) / 1000 + 1
    replay = ctx.followup()

    def read(store: Storage) -> list[tuple[str, list[HistoryMessage]]]:
        found = []
        for listing in store.targets([], party, since, end, server.config.chathistory_max_lines):
            found.append((listing.name, store.after(listing.target, start, lines)))
        return found

    def done(outcome: Outcome[list[tuple[str, list[HistoryMessage]]]]) -> None:
        if outcome.error is not None:
            log.error("could not read the private history of %s to replay: %s", client.nick, outcome.error)
        flags = session.tag_flags
        for name, messages in outcome.value or []:
            shown = server.parties.name_of(name) or name
            if messages:
                kept = _within_budget(server, messages, partial(_history_line, server, client=client, shown=shown,
                                                                flags=flags), newest=True)
                replay.send(_in_batch(server, session, f"chathistory {shown}", kept))

    callback = replay.wait(done)
    try:
        history.read(read, callback)
    except BaseException:
        replay.abandon()
        raise
