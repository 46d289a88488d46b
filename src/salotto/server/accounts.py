"""Accounts and registered channels as the server uses them: logins, registrations, nick protection.

The store (:mod:`salotto.storage`) keeps accounts and registered channels; this module is the server's
side of them. Password hashing (scrypt, tens of milliseconds) runs on :class:`~salotto.server.offload.Offload`
threads; the results come back on the loop thread. The store has one writer connection, history's
(:meth:`salotto.server.history.History.write`): the short account and channel writes run there, in
turn with history's jobs, and the loop waits for them (as long as the job at hand; they are rare).
Account lookups are single-row primary-key reads on a connection of the loop's own (microseconds), so
NICK can check whether a nick is registered without a round trip, and they see every write that
returned.

Login attempts are limited per IP and per account (token buckets, ``login_attempts_per_ip`` and
``login_attempts_per_account`` per ``login_throttle_window_s``): guessing a password is slow from one
address, and slow against one account from many. An attempt is counted when it starts, before its
password is checked, so that many addresses guessing at once get no more checks than one; a success
gives the account's token back. Only existing accounts have a bucket of their own, never forgotten while
it is not full; names that are no account's share one. The addresses an account logged in from (its
owner's, the newest ``TRUSTED_ADDRESSES``, kept in the store: restarts do not forget them) are not held
back by the account's limit, so that guessing from elsewhere never locks the owner out. An unknown
account costs a hash like a known one: how long the answer takes does not tell whether the account
exists (that it exists is no secret: NickServ INFO and REGISTER tell).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from salotto.passwords import hash_password, make_account_secret, scram_is_current, verify_password
from salotto.proto.casemap import casefold
from salotto.proto.framing import encode_wire, valid_utf8
from salotto.proto.message import format_line
from salotto.proto.numerics import RPL_LOGGEDIN, RPL_LOGGEDOUT
from salotto.server.flood import Throttle, ip_key
from salotto.server.offload import Offload
from salotto.storage.base import AlreadyExists, RegisteredChannel, Storage, StorageError, StoredAccount
from salotto.storage.worker import Outcome

if TYPE_CHECKING:
    from salotto.server.channel import Channel
    from salotto.server.client import Client
    from salotto.server.context import Context
    from salotto.server.state import Server

__all__ = [
    "SERVICES",
    "Accounts",
    "Writer",
    "grant_access_status",
    "is_service",
    "log_in",
    "log_out",
    "nick_protection_check",
    "persist_channel_state",
    "rename_to_guest",
    "restore_channel_state",
    "save_channel_state",
    "status_for",
]

log = logging.getLogger("salotto.accounts")

T = TypeVar("T")

# The services' pseudo-users: their nicks can't be taken, and messages to them are commands.
SERVICES = ("NickServ", "ChanServ")
_SERVICES_CF = frozenset(casefold(name) for name in SERVICES)

# Names whose is_registered answer is remembered before the memory starts over.
_REGISTERED_CACHE_SIZE = 10_000

# The login throttle's bucket for every name that is no account's (not a valid nick, so no account's).
UNKNOWN_ACCOUNTS_KEY = "*unknown*"
# Addresses remembered per account as its owner's (they logged in to it): the newest this many.
TRUSTED_ADDRESSES = 8
# An owner's address already on file is written again (its time moved forward) when it was last written
# this long ago: the newest TRUSTED_ADDRESSES are those last used, to a day, at one write a day at most.
TRUSTED_REFRESH_S = 24 * 3600.0


class Writer(Protocol):
    """Runs a write on the store's writer connection, wherever that lives, and returns its result."""

    def __call__(self, fn: Callable[[Storage], T], /) -> T: ...


