"""REDACT: deleting a message (https://ircv3.net/specs/extensions/message-redaction, draft/message-redaction).

``REDACT <target> <msgid> [:<reason>]`` deletes a PRIVMSG, NOTICE or TAGMSG of a channel or of the
sender's private conversation with a nick from history, and relays the REDACT to those of the target's
recipients that negotiated the capability (and back to the sender with echo-message, as its own PRIVMSG
comes back). Who may:

- the message's author: the same account, when both are logged in; otherwise the same connection
  (the message's ``nick!user@host`` is this connection's, and it has held that nick since before the
  message: a nick alone is not proof, see :func:`salotto.server.handlers.history.history_identity`),
  within ``redaction_window_s`` of sending it;
- a channel operator, any message of their channel; a server operator, any message of a target they
  can name; both at any age.

A message the sender could not read (another target's, one from before it may read the target's
history) is ``UNKNOWN_MSGID``, as one that does not exist: the answer tells nothing of messages it did
not see.

Why the check is a storer job rather than an index of recent messages kept in memory: operators delete
old messages too, so the store is asked anyway; one job on the writer connection that looks the message
up, checks it and deletes it leaves no moment between the check and the deletion; and it is ordered
after the batch that stores the message (:meth:`~salotto.storage.store.Store.write_after_history`), so
a message said a moment ago, still in the history journal, is deleted once it is in the database, never
before (a deletion before it would be undone when the batch lands, or by the journal's replay at
startup). The connection's later commands wait for the answer (``ctx.wait``), as CHATHISTORY's do.

What it costs, and its bounds: a REDACT is a line like any other (flood control, fakelag). Each
connection has one REDACT on its way to the store at a time (its later lines wait), so the storer holds
at most one per connection: what forty addresses can queue is bounded by their connections
(``max_connections_per_ip``...). A refusal (unknown, forbidden, too old) is one lookup by msgid (SQLite:
a rowid lookup) and writes nothing; a deletion deletes one row and writes one small record. Authors can
only delete what they sent within the window (itself flood-controlled); operators, one message per
command. Like CHATHISTORY, a REDACT hands what waits in the journal to the storer early; while a batch is
still being stored, it waits for it rather than start another (the loop never waits for it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from salotto.proto.casemap import casefold
from salotto.proto.framing import valid_utf8
from salotto.proto.names import CHANTYPES
from salotto.server.context import Context
from salotto.server.handlers.history import _party_of, history_identity, readable_since
from salotto.server.handlers.messaging import _fit
from salotto.storage.base import HistoryMessage, Storage, conversation_key
from salotto.storage.outcome import Outcome

__all__ = ["REDACTION_CAP", "handle_redact"]

log = logging.getLogger("salotto.history")

REDACTION_CAP = "draft/message-redaction"


@dataclass(frozen=True, slots=True)
class _Redactor:
    """Who asks, as the loop saw them when the command came: what the storer checks the message against."""

    account_cf: str | None
    prefix: str
    nick_since: float
    moderator: bool  # a channel operator of the target channel, or a server operator: any message, any age
    readable_since: float  # older messages of the target are not theirs to see (0 for server operators)
    window: float
    now: float

    def refusal(self, message: HistoryMessage) -> str | None:
        """None if this redactor may delete ``message``, else the FAIL code."""
        if message.time < self.readable_since:  # (an older channel of the same name, say)
            return "UNKNOWN_MSGID"
        if self.moderator:
            return None
        own = (self.account_cf is not None and message.account is not None
               and casefold(message.account) == self.account_cf)
        # Nicks are unique at any moment, so what was said under this prefix after this connection took
        # the nick is this connection's (history stores milliseconds: the one it took the nick in is left out).
        if not own and not (message.sender == self.prefix and message.time > self.nick_since):
            return "REDACT_FORBIDDEN"
        if self.now - message.time > self.window:
            return "REDACT_WINDOW_EXPIRED"
        return None


def handle_redact(ctx: Context) -> None:
    # REDACT <target> <msgid> [:<reason>]
    server = ctx.server
    client = ctx.client
    params = ctx.msg.params
    name, msgid = params[0], params[1]
    reason = params[2] if len(params) > 2 and params[2] else None
    history = server.history
    if history is None:  # (the capability is only offered with history)
        ctx.fail("REDACT", "INVALID_TARGET", name, description="This server keeps no history to delete from")
        return
    if name[:1] in CHANTYPES:
        channel = server.find_channel(name)
        if channel is None or (client not in channel and not client.is_oper):
            ctx.fail("REDACT", "INVALID_TARGET", name, description=f"You cannot delete messages from {name}")
            return
        key, shown = channel.name_cf, channel.name
        moderator = channel.may_moderate(client)
        since = readable_since(server, client, channel)
    else:
        me = history_identity(server, client)
        if me is None or not name or any(ch in name for ch in " ,*?!@~"):
            ctx.fail("REDACT", "INVALID_TARGET", name, description=f"You cannot delete messages from {name}")
            return
        key, shown = conversation_key(me, _party_of(server, name)), name
        moderator = client.is_oper
        since = readable_since(server, client, None)
    if valid_utf8(msgid) is not msgid:  # the server's msgids are text; the database takes nothing else
        ctx.fail("REDACT", "UNKNOWN_MSGID", shown, msgid, description="This message does not exist or is too old")
        return
    wall = server.wallclock()
    redactor = _Redactor(
        account_cf=casefold(client.account) if client.account is not None else None,
        prefix=client.prefix,
        nick_since=client.nick_since,
        moderator=moderator,
        readable_since=0.0 if client.is_oper else since,
        window=server.config.redaction_window_s,
        now=wall,
    )

    def redact(storage: Storage) -> str | None:
        """On the storer: look the message up, check, delete; None when deleted, else the FAIL code."""
        message = storage.get_message(msgid)
        if message is None or message.target != key:
            return "UNKNOWN_MSGID"
        refusal = redactor.refusal(message)
        if refusal is None:
            storage.redact_message(key, msgid)  # False: retention took it meanwhile; gone either way
        return refusal

    def done(outcome: Outcome[str | None]) -> None:
        if outcome.error is not None:
            log.error("could not redact %s in %s for %s: %s", msgid, shown, client.nick, outcome.error)
            ctx.fail("REDACT", "MESSAGE_ERROR", shown, msgid, description="Could not delete the message; try again")
            return
        refusal = outcome.value
        if refusal == "UNKNOWN_MSGID":
            ctx.fail("REDACT", refusal, shown, msgid, description="This message does not exist or is too old")
        elif refusal == "REDACT_FORBIDDEN":
            ctx.fail("REDACT", refusal, shown, msgid, description="You are not authorised to delete this message")
        elif refusal == "REDACT_WINDOW_EXPIRED":
            window = f"{redactor.window:g}"
            ctx.fail("REDACT", refusal, shown, msgid, window, description="You can no longer delete this message")
        else:
            _relay(ctx, key, shown, msgid, reason)

    history.write_after_history(redact, ctx.wait(done))


def _relay(ctx: Context, key: str, shown: str, msgid: str, reason: str | None) -> None:
    """The message is deleted: tell those of its recipients that have the capability, now."""
    server = ctx.server
    client = ctx.client
    server.stats.redactions += 1
    log.info("%s redacted %s in %s", client.nick, msgid, shown)
    channel = server.find_channel(key) if shown[:1] in CHANTYPES else None
    recipient = None if shown[:1] in CHANTYPES else server.find_user(shown)
    if recipient is not None:
        # Only the other side of this conversation: not whoever holds the nick now, if that is someone else.
        me, them = history_identity(server, client), history_identity(server, recipient)
        if me is None or them is None or conversation_key(me, them) != key:
            recipient = None
    target = channel.name if channel is not None else recipient.nick if recipient is not None else shown
    params = [target, msgid]
    if reason is not None:
        params.append(_fit(reason, client.prefix, "REDACT", f"{target} {msgid}", server.config.max_line_bytes))
    out = server.from_user(client, "REDACT", params)
    if channel is not None:
        server.backplane.to_members(channel, out, exclude=ctx.session, cap=REDACTION_CAP)
    else:
        if recipient is not None and recipient is not client:
            server.backplane.to_nick(recipient, out, cap=REDACTION_CAP)
        if client.devices:  # the sender's other connections show the conversation too
            server.backplane.to_sessions(client, out, exclude=ctx.session, cap=REDACTION_CAP)
    if "echo-message" in ctx.session.caps:
        ctx.send(out.variant(ctx.session.tag_flags))
