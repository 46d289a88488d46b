"""The storage interface: accounts, registered channels, message history and read markers.

Every backend implements :class:`Storage` and passes the suite in ``tests/storage``. A ``Storage`` object
is one connection: synchronous, used by one thread at a time. The server never calls one from its
loop: it writes through one on the store's storer thread (messages in batches, retention, and the
accounts and channels the loop hands it) and reads through read-only ones on a pool of threads, the
results coming back to the loop (see :mod:`salotto.storage.store`).

Names: account names and channel names are stored as given (for display) and compared by their
:func:`~salotto.proto.casemap.casefold`; every method that takes a name casefolds it itself.

History ordering: messages of one target are totally ordered by ``(time, insertion order)``, the
"consistent message order" that https://ircv3.net/specs/extensions/chathistory asks servers to keep, so
paging by msgid never skips or repeats a message even when several share a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, Protocol

from salotto.proto.casemap import casefold

if TYPE_CHECKING:
    from salotto.storage.search import SearchQuery

__all__ = [
    "NO_TAGS",
    "AlreadyExists",
    "AlwaysOnUser",
    "HistoryMessage",
    "PushSubscription",
    "Ref",
    "RegisteredChannel",
    "SchemaTooNew",
    "Storage",
    "StorageError",
    "StoredAccount",
    "TargetListing",
    "UnknownChannel",
    "UploadRecord",
    "conversation_key",
]


class StorageError(Exception):
    """Base of the storage layer's own exceptions."""


class AlreadyExists(StorageError):
    """The account, channel or certificate fingerprint is already registered (names compare casefolded)."""


class UnknownChannel(StorageError):
    """The channel is not registered."""


class SchemaTooNew(StorageError):
    """The database was written by a newer salotto (its schema version is above the one this code knows).

    Opening it could corrupt data the newer code relies on, so the backend refuses; upgrade salotto or
    point ``data_dir`` at another directory."""


@lru_cache(maxsize=4096)  # every stored private message asks; the same few pairs ask again and again
def conversation_key(a: str, b: str) -> str:
    """The history target of the private conversation between ``a`` and ``b`` (nicks or account names).

    Both names casefolded, sorted, joined by a space: the same key whoever sends, and it can never equal
    a channel name (channel names start with ``#`` or ``&`` and contain no space)."""
    return " ".join(sorted((casefold(a), casefold(b))))