class Accounts:
    """The account and channel registry of one server: store, hashing pool and throttles."""

    def __init__(
        self, store: Storage, offload: Offload, secret: bytes | None = None, writer: Writer | None = None
    ) -> None:
        """``store`` answers lookups; ``writer`` runs the writes (on ``store`` itself without it)."""
        self.store = store
        self._writer = writer
        self.offload = offload
        # Registered channels, read once at startup and written through: joins consult it often.
        self.channels: dict[str, RegisteredChannel] = {casefold(c.name): c for c in store.list_channels()}
        self._registered: dict[str, bool] = {}  # casefolded name -> is_registered's answer
        self.per_ip = Throttle()
        # Never forgets an account's bucket that is not full (that would reset the limit of the account
        # under attack); only existing accounts get one, so it holds no more buckets than there are accounts.
        self.per_account = Throttle(evict_partial=False)
        # Registrations (each costs a hash and a row): per address, and in all.
        self.registrations_per_ip = Throttle()
        self.registrations = Throttle()
        # Casefolded account name -> the ip_keys it logged in from -> when (wall clock), as in the store
        # (login_addresses), read from it the first time the account is asked about: the newest
        # TRUSTED_ADDRESSES, restarts or not. Every write goes through trust(), so this stays the same
        # as the store. Only existing accounts have an entry.
        self._trusted: dict[str, dict[str, float]] = {}
        # For SCRAM's fake salts: an unknown account must look like a known one (salotto.server.sasl),
        # across restarts too, so the runtime keeps it in the data directory.
        self.secret = secret or os.urandom(32)

    def get(self, name: str) -> StoredAccount | None:
        if not name or casefold(name) in _SERVICES_CF or valid_utf8(name) is not name:
            return None  # (bytes that were not UTF-8 name no account, and the database takes only text)
        return self.store.get_account(name)

    def is_registered(self, nick: str) -> bool:
        """Whether ``nick`` is a verified account's name (an unverified one protects nothing yet).

        Remembered per name: private history asks it for every message from a client that is not
        logged in (:func:`~salotto.server.handlers.history.history_identity`). Every account write
        goes through this class (:meth:`register`, :meth:`set_verified`, :meth:`delete`), which
        forgets the name it changes."""
        key = casefold(nick)
        known = self._registered.get(key)
        if known is None:
            account = self.get(nick)
            known = account is not None and account.verified
            if len(self._registered) >= _REGISTERED_CACHE_SIZE:
                self._registered.clear()
            self._registered[key] = known
        return known

    def write(self, fn: Callable[[Storage], T]) -> T:
        """Run ``fn`` on the writer connection and wait for it; ``fn`` must only use the store it is
        given. Raises :class:`StorageError`: the backend's own (AlreadyExists...) as they are, any other
        failure (the database locked or full, the writer stopped at shutdown) wrapped in one."""
        try:
            if self._writer is None:
                return fn(self.store)
            return self._writer(fn)
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"could not write to the store: {exc}") from exc

    def set_verified(self, name: str) -> None:
        self._registered.pop(casefold(name), None)
        self.write(lambda store: store.set_verified(name, True))

    def delete(self, name: str, founded: list[str] | None = None) -> None:
        """Delete the account, with the channels in ``founded`` (its own), in one transaction."""

        def delete(store: Storage) -> None:
            with store.transaction():
                for channel in founded or ():
                    store.drop_channel(channel)
                store.delete_account(name)

        self._registered.pop(casefold(name), None)
        self._trusted.pop(casefold(name), None)
        self.write(delete)

    def throttle(self, server: Server, client: Client, account: str) -> float:
        """Count one password attempt on ``account`` from the client's address, before it is checked;
        0.0 if it may go ahead, else seconds to wait. From an address the account logged in from before,
        only the address's own limit applies."""
        config = server.config
        now = server.clock()
        window = config.login_throttle_window_s
        address = ip_key(client.ip)
        wait = self.per_ip.take(address, config.login_attempts_per_ip, window, now)
        if wait:
            return wait
        limit = config.login_attempts_per_account
        if self.get(account) is None:
            # Names that are no account's share one bucket: they all fail anyway, and a bucket each would
            # let a spray of fresh names (free at SCRAM's first step) fill the throttle.
            return self.per_account.take(UNKNOWN_ACCOUNTS_KEY, limit, window, now)
        if address in self._owner_addresses(account):
            return 0.0
        return self.per_account.take(casefold(account), limit, window, now)

    def succeeded(self, server: Server, client: Client, account: str) -> None:
        """The password (or code) ``client`` gave for ``account`` was right: the attempt does not count
        against the account (only failures use its limit up)."""
        if ip_key(client.ip) not in self._owner_addresses(account):
            self.per_account.give_back(casefold(account), server.clock())

    def _owner_addresses(self, account: str) -> dict[str, float]:
        """The addresses (ip_key) an existing ``account`` logged in from, with when; from the store the
        first time (a few rows on the loop's own connection), then from memory."""
        name_cf = casefold(account)
        known = self._trusted.get(name_cf)
        if known is None:
            known = self._trusted[name_cf] = dict(self.store.login_addresses(account))
        return known

    def trust(self, server: Server, client: Client, account: str) -> None:
        """``client`` is logged in to ``account`` (or created it): its address is the owner's from now on,
        restarts included, and guessing from elsewhere does not hold it back there. The newest
        ``TRUSTED_ADDRESSES`` are kept. The store is written when the address is new to the account (or
        was last written more than ``TRUSTED_REFRESH_S`` ago), not at every login."""
        address = ip_key(client.ip)
        known = self._owner_addresses(account)
        now = server.wallclock()
        seen = known.get(address)
        if seen is not None and now - seen < TRUSTED_REFRESH_S:
            return
        known[address] = now
        for old in _oldest_first(known)[:-TRUSTED_ADDRESSES]:  # as the store does: the newest stay
            del known[old]
        try:
            self.write(lambda store: store.add_login_address(account, address, now, TRUSTED_ADDRESSES))
        except StorageError as exc:  # the address is the owner's until the server stops, at least
            log.error("could not store the login address of %s: %s", account, exc)

    def trusted(self, account: str) -> list[str]:
        """The addresses (ip_key) ``account`` was logged in to from, oldest first."""
        if self.get(account) is None:
            return []
        return _oldest_first(self._owner_addresses(account))


    def check_password(
        self, name: str, password: str, callback: Callable[[StoredAccount | None], None]
    ) -> None:
        """Verify off the loop; ``callback`` gets the account, or None for a wrong name or password."""
        account = self.get(name)
        stored = account.password_hash if account is not None else None

        def verify() -> bool:
            if stored is None:
                verify_password(password, _dummy_hash())  # as slow as a known account, and False
                return False
            return verify_password(password, stored)

        def done(outcome: Outcome[bool]) -> None:
            callback(account if outcome.value else None)

        self.offload.run(verify, done)

    def renew_scram(self, name: str, password: str, stored: str) -> None:
        """After a login that gave the password: if the account's SCRAM keys are missing or made with fewer
        rounds than today's, make them anew (off the loop) and store them. Nothing waits for it; a failure
        is logged, and the next login tries again.

        ``stored`` is the secret the password was checked against. The new one replaces it only if it is
        still the account's when the write runs: making the keys takes a fraction of a second, in which
        the account may have been dropped and registered anew, and that owner's password must stay."""
        if scram_is_current(stored):
            return

        def renew(store: Storage, secret: str) -> bool:
            # On the writer (the only connection that writes): nothing changes between the read and the write.
            with store.transaction():
                current = store.get_account(name)
                if current is None or current.password_hash != stored:
                    return False
                return store.set_password_hash(name, secret)

        def store(outcome: Outcome[str]) -> None:
            secret = outcome.value
            if secret is None:
                log.error("could not renew the SCRAM keys of %s: %s", name, outcome.error)
                return
            try:
                renewed = self.write(lambda store: renew(store, secret))
            except StorageError as exc:
                log.error("could not store the renewed SCRAM keys of %s: %s", name, exc)
                return
            if renewed:
                log.info("SCRAM keys of %s renewed", name)
            else:
                log.info("SCRAM keys of %s not renewed: the account changed meanwhile", name)

        self.offload.run(lambda: make_account_secret(password), store)

    def register(
        self,
        name: str,
        password: str,
        email: str | None,
        created: float,
        callback: Callable[[Outcome[StoredAccount]], None],
        *,
        verified: bool = True,
    ) -> None:
        """Hash off the loop, then store; ``callback`` gets the account, or the error: AlreadyExists if
        the name was taken meanwhile, anything else when hashing or the store failed (logged)."""

        def done(outcome: Outcome[str]) -> None:
            if outcome.value is None:
                log.error("could not hash a password: %s", outcome.error)
                callback(Outcome(error=outcome.error))
                return
            self._registered.pop(casefold(name), None)
            secret = outcome.value
            try:
                account = self.write(
                    lambda store: store.create_account(name, secret, created, email=email, verified=verified)
                )
            except Exception as exc:  # AlreadyExists, or the backend's own (disk full...)
                if not isinstance(exc, AlreadyExists):
                    log.error("could not store account %s: %s", name, exc)
                callback(Outcome(error=exc))
                return
            log.info("account %s registered", account.name)
            callback(Outcome(account))

        self.offload.run(lambda: make_account_secret(password), done)

    def access_level(self, channel_cf: str, account: str | None) -> str | None:
        """``founder``, ``op``, ``voice`` or None: what ``account`` is on a registered channel."""
        registration = self.channels.get(channel_cf)
        if registration is None or account is None:
            return None
        return registration.access.get(casefold(account))

    def refresh_channel(self, name: str) -> RegisteredChannel | None:
        """Re-read one registered channel after a write (None once dropped)."""
        registration = self.store.get_channel(name)
        if registration is None:
            self.channels.pop(casefold(name), None)
        else:
            self.channels[casefold(name)] = registration
        return registration


