"""Web Push notifications (soju.im/webpush, draft/webpush) on the server's side: who gets a push, when,
with what. The runtime's sender (:mod:`salotto.webpush`) encrypts and POSTs them.

An account's subscriptions (``WEBPUSH REGISTER``) are read from the store at startup and kept here, per
account; each change is written through the store. A push goes out for a private message to the user, or
a channel message that mentions its nick, while none of the account's connections is on: that is an
always-on user with no connection (``Server.absent``). Such a user's connection is :class:`PushConnection`
instead of the one that drops everything (``DETACHED``), so the backplane delivers to it as to any
connection, whatever node or path the message came by, and the payload is the line exactly as a client of
that user would have received it (with message-tags and server-time: ``msgid``, ``time``). The server
layer does no I/O: :class:`Sender` is the runtime's.

Bounds: subscriptions per account (``webpush_max_subscriptions_per_account``), pushes per subscription
(``webpush_burst``, ``webpush_per_minute``), the payload (:data:`MAX_PAYLOAD_BYTES`), and the sender's
queue and concurrency (``webpush_max_queued``, ``webpush_max_concurrent``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from salotto.proto.casemap import casefold
from salotto.proto.errors import MalformedMessage
from salotto.proto.framing import decode_wire, encode_wire
from salotto.proto.message import Message, format_tags, parse
from salotto.proto.names import CHANTYPES
from salotto.server.client import TAG_MESSAGE_TAGS, TAG_SERVER_TIME, Client
from salotto.server.flood import TokenBucket
from salotto.storage.base import PushSubscription

if TYPE_CHECKING:
    from salotto.server.state import Server

__all__ = [
    "MAX_PAYLOAD_BYTES", "PUSH_CAPS", "PUSH_TAG_FLAGS", "Push", "PushConnection", "Sender", "fit_payload",
    "mentions",
]

log = logging.getLogger("salotto.push")

# The capability names: soju's, and ergo's draft one (the same extension).
PUSH_CAPS = ("soju.im/webpush", "draft/webpush")
# RFC 8291 section 4: a push message's body is at most 4096 bytes; aes128gcm's header (86 bytes with the
# server's 65-byte key as key id), the padding delimiter (1) and the tag (16) leave 3993 for the plaintext.
MAX_PAYLOAD_BYTES = 3993
# The tags a push carries (before fitting): the line as a client with message-tags and server-time gets it.
PUSH_TAG_FLAGS = TAG_MESSAGE_TAGS | TAG_SERVER_TIME
# What may continue a nick besides letters and digits: a mention is the nick not next to one of these
# (brackets may be a nick's too, but in text they mostly bracket: "[alice]" is a mention).
_NICK_CHARS = frozenset("-\\`^_|")


class Sender(Protocol):
    """The runtime's Web Push sender (salotto.webpush.WebPushSender)."""

    # The VAPID public key (URL-safe base64 of the uncompressed P-256 point), ISUPPORT VAPID=.
    public_key: str

    def check(self, endpoint: str, p256dh: bytes, auth: bytes) -> str | None:
        """Why a subscription is refused as it is written, or None: the endpoint (its scheme, its host, a
        literal address; a name is for :meth:`resolve`), the subscriber's key (a point of P-256) and its
        secret (16 bytes)."""

    def resolve(self, endpoint: str, done: Callable[[tuple[str, str] | None], None]) -> None:
        """Resolve the endpoint's host (off the loop) and check its addresses; ``done`` gets None, or the FAIL
        code and why (INVALID_PARAMS: a refused address; INTERNAL_ERROR: too many look-ups waiting, at most
        ``webpush_max_queued``), on the loop thread (at once when there is nothing to look up)."""

    def send(self, subscription: PushSubscription, payload: bytes, urgency: str,
             done: Callable[[int, str], None]) -> bool:
        """Queue one push; ``done(status, error)`` runs on the loop thread once it is answered: the push
        service's HTTP status (0 when none came: refused address, network error, timeout) and what went
        wrong. False when the queue is full (nothing queued, ``done`` never runs)."""


class _PushOutbox(list[bytes]):
    """The outbox of an absent user's :class:`PushConnection`: keeps nothing; each line is looked at."""

    __slots__ = ("_conn",)

    def __init__(self, conn: PushConnection) -> None:
        super().__init__()
        self._conn = conn

    def append(self, item: bytes) -> None:
        self._conn.write(item)