@dataclass(frozen=True, slots=True)
class StoredAccount:
    name: str  # as registered, for display
    password_hash: str  # an encoded hash string (salotto.passwords), never a password
    created: float  # epoch seconds
    email: str | None = None
    verified: bool = True  # False while draft/account-registration verification is pending
    always_on: bool | None = None  # NickServ SET ALWAYS-ON; None: the server's always_on_default


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """An uploaded file's metadata (its bytes are the FileStore's, under the same id)."""

    id: str  # random, URL-safe: the file's URL is /files/<id>/<name>
    account: str  # who uploaded it, as the account is shown
    name: str  # the file name, made safe (salotto.proto.filetypes.safe_filename)
    content_type: str  # sniffed from its bytes
    size: int  # bytes
    created: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class AlwaysOnUser:
    """An always-on user present when the server stopped: recreated, without a connection, at startup."""

    account: str  # the account it is logged in to
    nick: str
    username: str
    realname: str
    channels: tuple[str, ...]  # channel names, as they were shown
    away: str | None
    absent_since: float  # epoch seconds its last connection went (0: one was on when the server stopped)


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A Web Push subscription (WEBPUSH REGISTER): where to POST an account's notifications, and the keys
    that encrypt them for the subscriber (RFC 8291), as the client gave them (URL-safe base64)."""

    account: str  # the account it belongs to
    endpoint: str  # the push service's URL for this subscription
    p256dh: str  # the subscriber's P-256 ECDH public key
    auth: str  # the subscriber's 16-byte authentication secret
    created: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class RegisteredChannel:
    name: str  # as registered, for display
    founder: str  # account name
    registered: float  # epoch seconds
    topic: str = ""
    topic_setter: str = ""
    topic_time: float = 0.0
    modes: str = ""  # simple modes without parameters, e.g. "nt"
    key: str | None = None  # +k
    limit: int | None = None  # +l
    access: Mapping[str, str] = field(default_factory=dict)  # casefolded account -> level ("op", "voice")


# The tags of a message without client tags: one shared, read-only empty mapping.
NO_TAGS: Mapping[str, str] = MappingProxyType({})


class HistoryMessage(NamedTuple):
    """One stored PRIVMSG, NOTICE or TAGMSG.

    ``target`` is the casefolded channel name, or :func:`conversation_key` for a private message; then
    ``parties`` holds both sides' names as they were shown (sender first), so ``TARGETS`` can list the
    conversation under the other side's name. ``parties`` is only read on append; stored messages come
    back with ``None``.

    A named tuple, not a dataclass: the server builds one for every message it relays, on its loop
    thread, and a tuple takes a third of the time a frozen dataclass does (0.3 against 1 us).
    """

    msgid: str
    target: str
    time: float  # epoch seconds; stored with millisecond precision (the server-time tag's)
    sender: str  # nick!user@host as delivered
    account: str | None
    command: str  # PRIVMSG, NOTICE or TAGMSG
    text: str  # "" for TAGMSG
    tags: Mapping[str, str] = NO_TAGS  # client-only tags (+typing...), as delivered
    parties: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class TargetListing:
    """One line of ``CHATHISTORY TARGETS``: a target with its latest message time in the asked window.

    ``name`` is the channel's key for a channel, the other side's name for a private conversation."""

    target: str
    name: str
    latest: float


@dataclass(frozen=True, slots=True)
class Ref:
    """A CHATHISTORY message selector: ``msgid=...`` or ``timestamp=...``, exactly one of the two.

    A msgid selects one message of the target (its position in the total order); a timestamp selects a
    point in time, between messages. An msgid that is not in the target's history matches nothing, and
    every query given one returns no messages."""

    msgid: str | None = None
    time: float | None = None

    def __post_init__(self) -> None:
        if (self.msgid is None) == (self.time is None):
            raise ValueError("a Ref has exactly one of msgid and time")

    @classmethod
    def by_msgid(cls, msgid: str) -> Ref:
        return cls(msgid=msgid)

    @classmethod
    def by_time(cls, time: float) -> Ref:
        return cls(time=time)


class Storage(Protocol):
    """One connection to a backend. Methods run synchronously; each is atomic on its own, and a
    ``with storage.transaction():`` block groups several into one commit (blocks nest).

    Readers (``readonly=True`` connections) raise on any write method."""

    # -- life ------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the open database (0 before any migration)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group the calls inside into one atomic commit; an exception rolls the block back.

        Nested blocks are savepoints: an inner failure undoes only the inner block."""
        ...

    def close(self) -> None: ...

    def start_maintenance(self) -> Callable[[], None]:
        """Start the backend's own upkeep for this (writer) connection, on a thread of its own if it needs
        one (SQLite: WAL checkpoints); returns what stops it."""
        ...

    # -- accounts --------------------------------------------------------------------------------

    def create_account(
        self, name: str, password_hash: str, created: float, *, email: str | None = None, verified: bool = True
    ) -> StoredAccount:
        """Register ``name``. Raises :class:`AlreadyExists` if its casefold is taken."""
        ...

    def get_account(self, name: str) -> StoredAccount | None: ...

    def list_accounts(self) -> list[StoredAccount]:
        """Every account (verified or not), ordered by casefolded name: the server's directory at startup."""
        ...

    def set_password_hash(self, name: str, password_hash: str) -> bool:
        """Replace the hash; False if there is no such account."""
        ...

    def set_verified(self, name: str, verified: bool) -> bool:
        """Mark the account verified (draft/account-registration VERIFY); False if there is none."""
        ...

    def set_always_on(self, name: str, always_on: bool | None) -> bool:
        """An account's always-on setting (NickServ SET ALWAYS-ON; None: the server's default); False if there
        is no such account."""
        ...

    def save_always_on_users(self, users: Iterable[AlwaysOnUser]) -> None:
        """Replace the always-on users on file with ``users`` (at shutdown)."""
        ...

    def update_always_on_users(self, users: Iterable[AlwaysOnUser], gone: Iterable[str]) -> None:
        """Keep ``users`` (each replacing what its account had on file) and forget the always-on users of the
        accounts named in ``gone`` (as the server goes: so that a crash loses little)."""
        ...

    def list_always_on_users(self) -> list[AlwaysOnUser]:
        """The always-on users on file (at startup), ordered by account."""
        ...

    def delete_account(self, name: str) -> bool:
        """Delete the account with its login addresses, read markers and channel access entries.

        Channels it founded stay registered (the caller decides whether to drop or transfer them).
        False if there was no such account."""
        ...

    def list_login_addresses(self) -> list[tuple[str, str, float]]:
        """Every account's login addresses as (casefolded account name, address, last seen epoch seconds),
        ordered by account, then oldest first (then by address): the server's directory at startup."""
        ...

    def add_login_address(self, name: str, address: str, seen: float, keep: int) -> bool:
        """Note that ``name`` logged in from ``address`` at ``seen`` (moving its time forward if it is on
        file), then keep the account's newest ``keep`` addresses, forgetting the others. False if there is
        no such account. Deleting the account deletes its addresses."""
        ...

    # -- registered channels ---------------------------------------------------------------------

    def register_channel(self, name: str, founder: str, registered: float) -> RegisteredChannel:
        """Register ``name`` with ``founder`` (given the "founder" access level). Raises :class:`AlreadyExists`."""
        ...

    def get_channel(self, name: str) -> RegisteredChannel | None: ...

    def update_channel(
        self,
        name: str,
        *,
        topic: tuple[str, str, float] | None = None,
        modes: str | None = None,
        key: str | None = None,
        limit: int | None = None,
        clear_key: bool = False,
        clear_limit: bool = False,
    ) -> None:
        """Change what is given: ``topic`` as (text, setter, time), the simple ``modes``, ``key``
        and ``limit`` (``clear_key``/``clear_limit`` remove them). Raises :class:`UnknownChannel`."""
        ...

    def set_access(self, channel: str, account: str, level: str) -> None:
        """Give ``account`` the ``level`` on ``channel`` (replacing any other). Raises :class:`UnknownChannel`."""
        ...

    def remove_access(self, channel: str, account: str) -> bool: ...

    def drop_channel(self, name: str) -> bool:
        """Unregister the channel with its access list; False if it was not registered."""
        ...

    def list_channels(self) -> list[RegisteredChannel]:
        """Every registered channel with its access list, for startup."""
        ...

    # -- history ---------------------------------------------------------------------------------

    def append_messages(self, messages: Iterable[HistoryMessage]) -> None:
        """Store the messages, atomically. Raises :class:`AlreadyExists` on a duplicate msgid (and stores none)."""
        ...

    def get_message(self, msgid: str) -> HistoryMessage | None: ...

    def latest(self, target: str, limit: int, after: Ref | None = None) -> list[HistoryMessage]:
        """CHATHISTORY LATEST: the ``limit`` most recent messages, restricted to those strictly after
        ``after`` when given (``*`` is ``None``). Ascending order."""
        ...

    def before(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        """CHATHISTORY BEFORE: the ``limit`` messages closest to ``ref`` strictly before it. Ascending."""
        ...

    def after(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        """CHATHISTORY AFTER: the ``limit`` messages closest to ``ref`` strictly after it. Ascending."""
        ...

    def around(self, target: str, ref: Ref, limit: int) -> list[HistoryMessage]:
        """CHATHISTORY AROUND: up to ``limit`` messages: ``limit // 2`` strictly before ``ref``, the rest
        from ``ref`` on (a msgid's own message included; for a timestamp, messages at or after it).
        Ascending."""
        ...

    def between(self, target: str, start: Ref, end: Ref, limit: int) -> list[HistoryMessage]:
        """CHATHISTORY BETWEEN: messages strictly between ``start`` and ``end``, which may go forwards or
        backwards in time; the ``limit`` closest to ``start`` are kept. Ascending."""
        ...

    def targets(
        self, channels: Iterable[str], party: str | None, start: float, end: float, limit: int
    ) -> list[TargetListing]:
        """CHATHISTORY TARGETS: among ``channels`` (casefolded names the caller may read) and the private
        conversations of ``party`` (a nick or account name, None for none), those with messages strictly
        between ``start`` and ``end``, each with its latest such message time.

        Sorted ascending by that time; when there are more than ``limit``, the ``limit`` closest to
        ``start`` are kept (so ``start > end`` pages backwards, like BETWEEN)."""
        ...

    def redact_message(self, target: str, msgid: str) -> bool:
        """draft/message-redaction: delete the message ``msgid`` of ``target`` from history, and remember
        its msgid (:meth:`redacted`), so that a history journal that still holds the message (replayed at
        startup) does not store it again. False, and nothing remembered, if ``target`` has no such
        message."""
        ...

    def redacted(self, msgids: Iterable[str]) -> set[str]:
        """Those of ``msgids`` that were redacted (as long as retention by age has not forgotten them:
        their record goes with the message's own time)."""
        ...

    def prune_history(self, cutoff: float | None, max_per_target: int | None, max_rows: int = 10_000) -> int:
        """Retention: delete messages older than ``cutoff`` (epoch seconds) and, in every target, all but
        the newest ``max_per_target``; with ``cutoff``, the records of redacted messages older than it
        too. Deletes at most ``max_rows`` rows so the writer is never held long; returns the number
        deleted (call again while it equals ``max_rows``)."""
        ...

    def search(self, query: SearchQuery) -> list[HistoryMessage]:
        """soju.im/search: the newest ``query.limit`` PRIVMSG and NOTICE messages that match ``query``
        (see :mod:`salotto.storage.search`), oldest first; only from ``query.targets`` and the private
        conversations of ``query.party``, each no older than the time given for it. Raises
        :class:`~salotto.storage.search.SearchTimeout` past ``query.timeout_s``."""
        ...

    # -- read markers (draft/read-marker) --------------------------------------------------------

    def get_read_marker(self, account: str, target: str) -> float | None: ...

    def set_read_marker(self, account: str, target: str, time: float) -> float:
        """Move the marker forward to ``time``; it never goes back. Returns the stored time."""
        ...

    def read_markers(self, account: str) -> list[tuple[str, float]]:
        """Every (target, time) marker of ``account``."""
        ...

    def list_read_markers(self) -> list[tuple[str, str, float]]:
        """Every (casefolded account, target, time) marker: read once at startup."""
        ...

    def delete_read_marker(self, account: str, target: str) -> bool:
        """Forget one marker; False when there was none."""
        ...

    # -- Web Push subscriptions (soju.im/webpush) ------------------------------------------------

    def list_push_subscriptions(self) -> list[PushSubscription]:
        """Every subscription, with its account's name as registered: read once at startup."""
        ...

    def put_push_subscription(self, subscription: PushSubscription) -> bool:
        """Store ``subscription``, replacing the account's one with the same endpoint; False when the account
        does not exist (any more)."""
        ...

    def delete_push_subscription(self, account: str, endpoint: str) -> bool:
        """Forget one subscription of ``account``; False when there was none."""
    # -- uploaded files (their metadata; the bytes are in a FileStore) ----------------------------

    def add_upload(self, record: UploadRecord, max_account_bytes: int) -> bool:
        """Record an upload unless the account's uploads would then exceed ``max_account_bytes``
        (checked and written in one transaction); False: over the quota, nothing written."""
        ...

    def get_upload(self, upload_id: str) -> UploadRecord | None: ...

    def upload_usage(self, account: str) -> int:
        """Bytes of the account's uploads on record."""
        ...

    def expired_uploads(self, cutoff: float, limit: int) -> list[str]:
        """Ids of at most ``limit`` uploads created before ``cutoff`` (epoch seconds), oldest first."""
        ...

    def delete_uploads(self, upload_ids: Iterable[str]) -> int:
        """Forget these uploads; how many there were."""
        ...