def _oldest_first(addresses: dict[str, float]) -> list[str]:
    """Addresses by when they were last used (then by address, as the store orders them)."""
    return sorted(addresses, key=lambda a: (addresses[a], a))


@functools.cache
def _dummy_hash() -> str:
    """A hash to check the password of an unknown account against, made once: the same cost as a real one."""
    return hash_password(os.urandom(16).hex())


def is_service(nick: str) -> bool:
    return casefold(nick) in _SERVICES_CF


def status_for(level: str | None) -> str:
    """The channel prefix mode an access level gives on join."""
    if level in ("founder", "op"):
        return "o"
    if level == "voice":
        return "v"
    return ""


def log_in(ctx: Context, account: StoredAccount) -> None:
    """``ctx.client`` is now logged in to ``account``: 900, account-notify, channel access."""
    server = ctx.server
    client = ctx.client
    client.account = account.name
    client.account_since = account.created
    if server.accounts is not None:
        server.accounts.trust(server, client, account.name)
    if client.nick_cf == casefold(account.name):
        server.nick_deadlines.pop(client, None)
    log.info("%s (%s) logged in as %s", client.nick, client.ip, account.name)
    ctx.reply(RPL_LOGGEDIN, client.prefix, account.name, f"You are now logged in as {account.name}")
    _announce_account(server, client, account.name, ctx)
    for channel in client.channels.values():
        grant_access_status(server, channel, client, ctx)