class PushConnection:
    """The connection of an always-on user with no connection and push subscriptions: every line that
    reaches the user is looked at (nothing is kept) and a private message or a mention is pushed."""

    __slots__ = ("_push", "outbox", "user")
    peer_ip = "0.0.0.0"
    transport_name = "detached"

    def __init__(self, push: Push, user: Client) -> None:
        self._push = push
        self.user = user
        self.outbox: list[bytes] = _PushOutbox(self)

    def mark_pending(self) -> list[bytes]:
        return self.outbox

    def write(self, data: bytes) -> None:
        if b" PRIVMSG " in data or b" NOTICE " in data:  # (most of what reaches a user is neither)
            self._push.delivered(self.user, data)

    def close(self, reason: str) -> None:
        return


def mentions(text: str, nick: str) -> bool:
    """Whether ``text`` names ``nick`` as a word (casefolded as nicks are: ``Alice:`` and ``@alice`` do,
    ``malice`` and ``alice_`` do not)."""
    if not nick:
        return False
    haystack = casefold(text)
    needle = casefold(nick)
    start = haystack.find(needle)
    while start >= 0:
        end = start + len(needle)
        before = haystack[start - 1] if start else " "
        after = haystack[end] if end < len(haystack) else " "
        if not _is_nick_char(before) and not _is_nick_char(after):
            return True
        start = haystack.find(needle, start + 1)
    return False


def _is_nick_char(char: str) -> bool:
    return char.isalnum() or char in _NICK_CHARS


