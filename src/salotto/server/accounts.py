"""Accounts and registered channels as the server uses them: logins, registrations, nick protection.

The store (:mod:`salotto.storage`) keeps accounts and registered channels; this module is the server's
side of them. Password hashing (scrypt, tens of milliseconds) runs on :class:`~salotto.server.offload.Offload`
threads; the results come back on the loop thread. Nothing here waits for the store: the directory of
accounts, their login addresses and the registered channels is read once at startup and kept in memory
(NICK can check whether a nick is registered without a round trip), and writes run on the store's one
writer, off the loop (:meth:`salotto.storage.store.Store.write`), each entering the directory when the
store took it. A handler that answers after a write holds its connection's input meanwhile
(``Context.wait``), so the connection's next command sees the write done.

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
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from salotto.passwords import hash_password, make_account_secret, scram_is_current, verify_password
from salotto.proto.casemap import casefold
from salotto.proto.framing import encode_wire, valid_utf8
from salotto.proto.message import format_line
from salotto.proto.numerics import RPL_LOGGEDIN, RPL_LOGGEDOUT
from salotto.server.flood import Throttle, ip_key
from salotto.server.markers import ReadMarkers
from salotto.server.offload import Offload
from salotto.storage.base import AlreadyExists, AlwaysOnUser, RegisteredChannel, Storage, StoredAccount
from salotto.storage.outcome import Outcome

if TYPE_CHECKING:
    from salotto.server.channel import Channel
    from salotto.server.client import Client
    from salotto.server.context import Context
    from salotto.server.state import Server

__all__ = [
    "SERVICES",
    "SERVICES_CF",
    "Accounts",
    "Writer",
    "channel_state",
    "grant_access_status",
    "is_service",
    "log_in",
    "log_out",
    "nick_protection_check",
    "persist_channel_state",
    "rename_to_guest",
    "restore_channel_state",
    "status_for",
]

log = logging.getLogger("salotto.accounts")

T = TypeVar("T")

# The services' pseudo-users: their nicks can't be taken, and messages to them are commands.
SERVICES = ("NickServ", "ChanServ")
SERVICES_CF = frozenset(casefold(name) for name in SERVICES)


# The login throttle's bucket for every name that is no account's (not a valid nick, so no account's).
UNKNOWN_ACCOUNTS_KEY = "*unknown*"
# Addresses remembered per account as its owner's (they logged in to it): the newest this many.
TRUSTED_ADDRESSES = 8
# An owner's address already on file is written again (its time moved forward) when it was last written
# this long ago: the newest TRUSTED_ADDRESSES are those last used, to a day, at one write a day at most.
TRUSTED_REFRESH_S = 24 * 3600.0


def _ignore_change(kind: str, name: str) -> None:
    return


def _ignore(outcome: Outcome[Any]) -> None:
    """For writes nobody waits for: what matters was done when the outcome came (errors are logged)."""


class Writer(Protocol):
    """Runs writes on the store's one writer connection (:class:`salotto.storage.store.Store`), wherever
    that lives; ``callback`` gets the outcome on the loop thread, later or at once."""

    def write(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None], /) -> None: ...


class Accounts:
    """The account and channel registry of one server: its directory, the writes, hashing and throttles.

    The directory (every account, its login addresses, every registered channel) is read from the store
    once, at startup, and kept in memory: NICK, JOIN and the login throttle consult it on the loop, and
    none of them may wait for a database round trip. Every change is written through :meth:`write`
    (the store's writer, off the loop) and enters the directory when the store took it, before the
    caller hears back: the store stays the authority (a name taken meanwhile is refused there)."""

    def __init__(
        self,
        writer: Writer,
        offload: Offload,
        secret: bytes | None = None,
        *,
        accounts: Iterable[StoredAccount] = (),
        login_addresses: Iterable[tuple[str, str, float]] = (),
        channels: Iterable[RegisteredChannel] = (),
        read_markers: Iterable[tuple[str, str, float]] = (),
        always_on_users: Iterable[AlwaysOnUser] = (),
    ) -> None:
        self._writer = writer
        self.offload = offload
        self._accounts: dict[str, StoredAccount] = {casefold(a.name): a for a in accounts}
        # Registered channels: joins consult them often.
        self.channels: dict[str, RegisteredChannel] = {casefold(c.name): c for c in channels}
        self._writing: dict[str, int] = {}  # casefolded channel -> its writes on their way to the store
        self.per_ip = Throttle()
        # Never forgets an account's bucket that is not full (that would reset the limit of the account
        # under attack); only existing accounts get one, so it holds no more buckets than there are accounts.
        self.per_account = Throttle(evict_partial=False)
        # Registrations (each costs a hash and a row): per address, and in all.
        self.registrations_per_ip = Throttle()
        self.registrations = Throttle()
        # Casefolded account name -> the ip_keys it logged in from -> when (wall clock), as in the store
        # (login_addresses): the newest TRUSTED_ADDRESSES, restarts or not. Every write goes through
        # trust(), so this stays the same as the store.
        self._trusted: dict[str, dict[str, float]] = {}
        for name_cf, address, seen in login_addresses:
            self._trusted.setdefault(name_cf, {})[address] = seen
        # For SCRAM's fake salts: an unknown account must look like a known one (salotto.server.sasl),
        # across restarts too, so the runtime keeps it in the data directory.
        self.secret = secret or os.urandom(32)
        self.markers = ReadMarkers(read_markers)
        # The always-on users present when the server last stopped: the server recreates them at startup.
        self.returning: list[AlwaysOnUser] = list(always_on_users)
        # Told of each change to the directory this server made ("account" or "channel", and the name): a
        # cluster node tells the others, which read that entry again from the shared store (refresh).
        self.on_change: Callable[[str, str], None] = _ignore_change

    def refresh(self, kind: str, name: str) -> None:
        """Read one entry of the directory again from the store: another node of a cluster changed it."""
        cf = casefold(name)
        if kind == "account":
            def got(outcome: Outcome[StoredAccount | None]) -> None:
                if outcome.error is not None:
                    log.warning("could not read account %s again: %s", name, outcome.error)
                elif outcome.value is None:
                    self._accounts.pop(cf, None)
                    self._trusted.pop(cf, None)
                else:
                    self._accounts[cf] = outcome.value

            self.write(lambda store: store.get_account(name), got)
        elif kind == "channel":
            def got_channel(outcome: Outcome[RegisteredChannel | None]) -> None:
                if outcome.error is not None:
                    log.warning("could not read channel %s again: %s", name, outcome.error)
                elif cf in self._writing:
                    return  # a change of ours on its way: it reads the channel back itself
                elif outcome.value is None:
                    self.channels.pop(cf, None)
                else:
                    self.channels[cf] = outcome.value

            self.write(lambda store: store.get_channel(name), got_channel)

    @classmethod
    def load(cls, storage: Storage, writer: Writer, offload: Offload, secret: bytes | None = None) -> Accounts:
        """The registry with its directory read from ``storage`` (at startup, before the server serves)."""
        return cls(writer, offload, secret, accounts=storage.list_accounts(),
                   login_addresses=storage.list_login_addresses(), channels=storage.list_channels(),
                   read_markers=storage.list_read_markers(), always_on_users=storage.list_always_on_users())

    def get(self, name: str) -> StoredAccount | None:
        if not name or casefold(name) in SERVICES_CF or valid_utf8(name) is not name:
            return None  # (bytes that were not UTF-8 name no account, and the database takes only text)
        return self._accounts.get(casefold(name))

    def always_on_setting(self, name: str) -> bool | None:
        """The account's own always-on setting (NickServ SET ALWAYS-ON), None when it has not said."""
        account = self._accounts.get(casefold(name))
        return None if account is None else account.always_on

    def is_registered(self, nick: str) -> bool:
        """Whether ``nick`` is a verified account's name (an unverified one protects nothing yet)."""
        account = self._accounts.get(casefold(nick))
        return account is not None and account.verified

    def is_registered_cf(self, nick_cf: str) -> bool:
        """:meth:`is_registered` of a nick already casefolded."""
        account = self._accounts.get(nick_cf)
        return account is not None and account.verified

    def write(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        """Run ``fn`` on the store's writer; ``callback`` gets its outcome on the loop thread. ``fn`` must
        only use the store it is given. Errors: the backend's own (AlreadyExists...) as they are, any other
        failure (the database locked or full, the store closed) as a :class:`StorageError`."""
        self._writer.write(fn, callback)

    def change_channel(
        self,
        name: str,
        fn: Callable[[Storage], T],
        callback: Callable[[Outcome[T]], None] = _ignore,
        *,
        expected: RegisteredChannel | None = None,
    ) -> None:
        """Write a change of the registered channel ``name`` (registering or dropping it too), and read
        the channel back in the same transaction; ``callback`` then gets what ``fn`` returned.

        ``expected`` is the registration as the change leaves it, when the caller knows it (a topic or a
        mode change): the directory takes it at once, so that the channel emptied and joined again before
        the write is back comes back as it was left. Once no write of the channel is on its way, the
        directory takes the channel as the store has it (gone once dropped)."""
        cf = casefold(name)
        if expected is not None:
            self.channels[cf] = expected
        self._writing[cf] = self._writing.get(cf, 0) + 1

        def change(store: Storage) -> tuple[T, RegisteredChannel | None]:
            with store.transaction():
                return fn(store), store.get_channel(name)

        def done(outcome: Outcome[tuple[T, RegisteredChannel | None]]) -> None:
            left = self._writing.pop(cf) - 1
            if left:
                self._writing[cf] = left
            if outcome.error is not None:  # (what was expected stands: the live channel has it)
                callback(Outcome(error=outcome.error))
                return
            result, registration = outcome.unwrap()
            if not left:
                if registration is None:
                    self.channels.pop(cf, None)
                else:
                    self.channels[cf] = registration
            self.on_change("channel", name)
            callback(Outcome(result))

        self.write(change, done)

    def delete_expired(self, account: StoredAccount, callback: Callable[[Outcome[bool]], None]) -> None:
        """Delete ``account`` if the store still has it unverified, as it was (not verified meanwhile,
        nor registered anew); ``callback`` gets whether it was deleted."""

        def delete(store: Storage) -> bool:
            with store.transaction():
                current = store.get_account(account.name)
                if current is None or current.verified or current.created != account.created:
                    return False
                return store.delete_account(account.name)

        def done(outcome: Outcome[bool]) -> None:
            current = self.get(account.name)
            if outcome.value and current is not None and current.created == account.created:
                del self._accounts[casefold(account.name)]
                self._trusted.pop(casefold(account.name), None)
                self.on_change("account", account.name)
            callback(outcome)

        self.write(delete, done)

    def set_always_on(self, name: str, always_on: bool | None, callback: Callable[[Outcome[bool]], None]) -> None:
        """Store an account's always-on setting (None: the server's default), then enter it in the directory."""
        def done(outcome: Outcome[bool]) -> None:
            account = self.get(name)
            if outcome.value and account is not None:
                self._accounts[casefold(name)] = replace(account, always_on=always_on)
                self.on_change("account", name)
            callback(outcome)

        self.write(lambda store: store.set_always_on(name, always_on), done)

    def always_on_count(self) -> int:
        """Accounts that turned always-on on themselves (NickServ SET ALWAYS-ON ON)."""
        return sum(1 for account in self._accounts.values() if account.always_on)

    def set_verified(self, name: str, callback: Callable[[Outcome[bool]], None] = _ignore) -> None:
        def done(outcome: Outcome[bool]) -> None:
            account = self.get(name)
            if outcome.value and account is not None:
                self._accounts[casefold(name)] = replace(account, verified=True)
                self.on_change("account", name)
            callback(outcome)

        self.write(lambda store: store.set_verified(name, True), done)

    def delete(self, name: str, callback: Callable[[Outcome[list[str]]], None] = _ignore) -> None:
        """Delete the account, with the channels it founded, in one transaction; ``callback`` gets the
        names of those channels. Its access entries on other channels go too."""

        def delete(store: Storage) -> tuple[list[str], list[RegisteredChannel]]:
            with store.transaction():
                founded = [c.name for c in store.list_channels() if casefold(c.founder) == casefold(name)]
                for channel in founded:
                    store.drop_channel(channel)
                store.delete_account(name)
                return founded, store.list_channels()

        def done(outcome: Outcome[tuple[list[str], list[RegisteredChannel]]]) -> None:
            if outcome.error is not None:
                callback(Outcome(error=outcome.error))
                return
            founded, channels = outcome.unwrap()
            self._accounts.pop(casefold(name), None)
            self._trusted.pop(casefold(name), None)
            self.markers.forget_account(name)
            fresh = {casefold(c.name): c for c in channels}
            for cf in self._writing:  # a change still on its way stays as the directory has it
                if cf in fresh and cf in self.channels:
                    fresh[cf] = self.channels[cf]
            self.channels = fresh
            self.on_change("account", name)
            for channel in founded:
                self.on_change("channel", channel)
            callback(Outcome(founded))

        self.write(delete, done)

    def throttle(self, server: Server, client: Client, account: str) -> float:
        """Count one password attempt on ``account`` from the client's address, before it is checked;
        0.0 if it may go ahead, else seconds to wait. From an address the account logged in from before,
        only the address's own limit applies."""
        return self.throttle_ip(server, client.ip, account)

    def throttle_ip(self, server: Server, ip: str, account: str) -> float:
        """:meth:`throttle` for an attempt from ``ip`` that is no IRC client's (an upload's Basic auth):
        the same buckets, so HTTP guesses no faster than SASL does."""
        config = server.config
        now = server.clock()
        window = config.login_throttle_window_s
        address = ip_key(ip)
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
        self.succeeded_ip(server, client.ip, account)

    def succeeded_ip(self, server: Server, ip: str, account: str, *, refund_address: bool = False) -> None:
        """:meth:`succeeded` for an attempt from ``ip`` that is no IRC client's. ``refund_address``: the
        address's attempt is given back too (an upload logs in each time: only failures may use up the
        address's limit, or ten pictures a minute would be all a household behind one address could send)."""
        if refund_address:
            self.per_ip.give_back(ip_key(ip), server.clock())
        if ip_key(ip) not in self._owner_addresses(account):
            self.per_account.give_back(casefold(account), server.clock())

    def _owner_addresses(self, account: str) -> dict[str, float]:
        """The addresses (ip_key) an existing ``account`` logged in from, with when."""
        return self._trusted.setdefault(casefold(account), {})

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

        def stored(outcome: Outcome[bool]) -> None:
            if outcome.error is not None:  # the address is the owner's until the server stops, at least
                log.error("could not store the login address of %s: %s", account, outcome.error)

        self.write(lambda store: store.add_login_address(account, address, now, TRUSTED_ADDRESSES), stored)

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
            # The account may have been dropped (or dropped and registered anew) while the hash ran.
            current = self.get(name)
            same = account is not None and current is not None and current.created == account.created
            callback(current if outcome.value and same else None)

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
        stored_hash = stored

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

            def stored(outcome: Outcome[bool]) -> None:
                if outcome.error is not None:
                    log.error("could not store the renewed SCRAM keys of %s: %s", name, outcome.error)
                elif outcome.value:
                    account = self.get(name)
                    if account is not None and account.password_hash == stored_hash:
                        self._accounts[casefold(name)] = replace(account, password_hash=secret)
                        self.on_change("account", name)
                    log.info("SCRAM keys of %s renewed", name)
                else:
                    log.info("SCRAM keys of %s not renewed: the account changed meanwhile", name)

            self.write(lambda store: renew(store, secret), stored)

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
            secret = outcome.value

            def stored(outcome: Outcome[StoredAccount]) -> None:
                account = outcome.value
                if account is None:  # AlreadyExists, or the backend's own (disk full...)
                    if not isinstance(outcome.error, AlreadyExists):
                        log.error("could not store account %s: %s", name, outcome.error)
                    callback(outcome)
                    return
                self._accounts[casefold(account.name)] = account
                self.on_change("account", account.name)
                log.info("account %s registered", account.name)
                callback(outcome)

            self.write(lambda store: store.create_account(name, secret, created, email=email, verified=verified),
                       stored)

        self.offload.run(lambda: make_account_secret(password), done)

    def access_level(self, channel_cf: str, account: str | None) -> str | None:
        """``founder``, ``op``, ``voice`` or None: what ``account`` is on a registered channel."""
        registration = self.channels.get(channel_cf)
        if registration is None or account is None:
            return None
        return registration.access.get(casefold(account))


def _oldest_first(addresses: dict[str, float]) -> list[str]:
    """Addresses by when they were last used (then by address, as the store orders them)."""
    return sorted(addresses, key=lambda a: (addresses[a], a))


@functools.cache
def _dummy_hash() -> str:
    """A hash to check the password of an unknown account against, made once: the same cost as a real one."""
    return hash_password(os.urandom(16).hex())


def is_service(nick: str) -> bool:
    return casefold(nick) in SERVICES_CF


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
    server.logged_in(client, account.name)
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
    server.logged_out(client)
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
    session = ctx.session if ctx is not None else client
    server.backplane.to_peers(client, change, cap="account-notify", exclude=session)
    if "account-notify" in session.caps:
        own = change.variant(session.tag_flags)
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
        server.backplane.to_channel(channel, change, ctx.session)
        ctx.send(change.variant(ctx.session.tag_flags))
    else:
        server.backplane.to_channel(channel, change)


def channel_state(channel: Channel) -> dict[str, Any]:
    """A registered channel's topic and modes as :meth:`Storage.update_channel` takes them: taken on the
    loop, for a write that runs on the store's thread while the channel goes on changing."""
    return {
        # As text: the database takes UTF-8 only (see valid_utf8).
        "topic": (valid_utf8(channel.topic), channel.topic_set_by, float(channel.topic_set_at)),
        "modes": "".join(sorted(channel.modes)),
        "key": None if channel.key is None else valid_utf8(channel.key),
        "limit": channel.limit,
        "clear_key": channel.key is None,
        "clear_limit": channel.limit is None,
    }


def persist_channel_state(server: Server, channel: Channel) -> None:
    """Store a registered channel's topic and modes (after TOPIC or MODE changed them). Nothing waits
    for it: the change stands whether or not the store takes it (a failure is logged)."""
    accounts = server.accounts
    if accounts is None or channel.name_cf not in accounts.channels:
        return
    name = channel.name

    def stored(outcome: Outcome[None]) -> None:
        if outcome.error is not None:  # the backend's own (disk full...): the change stands, unsaved
            log.error("could not store the state of %s: %s", name, outcome.error)

    state = channel_state(channel)
    registration = accounts.channels[channel.name_cf]
    topic, setter, topic_time = state["topic"]
    expected = replace(registration, topic=topic, topic_setter=setter, topic_time=topic_time,
                       modes=state["modes"], key=state["key"], limit=state["limit"])
    accounts.change_channel(name, lambda store: store.update_channel(name, **state), stored, expected=expected)


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
    session = ctx.session if ctx is not None and ctx.client is client else client
    line = server.outgoing(f"NickServ!NickServ@{server.name}", "NOTICE", [client.nick, text]).variant(session.tag_flags)
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