def log_out(server: Server, client: Client, ctx: Context | None = None) -> None:
    """Log ``client`` out (NickServ LOGOUT, through ``ctx``; or its account was dropped): 901,
    account-notify, and the nick protection of whatever nick it holds."""
    if client.account is None:
        return
    log.info("%s (%s) logged out of %s", client.nick, client.ip, client.account)
    client.account = None
    client.account_since = 0.0
    if ctx is not None and ctx.client is client:
        ctx.reply(RPL_LOGGEDOUT, client.prefix, "You are now logged out")
    else:
        line = format_line(RPL_LOGGEDOUT, [client.nick, client.prefix, "You are now logged out"], source=server.name)
        client.conn.write(encode_wire(line + "\r\n"))
        ctx = None
    _announce_account(server, client, "*", ctx)
    nick_protection_check(server, client, ctx, same_nick=True)


def _announce_account(server: Server, client: Client, name: str, ctx: Context | None = None) -> None:
    """account-notify: ``ACCOUNT <name>`` (``*`` for logged out) to the peers that asked, and to the
    client itself (through ``ctx`` when there is one, so it follows the 900/901 numeric)."""
    if not client.registered:
        return
    change = server.from_user(client, "ACCOUNT", [name])
    server.backplane.to_peers(client, change, cap="account-notify")
    if "account-notify" in client.caps:
        own = change.variant(client.tag_flags)
        if ctx is not None:
            ctx.send(own)
        else:
            client.conn.write(own)


def grant_access_status(server: Server, channel: Channel, client: Client, ctx: Context | None = None) -> None:
    """Give a member the prefix mode its account's access level on the channel calls for: a MODE from
    ChanServ to everyone (to the member itself through ``ctx`` when given, so it follows the
    member's own JOIN or 900)."""
    accounts = server.accounts
    if accounts is None:
        return
    wanted = status_for(accounts.access_level(channel.name_cf, client.account))
    if not wanted:
        return
    current = channel.status(client)
    if current is None or wanted in current:
        return
    server.channel_registry.set_status(channel, client, current + wanted)
    change = server.outgoing(f"ChanServ!ChanServ@{server.name}", "MODE", [channel.name, "+" + wanted, client.nick])
    if ctx is not None and ctx.client is client:
        server.backplane.to_channel(channel, change, client)
        ctx.send(change.variant(client.tag_flags))
    else:
        server.backplane.to_channel(channel, change)