def fit_payload(raw: bytes, msg: Message, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The line ``raw`` (no CRLF), parsed as ``msg``, in at most ``limit`` bytes: as it came when it fits;
    else with no tag but ``msgid`` (the spec keeps that one); else with its text cut too (on a character
    boundary)."""
    if len(raw) <= limit:
        return raw
    tags = {"msgid": msg.tags["msgid"]} if "msgid" in msg.tags else {}
    line = _line(tags, msg)
    if len(line) <= limit or not msg.params:
        return line[:limit]
    text = encode_wire(msg.params[-1])
    cut = text[: max(0, len(text) - (len(line) - limit))].decode("utf-8", "ignore")
    return _line(tags, Message(msg.command, [*msg.params[:-1], cut], msg.source))


def _line(tags: dict[str, str], msg: Message) -> bytes:
    head = (format_tags(tags) + " " if tags else "") + (f":{msg.source} " if msg.source else "")
    params = msg.params
    if not params:
        return encode_wire(head + msg.command)
    return encode_wire(" ".join([head + msg.command, *params[:-1], ":" + params[-1]]))


class Push:
    """Every account's subscriptions, and the pushes of the users who are away from all their devices."""

    def __init__(self, server: Server, sender: Sender, subscriptions: Iterable[PushSubscription] = ()) -> None:
        self.server = server
        self.sender = sender
        # Casefolded account -> endpoint -> subscription (as the store has it).
        self.subscriptions: dict[str, dict[str, PushSubscription]] = {}
        for subscription in subscriptions:
            self.subscriptions.setdefault(casefold(subscription.account), {})[subscription.endpoint] = subscription
        # (casefolded account, endpoint) -> its rate limit.
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self.sent = 0
        self.failed = 0
        self.expired = 0
        self.refused = 0
        self.rate_limited = 0
        self.queue_full = 0

    # -- subscriptions -----------------------------------------------------------------------------

    def of(self, account: str) -> dict[str, PushSubscription]:
        return self.subscriptions.get(casefold(account), {})

    def added(self, subscription: PushSubscription) -> None:
        """The store took ``subscription`` (replacing the account's one with the same endpoint)."""
        key = casefold(subscription.account)
        self.subscriptions.setdefault(key, {})[subscription.endpoint] = subscription
        self._buckets.pop((key, subscription.endpoint), None)
        self._rewatch(key)  # (an absent user of the account, registered for by another of its nicks)

    def removed(self, account: str, endpoint: str) -> None:
        """The subscription is gone (UNREGISTER, or the push service said so): forgotten here; an absent
        user with none left drops its lines again."""
        key = casefold(account)
        subs = self.subscriptions.get(key)
        if subs is None or subs.pop(endpoint, None) is None:
            return
        self._buckets.pop((key, endpoint), None)
        if not subs:
            del self.subscriptions[key]
            self._rewatch(key)

    def forget_account(self, account: str) -> None:
        """The account was dropped (its subscriptions went with it in the store): forget them here too, or
        whoever registers the name next would be pushed to the old owner's devices."""
        key = casefold(account)
        for endpoint in self.subscriptions.pop(key, {}):
            self._buckets.pop((key, endpoint), None)
        self._rewatch(key)

    def _rewatch(self, key: str) -> None:
        for user in list(self.server.absent):
            if user.account is not None and casefold(user.account) == key:
                self.server.watch_for_push(user)

    def drop(self, subscription: PushSubscription, why: str) -> None:
        """Forget ``subscription`` here and in the store."""
        log.info("push subscription of %s dropped (%s): %s", subscription.account, why, subscription.endpoint)
        self.removed(subscription.account, subscription.endpoint)
        accounts = self.server.accounts
        if accounts is None:
            return

        def deleted(outcome: object) -> None:
            error = getattr(outcome, "error", None)
            if error is not None:
                log.warning("push subscription of %s not deleted from the store: %s", subscription.account, error)

        accounts.write(lambda store: store.delete_push_subscription(subscription.account, subscription.endpoint),
                       deleted)

    # -- pushes ------------------------------------------------------------------------------------

    def delivered(self, user: Client, data: bytes) -> None:
        """A line reached ``user``, who has no connection: push it when it is for them."""
        account = user.account
        accounts = self.server.accounts
        if account is None or user.devices or not user.detached or accounts is None or accounts.get(account) is None:
            return  # (an account dropped meanwhile: its subscriptions went with it in the store)
        subs = self.subscriptions.get(casefold(account))
        if not subs or self._connected(account):
            return
        for raw in data.split(b"\r\n"):  # (a multiline message without the batch: several lines)
            if not raw:
                continue
            try:
                msg = parse(decode_wire(raw))
            except MalformedMessage:
                continue
            urgency = self._urgency(user, msg)
            if urgency is not None:
                self._push(subs, fit_payload(raw, msg), urgency)
                return  # one push per message

    def _connected(self, account: str) -> bool:
        """Whether a connection logged in to ``account`` is on (another nick's too)."""
        return any(not c.detached and not c.quitting for c in self.server.logins.get(casefold(account), ()))

    @staticmethod
    def _urgency(user: Client, msg: Message) -> str | None:
        """``high`` for a private message to ``user``, ``normal`` for a channel message naming it, None for
        anything else (what a server or service says, CTCP but ACTION, what the user said itself)."""
        if msg.command not in ("PRIVMSG", "NOTICE") or len(msg.params) < 2 or not msg.source or "!" not in msg.source:
            return None
        target, text = msg.params[0], msg.params[1]
        if casefold(msg.source.split("!", 1)[0]) == user.nick_cf:
            return None
        if text.startswith("\x01") and not text.startswith("\x01ACTION "):
            return None
        if target[:1] not in CHANTYPES:
            return "high" if casefold(target) == user.nick_cf else None
        return "normal" if mentions(text, user.nick) else None

    def _push(self, subs: dict[str, PushSubscription], payload: bytes, urgency: str) -> None:
        config = self.server.config
        now = self.server.clock()
        for subscription in list(subs.values()):
            key = (casefold(subscription.account), subscription.endpoint)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(config.webpush_per_minute / 60, config.webpush_burst, now)
            if bucket.delay(now) > 0:
                self.rate_limited += 1
                continue

            def done(status: int, error: str, subscription: PushSubscription = subscription) -> None:
                self._answered(subscription, status, error)

            if not self.sender.send(subscription, payload, urgency, done):
                self.queue_full += 1
                log.warning("push to %s dropped: webpush_max_queued pushes wait already", subscription.account)

    def _answered(self, subscription: PushSubscription, status: int, error: str) -> None:
        if 200 <= status < 300:
            self.sent += 1
        elif status in (404, 410):  # RFC 8030 section 7.3: the subscription expired
            self.expired += 1
            self.drop(subscription, f"the push service answered {status}")
        elif status == 0 and error.startswith("refused"):
            self.refused += 1
            self.drop(subscription, error)
        else:
            self.failed += 1
            log.warning("push to %s failed (%s): %s", subscription.account, status or "no answer", error)

    def metrics(self) -> list[tuple[str, str, str, float]]:
        """/metrics families (name, type, help, value)."""
        return [
            ("webpush_subscriptions", "gauge", "Web Push subscriptions on file.",
             float(sum(len(subs) for subs in self.subscriptions.values()))),
            ("webpush_sent_total", "counter", "Pushes the push services accepted.", float(self.sent)),
            ("webpush_failed_total", "counter", "Pushes that failed (an error status, no answer, a timeout).",
             float(self.failed)),
            ("webpush_expired_total", "counter", "Subscriptions dropped because the push service said 404 or 410.",
             float(self.expired)),
            ("webpush_refused_total", "counter",
             "Subscriptions dropped because their endpoint resolved to an address pushes may not go to.",
             float(self.refused)),
            ("webpush_rate_limited_total", "counter", "Pushes not sent: webpush_per_minute.", float(self.rate_limited)),
            ("webpush_queue_full_total", "counter", "Pushes not sent: webpush_max_queued.", float(self.queue_full)),
        ]