def save_channel_state(store: Storage, channel: Channel) -> None:
    """Write a registered channel's topic and modes to ``store`` (a writer's: see :meth:`Accounts.write`)."""
    store.update_channel(
        channel.name,
        # As text: the database takes UTF-8 only (see valid_utf8).
        topic=(valid_utf8(channel.topic), channel.topic_set_by, float(channel.topic_set_at)),
        modes="".join(sorted(channel.modes)),
        key=None if channel.key is None else valid_utf8(channel.key),
        limit=channel.limit,
        clear_key=channel.key is None,
        clear_limit=channel.limit is None,
    )


def persist_channel_state(server: Server, channel: Channel) -> None:
    """Store a registered channel's topic and modes (after TOPIC or MODE changed them)."""
    accounts = server.accounts
    if accounts is None or channel.name_cf not in accounts.channels:
        return
    try:
        accounts.write(lambda store: save_channel_state(store, channel))
    except Exception as exc:  # the backend's own (disk full...): the change stands, unsaved
        log.error("could not store the state of %s: %s", channel.name, exc)
        return
    accounts.refresh_channel(channel.name)


def restore_channel_state(channel: Channel, registration: RegisteredChannel) -> None:
    """A registered channel comes back (first join after it emptied, or a restart)."""
    channel.topic = registration.topic
    channel.topic_set_by = registration.topic_setter
    channel.topic_set_at = int(registration.topic_time)
    channel.modes = set(registration.modes)
    channel.key = registration.key
    channel.limit = registration.limit


def nick_protection_check(
    server: Server, client: Client, ctx: Context | None = None, *, same_nick: bool = False
) -> None:
    """After a nick change or logout: a registered nick held by someone not logged in to it gets a
    warning and a deadline (``nick_protection_grace_s``), after which the tick renames them. With
    ``same_nick`` (a logout), a deadline already running for the nick stays: logging out of another
    account and in again, over and over, must not hold a registered nick for good."""
    accounts = server.accounts
    running = server.nick_deadlines.pop(client, None)
    if accounts is None or not client.registered:
        return
    if client.account is not None and casefold(client.account) == client.nick_cf:
        return
    if not accounts.is_registered(client.nick):
        return
    now = server.clock()
    deadline = now + server.config.nick_protection_grace_s
    if same_nick and running is not None:
        deadline = min(deadline, running)
    server.nick_deadlines[client] = deadline
    grace = max(deadline - now, 0.0)
    if client.account is None:
        how = "Log in"
        command = "/msg NickServ IDENTIFY <password>"
    else:  # IDENTIFY would answer that they are already logged in (to their own account)
        how = f"You are logged in as {client.account}: log out and log in to it"
        command = "/msg NickServ LOGOUT, then IDENTIFY <password>"
    text = (f"The nick {client.nick} is registered. {how} within {grace:.0f} seconds ({command}), "
            f"or change nick, or you will be renamed.")
    line = server.outgoing(f"NickServ!NickServ@{server.name}", "NOTICE", [client.nick, text]).variant(client.tag_flags)
    if ctx is not None and ctx.client is client:
        ctx.send(line)
    else:
        client.conn.write(line)


def rename_to_guest(server: Server, client: Client) -> None:
    """The grace period is over: give the registered nick back (``Guest<id>``, digits added if taken)."""
    server.nick_deadlines.pop(client, None)
    accounts = server.accounts
    if client.quitting or not client.registered or accounts is None or not accounts.is_registered(client.nick):
        return  # gone, or the account was dropped meanwhile
    guest = f"Guest{client.id}"
    suffix = 0
    # Neither someone's nick nor a registered one (or the guest would squat that in turn).
    while server.nick_registry.holder(casefold(guest)) is not None or accounts.get(guest) is not None:
        suffix += 1
        guest = f"Guest{client.id}_{suffix}"
    old = client.nick

    def renamed(own: bytes | None) -> None:
        if own is None:  # taken meanwhile (by a client of another node): the next tick tries again
            if not client.quitting:
                server.nick_deadlines[client] = server.clock()
            return
        client.conn.write(own)
        text = f"You did not log in to {old} in time, so you are now {guest}."
        client.conn.write(server.outgoing(f"NickServ!NickServ@{server.name}", "NOTICE", [guest, text])
                          .variant(client.tag_flags))

    server.rename(client, guest, renamed)
