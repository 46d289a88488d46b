"""The server's state and the life of a connection: accept, dispatch, disconnect, timers.

Transport-independent: a transport hands in lines and a :class:`~salotto.server.client.Connection`;
everything here runs on the event loop's thread and never blocks: the store's work runs off it and its
results come back as callbacks (see :mod:`salotto.storage.store`).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from salotto import __version__
from salotto.config import Config
from salotto.proto.casemap import casefold
from salotto.proto.errors import MalformedMessage
from salotto.proto.framing import decode_wire, encode_wire
from salotto.proto.message import parse
from salotto.proto.modes import BOT_MODE
from salotto.proto.numerics import ERR_INPUTTOOLONG, ERR_UNKNOWNERROR
from salotto.server import monitor
from salotto.server.accounts import Accounts, grant_access_status, rename_to_guest, restore_channel_state
from salotto.server.backplane import Backplane, LocalBackplane
from salotto.server.channel import Channel
from salotto.server.client import DETACHED, Client, Connection
from salotto.server.commands import COMMANDS
from salotto.server.context import Context
from salotto.server.dispatch import dispatch
from salotto.server.fanout import Outgoing
from salotto.server.flood import AddressSet, Throttle, ip_key
from salotto.server.handlers import multiline
from salotto.server.handlers.markers import READ_MARKER_CAP
from salotto.server.handlers.registration import ACCOUNT_CAPABILITIES, CAPABILITIES
from salotto.server.handlers.search import SEARCH_CAP, SearchGate
from salotto.server.isupport import isupport_tokens
from salotto.server.multiline import CAPABILITY as MULTILINE
from salotto.server.offload import InlineOffload, Offload
from salotto.server.parties import Parties
from salotto.server.pending import PendingConnection, PendingConnections
from salotto.server.push import PUSH_CAPS, PUSH_TAG_FLAGS, Push, PushConnection
from salotto.server.registry import (
    ChannelRegistry,
    JoinRequest,
    JoinResult,
    LocalChannelRegistry,
    LocalNickRegistry,
    NickRegistry,
)
from salotto.server.server_password import ServerPasswordGate
from salotto.server.stats import ServerStats, disconnect_category
from salotto.server.verification import Mailer, no_mailer
from salotto.storage.base import AlwaysOnUser, RegisteredChannel
from salotto.storage.outcome import Outcome
from salotto.storage.store import Store

__all__ = ["Server", "WhowasEntry"]

log = logging.getLogger("salotto.server")

# What always-on marks a user away with when its last connection goes (cleared when one comes back).
ALWAYS_ON_AWAY = "Not connected (always-on)"

DEFAULT_MOTD = [
    "Welcome to salotto.",
    "Everyone lands in #lobby: say hello. /join #name opens another room, /msg nick talks privately.",
]


@dataclass(frozen=True, slots=True)
class WhowasEntry:
    nick: str
    user: str
    host: str
    realname: str
    left_at: int


class Server:
    """All users and channels of one server process."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        nick_registry: NickRegistry | None = None,
        channel_registry: ChannelRegistry | None = None,
        backplane: Backplane | None = None,
    ) -> None:
        self.clock = clock
        self.wallclock = wallclock
        self.created = wallclock()
        self.version = f"salotto-{__version__}"
        self.clients: set[Client] = set()
        # The seams (see docs/architecture.md, "Seams"): who holds which nick (registering clients too),
        # the channels' state, and every delivery to anyone but a command's sender. Handlers go through
        # these, never around them (tests/test_layers.py), so a clustered implementation plugs in here.
        self.nick_registry: NickRegistry = nick_registry if nick_registry is not None else LocalNickRegistry()
        self.channel_registry: ChannelRegistry = (
            channel_registry if channel_registry is not None else LocalChannelRegistry()
        )
        self.backplane: Backplane = backplane if backplane is not None else LocalBackplane(self)
        self.whowas: deque[WhowasEntry] = deque()
        self.per_ip: Counter[str] = Counter()
        # New connections per address (ip_key) per connect_throttle_window_s.
        self.connect_throttle = Throttle()
        # Connections the process can hold with the descriptors its open-files limit leaves (set by the
        # runtime), counting those that are not clients yet (pending: TLS handshakes, page loads, WebSocket
        # handshakes): past it a connection is refused, so the descriptors the store and the listeners
        # need stay free.
        self.fd_budget: int | None = None
        self.pending = PendingConnections()
        self._descriptor_warned_at = -1e9
        self.internal_errors = 0
        # SEARCH's turns and per-address allowance (made at the first search).
        self.search_gate: SearchGate | None = None
        self.stats = ServerStats()
        # Kept up to date rather than counted, so LUSERS in a connect storm costs nothing.
        self.registered_count = 0
        self.registered_peak = 0  # the most registered at once (LUSERS 265/266)
        self.invisible_count = 0
        self.opers: set[Client] = set()
        # MONITOR: casefolded nick -> the clients watching it (salotto.server.monitor).
        self.monitors: dict[str, set[Client]] = {}
        # Casefolded account -> this node's connections logged in to it (read markers reach them all).
        self.logins: dict[str, set[Client]] = {}
        # Several devices on one nick: how many devices are attached (Client.devices), and the users
        # whose own connection is gone and who stay (always-on, or devices left): not in ``clients``.
        self.device_count = 0
        self.detached_users: set[Client] = set()
        # Always-on users with no connection at all -> since when (wall clock: what reached them since is
        # replayed to the next connection) and whether always-on marked them away (cleared when one comes).
        self.absent: dict[Client, tuple[float, bool]] = {}
        # Always-on users as the store keeps them (so that a crash loses little): the casefolded accounts with
        # a row on file, and those whose row is to be written (the user) or deleted (None) on the next tick.
        # Casefolded account -> the user whose row the store keeps for a restart (one per account).
        self.always_on_kept: dict[str, Client] = {}
        self.always_on_changed: dict[str, Client | None] = {}
        self.shutting_down = False
        # Several nodes act as one network (salotto.cluster): watchers and peers may be on other nodes.
        self.clustered = False
        # More /metrics families (name, type, help, value), from the cluster's node.
        self.extra_metrics: Callable[[], list[tuple[str, str, str, float]]] | None = None
        # Set by the runtime: the port of the first TLS listener (as bound), None without one. STS is
        # advertised only when there is one.
        self.tls_port: int | None = None
        # The upload URL advertised as soju.im/FILEHOST (set by the runtime once the web port listens).
        self.filehost: str | None = None
        # Set by the runtime: reloads the config file, returns an error text or None.
        self.rehash_hook: Callable[[], str | None] | None = None
        # Set by attach_history when history is on (the runtime owns the storage connections).
        self.history: Store | None = None
        # Who may try the server password (server_password_hash), how often: salotto.server.server_password.
        self.password_gate = ServerPasswordGate()
        # Set by attach_accounts (accounts, services and registered channels need the store).
        self.accounts: Accounts | None = None
        # Set by attach_push (Web Push: subscriptions and the runtime's sender), None when it is off.
        self.push: Push | None = None
        # Clients holding a registered nick they are not logged in to -> when the tick renames them.
        self.nick_deadlines: dict[Client, float] = {}
        # Clients with a draft/multiline batch open -> when the tick drops it (multiline_timeout_s).
        self.open_batches: dict[Client, float] = {}
        # Where password hashing and mail run: the runtime sets a thread pool (salotto.threads).
        self.offload: Offload = InlineOffload()
        # How verification codes are mailed (salotto.mail.send_code, set by the runtime).
        self.mailer: Mailer = no_mailer
        self._ids = itertools.count(1)
        self._msgid_prefix = os.urandom(4).hex()
        # The tokens private history knows connections that are not logged in by (salotto.server.parties).
        self.parties = Parties(self._msgid_prefix + "-", config.whowas_max_entries)
        self._msgids = itertools.count(1)
        self._batches = itertools.count(1)
        self.config = config
        self.apply_config(config)

    # -- configuration ---------------------------------------------------------------------------

    def apply_config(self, config: Config) -> None:
        """Take a (re)loaded config: limits, MOTD and autojoin channels apply from now on."""
        motd = self._read_motd(config.motd_file)  # first: an unreadable file changes nothing
        self.config = config
        self.throttle_exempt = AddressSet(config.throttle_exempt)
        self.trusted_proxies = AddressSet(config.trusted_proxies)  # read by the transports
        self.parties.max_departed = config.whowas_max_entries
        self.name = config.server_name
        self.motd = motd
        if self.history is not None:
            self.history.config = config
        for name in config.autojoin:
            self.channel_registry.ensure_permanent(name, casefold(name), int(self.wallclock()))
        self.isupport = self._isupport()
        if self.accounts is not None:
            self.accounts.markers.max_targets = config.read_markers_max_targets
            self.accounts.markers.max_total = config.read_markers_max_total
            self._recheck_absent(lambda user: True)  # always_on_default or its limit may have changed

    @staticmethod
    def _read_motd(path: str) -> list[str]:
        if not path:
            return list(DEFAULT_MOTD)
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\r\n") for line in f]

    def attach_history(self, history: Store | None) -> None:
        self.history = history
        self.isupport = self._isupport()

    def _isupport(self) -> list[str]:
        return isupport_tokens(self.config, history=self.history is not None, filehost=self.filehost,
                               vapid=self.push.sender.public_key if self.push is not None else None)

    def attach_push(self, push: Push | None) -> None:
        """Web Push on (with the runtime's sender and the subscriptions on file) or off."""
        self.push = push
        self.isupport = self._isupport()
        for user in self.absent:
            self.watch_for_push(user)

    def watch_for_push(self, user: Client) -> None:
        """``user`` (detached) is absent now, or its subscriptions changed: while it is absent with push
        subscriptions, what reaches it is looked at for pushes (salotto.server.push); otherwise dropped."""
        if not user.detached:
            return
        push = self.push
        if (push is not None and user in self.absent and user.account is not None and not user.quitting
                and push.of(user.account)):
            if not isinstance(user.conn, PushConnection):
                user.conn = PushConnection(push, user)
                user.tag_flags = PUSH_TAG_FLAGS
        elif user.conn is not DETACHED:
            user.conn = DETACHED
            user.tag_flags = 0

    def set_filehost(self, url: str | None) -> None:
        """Advertise ``url`` as where files are uploaded (soju.im/FILEHOST); None: no uploads."""
        self.filehost = url
        self.isupport = self._isupport()

    def attach_accounts(self, accounts: Accounts | None) -> None:
        self.accounts = accounts
        if accounts is None:
            return
        accounts.markers.max_targets = self.config.read_markers_max_targets
        accounts.markers.max_total = self.config.read_markers_max_total
        for name_cf, registration in accounts.channels.items():
            channel = self.channel_registry.get(name_cf)  # an autojoin channel, there from the start
            if channel is not None:
                restore_channel_state(channel, registration)
        returning, accounts.returning = accounts.returning, []
        for stored in returning:
            self._recreate(stored)

    def _recreate(self, stored: AlwaysOnUser) -> None:
        """An always-on user that was here when the server stopped comes back, detached, in its channels."""
        accounts = self.accounts
        assert accounts is not None
        account = accounts.get(stored.account)
        nick_cf = casefold(stored.nick)
        key = casefold(stored.account)
        self.always_on_changed[key] = None  # its row goes, unless the user comes back (below)
        if account is None or self.nick_registry.holder(nick_cf) is not None:
            return
        user = Client(DETACHED, next(self._ids), self.clock(), self.wallclock())
        self._detach(user)
        user.nick, user.nick_cf, user.user, user.realname = stored.nick, nick_cf, stored.username, stored.realname
        user.host = self.name
        self.logged_in(user, account.name)
        user.account_since = account.created
        if not self._may_stay(user):
            self.detached_users.discard(user)
            self._unindex_login(user)
            return
        claimed: list[bool] = []
        self.nick_registry.claim(user, nick_cf, claimed.append)
        if claimed != [True]:  # a registry that answers later: nobody can be connected yet, but play safe
            self.detached_users.discard(user)
            self._unindex_login(user)
            return
        user.registered = True
        self.registered_count += 1
        self.registered_peak = max(self.registered_peak, self.registered_count)
        del self.always_on_changed[key]
        self.always_on_kept[key] = user
        user.away = stored.away
        self.absent[user] = (stored.absent_since, stored.away == ALWAYS_ON_AWAY)
        self.watch_for_push(user)
        for name in stored.channels:
            registration = accounts.channels.get(casefold(name))

            def create(name: str = name, registration: RegisteredChannel | None = registration) -> Channel:
                channel = Channel(name if registration is None else registration.name, casefold(name),
                                  int(self.wallclock()))
                if registration is not None:
                    restore_channel_state(channel, registration)
                return channel

            request = JoinRequest(name, casefold(name), None, bypass=True, founder_op=False, create=create)

            def joined(result: JoinResult, user: Client = user) -> None:
                if isinstance(result, Channel):  # its access list's status, as on a join
                    grant_access_status(self, result, user)

            self.channel_registry.join(user, request, joined)
        log.info("always-on %s is back, detached, in %d channels", user.nick, len(user.channels))

    def _save_always_on(self) -> None:
        """At shutdown: the always-on users here now, to be recreated at the next start."""
        accounts = self.accounts
        if accounts is None:
            return
        now = int(self.wallclock() * 1000) / 1000
        chosen: dict[str, Client] = {}  # one per account: the one kept so far, else the first
        for user in self._users():
            if user.account is not None and user.registered and not user.quitting and self.always_on(user):
                key = casefold(user.account)
                if key not in chosen or self.always_on_kept.get(key) is user:
                    chosen[key] = user
        users = [self._kept_form(user, self.absent.get(user, (now, False))[0]) for user in chosen.values()]
        self.always_on_changed.clear()

        def saved(outcome: Outcome[None]) -> None:
            if outcome.error is not None:
                log.error("could not keep the always-on users for the next start: %s", outcome.error)

        accounts.write(lambda store: store.save_always_on_users(users), saved)

    @staticmethod
    def _kept_form(user: Client, absent_since: float) -> AlwaysOnUser:
        assert user.account is not None
        return AlwaysOnUser(user.account, user.nick, user.user, user.realname,
                            tuple(c.name for c in user.channels.values()),
                            user.away if user.away is not None else ALWAYS_ON_AWAY, absent_since)

    def always_on_changed_for(self, user: Client) -> None:
        """``user``'s nick, channels or presence changed: what the store keeps of it is written on the next
        tick, if it is always-on (and forgotten if it no longer is, or is gone)."""
        account = user.account
        if account is None or self.accounts is None or user.primary is not None:
            return
        key = casefold(account)
        owner = self.always_on_kept.get(key)
        if owner is not None and owner is not user and not owner.quitting:
            return  # the account's always-on user is another of its nicks
        if user.registered and not user.quitting and self.always_on(user):
            self.always_on_changed[key] = user
        elif owner is user:
            self.always_on_changed[key] = None

    def always_on_setting_changed(self, account: str) -> None:
        """``account``'s always-on setting changed (NickServ SET): kept for a restart or no longer, and a user
        of it left with no connection meanwhile quits if it may no longer stay."""
        for user in list(self.logins.get(casefold(account), ())):
            if user.primary is None:
                self.always_on_changed_for(user)
        self._recheck_absent(lambda user: casefold(user.account or "") == casefold(account))

    def _recheck_absent(self, which: Callable[[Client], bool]) -> None:
        for user in list(self.detached_users):
            if which(user) and not user.devices and not user.quitting and not self._may_stay(user):
                self._last_session_gone(user, "Quit: not always-on")

    def flush_always_on(self) -> None:
        """Hand the always-on users that changed since the last call to the store (one write)."""
        accounts = self.accounts
        changed = self.always_on_changed
        if accounts is None or not changed or self.shutting_down:  # (shutdown saved them all)
            return
        now = int(self.wallclock() * 1000) / 1000
        kept: list[AlwaysOnUser] = []
        gone: list[str] = []
        for key, user in changed.items():
            # Still here, still logged in to that account, still always-on: kept as it is now.
            if (user is None or user.quitting or user.account is None or casefold(user.account) != key
                    or not self.always_on(user)):
                gone.append(key)
            else:
                kept.append(self._kept_form(user, self.absent.get(user, (now, False))[0]))
        for key in gone:
            self.always_on_kept.pop(key, None)
        for key, user in changed.items():
            if key not in gone and user is not None:
                self.always_on_kept[key] = user
        changed.clear()

        def stored(outcome: Outcome[None]) -> None:
            if outcome.error is not None:
                log.warning("always-on users not kept for a restart yet: %s", outcome.error)

        accounts.write(lambda store: store.update_always_on_users(kept, gone), stored)

    def _users(self) -> list[Client]:
        """The users of this node: those with a connection here, and the detached ones."""
        return [c for c in self.clients if c.registered and c.primary is None] + list(self.detached_users)

    def capabilities(self, client: Client | None = None) -> dict[str, str]:
        """What CAP LS offers: the fixed set, plus what history and accounts make possible, and the STS
        policy for ``client``'s kind of connection."""
        caps = dict(CAPABILITIES)
        if client is not None:
            sts = self.sts_policy(client)
            if sts is not None:
                caps["sts"] = sts
        if self.history is not None:
            caps["draft/chathistory"] = ""
            # Only with history: without it the server cannot tell who wrote a message, nor when.
            caps["draft/message-redaction"] = ""
            if self.config.search:
                caps[SEARCH_CAP] = ""
        caps[MULTILINE] = f"max-bytes={self.config.multiline_max_bytes},max-lines={self.config.multiline_max_lines}"
        if self.accounts is not None:
            caps.update(ACCOUNT_CAPABILITIES)
            caps[READ_MARKER_CAP] = ""
            if self.push is not None:
                caps.update(dict.fromkeys(PUSH_CAPS, ""))
            if self.config.account_registration:
                by_email = self.config.account_verification == "email"
                caps["draft/account-registration"] = "before-connect,email-required" if by_email else "before-connect"
        return caps

    def sts_policy(self, client: Client) -> str | None:
        """The ``sts`` capability's value for ``client`` (https://ircv3.net/specs/extensions/sts), or None.

        A TLS connection gets the persistence policy (``duration``; 0 tells clients to drop one they
        keep); a plaintext one, when the duration is above 0, the upgrade policy (``port``: the first TLS
        listener's, or sts_port). Never without a TLS listener, and only on IRC over TCP: a WebSocket
        client cannot reconnect to an IRC port (browsers have HSTS for that). The value exists only in
        CAP LS 302, so older clients are not offered it.
        """
        if self.tls_port is None or client.cap_version < 302:
            return None
        config = self.config
        transport = client.conn.transport_name
        if transport == "tls":
            preload = ",preload" if config.sts_preload and config.sts_duration_s > 0 else ""
            return f"duration={config.sts_duration_s}{preload}"
        if transport == "tcp" and config.sts_duration_s > 0:
            return f"port={config.sts_port or self.tls_port}"
        return None

    # -- identifiers -----------------------------------------------------------------------------

    def new_msgid(self) -> str:
        return f"{self._msgid_prefix}-{next(self._msgids):x}"

    def new_batch_id(self) -> str:
        return f"b{next(self._batches)}"

    # -- lookups ---------------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, Client]:
        """Casefolded nick -> client, this node's (registering ones too): for tests and metrics; the
        server and its handlers go through ``nick_registry``."""
        return self.nick_registry.snapshot()

    @property
    def channels(self) -> dict[str, Channel]:
        """Casefolded name -> channel: for tests and metrics; the server and its handlers go through
        ``channel_registry``."""
        return self.channel_registry.snapshot()

    def find_user(self, nick: str) -> Client | None:
        client = self.nick_registry.holder(casefold(nick))
        return client if client is not None and client.registered else None

    def find_channel(self, name: str) -> Channel | None:
        return self.channel_registry.get(casefold(name))

    def from_user(self, client: Client, command: str, params: list[str], *, source: str | None = None) -> Outgoing:
        """A message ``client`` is the source of (its prefix, or ``source``), stamped with the current time
        and, for recipients with account-tag, the account it is logged in to."""
        return Outgoing(source or client.prefix, command, params, wall=self.wallclock(), account=client.account,
                        bot=BOT_MODE in client.modes)

    def outgoing(
        self,
        source: str,
        command: str,
        params: list[str],
        *,
        msgid: str | None = None,
        account: str | None = None,
        client_tags: dict[str, str] | None = None,
    ) -> Outgoing:
        """A message stamped with the current time (server-time)."""
        return Outgoing(
            source, command, params, wall=self.wallclock(), msgid=msgid, account=account,
            client_tags=client_tags,
        )

    # -- connection life -------------------------------------------------------------------------

    def admit_pending(self, ip: str, *, per_ip_cap: bool = True) -> PendingConnection | str:
        """Count a connection from ``ip`` that is not an IRC client yet (a TLS handshake, a page load, a
        WebSocket handshake), or say why it is refused: the open-files budget, ``max_pending_connections``
        or ``max_pending_connections_per_ip`` (per ``ip_key``). ``per_ip_cap=False`` for a trusted proxy,
        which carries everyone's connections (who the client is, its request has yet to say). A refusal is
        counted; the transport closes the connection and logs it. The caller releases what it got once the
        connection is a client (before :meth:`accept`) or gone."""
        config = self.config
        key = ip_key(ip)
        if self._out_of_descriptors():
            refusal = "Server is full (open-files limit)"
        elif self.pending.total >= config.max_pending_connections:
            refusal = "Too many connections waiting to become clients (max_pending_connections)"
        elif per_ip_cap and self.pending.count(key) >= config.max_pending_connections_per_ip:
            refusal = "Too many connections from your address (max_pending_connections_per_ip)"
        else:
            return self.pending.add(key)
        self.stats.connections_refused += 1
        return refusal

    def _out_of_descriptors(self) -> bool:
        """Whether the open-files budget is used up by clients and pending connections (counted, and
        warned about once a minute, when it is)."""
        if self.fd_budget is None or len(self.clients) + self.pending.total < self.fd_budget:
            return False
        self.stats.descriptor_refusals += 1
        now = self.clock()
        if now - self._descriptor_warned_at > 60:
            self._descriptor_warned_at = now
            log.warning("refusing connections: the open-files limit leaves room for %d; raise it "
                        "(ulimit -n, LimitNOFILE=) or lower max_clients", self.fd_budget)
        return True

    def accept(self, conn: Connection) -> Client | None:
        """A new connection. Returns its client, or None when a limit refuses it (ERROR sent)."""
        ip = conn.peer_ip
        refusal = None
        if len(self.clients) >= self.config.max_clients:
            refusal = "Server is full (max_clients)"
        elif self.fd_budget is not None and self._out_of_descriptors():
            refusal = "Server is full (open-files limit)"
        elif self.per_ip[ip] >= self.config.max_connections_per_ip:
            refusal = "Too many connections from your address (max_connections_per_ip)"
        elif ip not in self.throttle_exempt and self.connect_throttle.take(
            ip_key(ip), self.config.connect_attempts_per_ip, self.config.connect_throttle_window_s, self.clock()
        ):
            refusal = "Too many new connections from your address; try again later (connect_attempts_per_ip)"
        if refusal is not None:
            self.stats.connections_refused += 1
            log.info("refused connection from %s (%s): %s", ip, conn.transport_name, refusal)
            conn.write(encode_wire(f"ERROR :Closing link: {ip} ({refusal})\r\n"))
            conn.close(refusal)
            return None
        client = Client(conn, next(self._ids), self.clock(), self.wallclock())
        self.clients.add(client)
        self.stats.connections_accepted += 1
        self.per_ip[ip] += 1
        log.info("connection from %s (%s)", ip, conn.transport_name)
        return client

    def handle_line(self, client: Client, raw: bytes) -> None:
        """One line from ``client`` (without CRLF): parse, dispatch, flush the replies.

        While a command of the client's waits for work off the loop, its later lines wait in order
        (at most ``flood_max_queued_lines`` of them, as fakelag's queue) and run once it is answered."""
        if client.quitting or client.detached:
            return
        client.last_seen = self.clock()
        client.ping_sent_at = None
        if client.waiting:
            self._hold_line(client, raw)
            return
        self._run_line(client, raw)

    def _run_line(self, client: Client, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = decode_wire(raw)  # bytes that are not UTF-8, kept as they came
        try:
            msg = parse(text)
        except MalformedMessage:
            return
        # The user is the device's primary; replies go to the connection that sent the line.
        ctx = Context(self, client.primary or client, msg, client)
        try:
            if client.batch is not None:
                if not multiline.collect(ctx):  # a multiline batch's lines go to it
                    dispatch(ctx, COMMANDS)
            elif not (msg.tags and multiline.stray(ctx)):  # nor may a line of a batch that is not open run
                dispatch(ctx, COMMANDS)
        except Exception:
            self.internal_error(ctx, "handling")
            ctx.abandon()
        if not client.quitting or ctx.out:
            ctx.flush()

    def internal_error(self, ctx: Context, stage: str) -> None:
        """A handler (or its callback) raised: our bug. Logged with its traceback and answered with 400."""
        self.internal_errors += 1
        log.exception("internal error %s %s from %s", stage, ctx.msg.command, ctx.client.nick)
        ctx.reply(ERR_UNKNOWNERROR, ctx.msg.command, "Internal server error")

    def line_too_long(self, client: Client) -> None:
        """The transport dropped a line over the length limit: say so (in its turn), keep the connection."""
        if client.quitting or client.detached:
            return
        if client.waiting:
            self._hold_line(client, None)
            return
        ctx = Context(self, client.primary or client, parse("PING"), client)
        if client.batch is not None:
            multiline.line_dropped(ctx)  # the batch would miss a line: it is refused instead
        ctx.reply(ERR_INPUTTOOLONG, "Input line was too long")
        ctx.flush()

    # -- one command at a time per connection ----------------------------------------------------

    def hold_input(self, client: Client) -> None:
        """A command of ``client``'s waits for work off the loop: its next lines wait too."""
        client.waiting += 1

    def release_input(self, client: Client) -> None:
        """A command of ``client``'s has its answer: run the lines that waited, until one waits again."""
        client.waiting -= 1
        backlog = client.backlog
        if client.waiting or backlog is None:
            return
        while backlog and not client.waiting and not client.quitting:
            raw = backlog.popleft()
            if raw is None:
                self.line_too_long(client)
            else:
                self._run_line(client, raw)
        if not backlog and client.backlog is backlog:
            client.backlog = None

    def _hold_line(self, client: Client, raw: bytes | None) -> None:
        backlog = client.backlog
        if backlog is None:
            backlog = client.backlog = deque()
        backlog.append(raw)
        if len(backlog) > self.config.flood_max_queued_lines:
            backlog.clear()
            self.disconnect(client, "Excess Flood")

    def disconnect(self, client: Client, reason: str, *, error: str | None = None) -> None:
        """Remove ``client``: others see a QUIT with ``reason``; the client gets ERROR, then EOF."""
        if client.quitting or client.detached:
            return
        if error is None:
            error = reason
        conn = client.conn
        conn.write(encode_wire(f"ERROR :Closing link: {client.host} ({error})\r\n"))
        self._connection_gone(client, reason)
        conn.close(reason)

    def connection_lost(self, client: Client, reason: str) -> None:
        """The transport lost the connection (EOF, reset, send queue): clean up if not done yet."""
        if client.quitting or client.detached:
            return
        self._connection_gone(client, reason)

    def _connection_gone(self, client: Client, reason: str) -> None:
        """One connection is over: a device leaves silently; a user with devices left (or always-on) stays,
        detached; anyone else quits."""
        user = client.primary
        if user is not None:
            client.quitting = True
            self._drop_connection(client, reason)
            self._unindex_login(client)
            self._detach_device(user, client)
            log.info("device of %s left (%s): %s", user.nick, client.ip, reason)
            if not user.quitting and not user.devices and user.detached:
                self._last_session_gone(user, reason)
            return
        if client.registered and not self.shutting_down and (client.devices or self._may_stay(client)):
            self._drop_connection(client, reason)
            self._detach(client)
            log.info("%s (%s) detached: %s", client.nick, client.ip, reason)
            if not client.devices:
                self._last_session_gone(client, reason)
            return
        client.quitting = True
        self._drop_connection(client, reason)
        self._remove(client, reason)

    def _drop_connection(self, client: Client, reason: str) -> None:
        """What a connection held: its place among the clients, its address's count, its open batch."""
        self.stats.disconnects[disconnect_category(reason)] += 1
        self.clients.discard(client)
        self.per_ip[client.ip] -= 1
        if self.per_ip[client.ip] <= 0:
            del self.per_ip[client.ip]
        self.open_batches.pop(client, None)
        client.batch = None

    def _detach(self, user: Client) -> None:
        """The user's own connection is gone and the user stays: writes to it are dropped from now on, and
        its input (what waited) is forgotten."""
        user.detached = True
        user.conn = DETACHED
        if user.backlog is not None:
            user.backlog.clear()  # (release_input may be going through it: it stops)
            user.backlog = None
        user.caps = frozenset()
        user.tag_flags = 0
        user.ping_sent_at = None
        self.detached_users.add(user)

    def _last_session_gone(self, user: Client, reason: str) -> None:
        """No connection of ``user`` is left: always-on keeps it, marked away; otherwise it quits."""
        if self._may_stay(user):
            set_away = user.away is None
            self.absent[user] = (int(self.wallclock() * 1000) / 1000, set_away)
            self.always_on_changed_for(user)
            self.watch_for_push(user)
            if set_away:
                user.away = ALWAYS_ON_AWAY
                self.nick_registry.updated(user)
                self.backplane.to_peers(user, self.from_user(user, "AWAY", [user.away]), cap="away-notify")
            return
        self.detached_users.discard(user)
        user.quitting = True
        self._remove(user, reason)

    def _may_stay(self, user: Client) -> bool:
        """Whether ``user`` stays without any connection: always-on, and fewer than ``always_on_max_accounts``
        users are there that way already (what bounds the memory they hold)."""
        if not self.always_on(user):
            return False
        assert user.account is not None
        key = casefold(user.account)
        owner = self.always_on_kept.get(key)
        if owner is not None and owner is not user and not owner.quitting:
            return False  # one always-on user per account: the one kept for a restart
        if any(other is not user and casefold(other.account or "") == key for other in self.absent):
            return False
        return len(self.absent) - (user in self.absent) < self.config.always_on_max_accounts

    def always_on_users(self) -> int:
        """Users here that are always-on, with a connection or detached (for /metrics)."""
        return sum(1 for clients in self.logins.values() for c in clients
                   if c.primary is None and c.registered and not c.quitting and self.always_on(c))

    def always_on(self, user: Client) -> bool:
        """Whether ``user`` stays when its last connection goes (its account's always-on setting)."""
        accounts = self.accounts
        if user.account is None or accounts is None:
            return False
        setting = accounts.always_on_setting(user.account)
        return self.config.always_on_default if setting is None else setting

    def attach(self, user: Client, device: Client) -> float:
        """``device`` (registering, logged in to ``user``'s account) becomes one of ``user``'s devices.
        Returns since when the user had no connection (0: it had one), for the replay of what it missed."""
        device.primary = user
        device.registered = True
        device.nick, device.nick_cf = user.nick, ""  # holds no nick of its own: the user's is in the registry
        devices = user.devices
        if not devices:
            devices = user.devices = []
            for channel in user.channels.values():
                channel.with_devices.add(user)
        devices.append(device)
        self.device_count += 1
        since, set_away = self.absent.pop(user, (0.0, False))
        if since:
            self.always_on_changed_for(user)
            self.watch_for_push(user)  # (its lines are its devices' again)
        if set_away and user.away == ALWAYS_ON_AWAY:  # always-on marked it away when it went: back now
            user.away = None
            self.nick_registry.updated(user)
            self.backplane.to_peers(user, self.from_user(user, "AWAY", []), cap="away-notify", exclude=device)
        return since

    def _detach_device(self, user: Client, device: Client) -> None:
        devices = user.devices
        if devices is None or device not in devices:
            return
        devices.remove(device)
        self.device_count -= 1
        if not devices:
            user.devices = None
            for channel in user.channels.values():
                channel.with_devices.discard(user)

    def end_user(self, user: Client, reason: str, *, error: str | None = None) -> None:
        """Every connection of ``user`` closes and it quits (KILL), always-on or not."""
        if user.quitting or self.backplane.kill(user, reason, error):
            return  # gone already, or its node ends it
        user.quitting = True  # first: its devices leaving must not look for a last session
        for device in list(user.devices or ()):
            self.disconnect(device, reason, error=error)
        if user.detached:
            self.detached_users.discard(user)
        else:
            conn = user.conn
            conn.write(encode_wire(f"ERROR :Closing link: {user.host} ({error or reason})\r\n"))
            self._drop_connection(user, reason)
            conn.close(reason)
        self._remove(user, reason)

    def _remove(self, client: Client, reason: str) -> None:
        """The user ``client`` is gone (its connection already let go): its nick, channels, QUIT."""
        self.nick_registry.release(client)
        self.nick_deadlines.pop(client, None)
        if self.absent.pop(client, None) is not None:
            self.watch_for_push(client)
        if client.account is not None and self.always_on_kept.get(casefold(client.account)) is client:
            self.always_on_changed[casefold(client.account)] = None
        self._unindex_login(client)
        monitor.forget(self, client)
        if client.registered:
            self.registered_count -= 1
            if "i" in client.modes:
                self.invisible_count -= 1
            self.opers.discard(client)
            self.remember_nick(client)
            self.parties.left(client)
            if not self.shutting_down or self.clustered:  # (the other nodes' users stay)
                self.backplane.to_peers(client, self.from_user(client, "QUIT", [reason]), departing=True)
                monitor.went_offline(self, client.nick)
            for channel in list(client.channels.values()):
                self.remove_member(channel, client)
            log.info("disconnected %s (%s): %s", client.nick, client.ip, reason)
        else:
            log.info("disconnected unregistered %s: %s", client.ip, reason)

    def remove_member(self, channel: Channel, client: Client) -> None:
        self.channel_registry.part(channel, client)
        if client.account is not None and not client.quitting:
            self.always_on_changed_for(client)

    def claim_nick(self, client: Client, nick_cf: str, done: Callable[[bool], None], *, nick: str = "") -> None:
        """The nick registry's claim, for a client that may leave before the answer comes: then what it
        was given is given up again, and ``done(False)``."""

        def claimed(ok: bool) -> None:
            if ok and client.quitting:
                client.nick_cf = nick_cf
                self.nick_registry.release(client)
                ok = False
            done(ok)

        self.nick_registry.claim(client, nick_cf, claimed, nick=nick)

    def join(self, client: Client, request: JoinRequest, done: Callable[[JoinResult], None]) -> None:
        """The channel registry's join, for a client that may leave before the answer comes: then it
        leaves the channel again, unannounced (nobody was told it joined), and ``done(None)``."""

        def joined(result: JoinResult) -> None:
            if client.quitting and isinstance(result, Channel):
                self.channel_registry.part(result, client)
                result = None
            elif client.account is not None and isinstance(result, Channel):
                self.always_on_changed_for(client)
            done(result)

        self.channel_registry.join(client, request, joined)

    def rename(self, client: Client, nick: str, done: Callable[[bytes | None], None], *,
               session: Client | None = None) -> None:
        """Rename a registered client, if the nick registry lets it claim ``nick``: everyone sharing a
        channel sees the NICK. ``done`` gets the line for the client itself (a handler replies with
        it; a forced rename writes it), or None when someone else holds the nick; now, or later."""
        nick_cf = casefold(nick)

        def claimed(ok: bool) -> None:
            done(self._renamed(client, nick, nick_cf, session or client) if ok else None)

        self.claim_nick(client, nick_cf, claimed, nick=nick)

    def _renamed(self, client: Client, nick: str, nick_cf: str, session: Client) -> bytes:
        change = self.from_user(client, "NICK", [nick])
        self.remember_nick(client)
        log.info("nick change %s -> %s (%s)", client.nick, nick, client.ip)
        old_nick = client.nick
        client.nick, client.nick_cf = nick, nick_cf
        client.nick_since = int(self.wallclock() * 1000) / 1000
        if client.account is None:
            self.parties.renamed(client)
        else:
            self.always_on_changed_for(client)
        self.backplane.to_peers(client, change, exclude=session)  # and the user's other connections
        if self.monitors or self.clustered:
            monitor.nick_changed(self, client, old_nick)
        return change.variant(session.tag_flags)

    def remember_nick(self, client: Client) -> None:
        if self.config.whowas_max_entries <= 0:
            return
        self.whowas.appendleft(
            WhowasEntry(client.nick, client.user, client.host, client.realname, int(self.wallclock()))
        )
        while len(self.whowas) > self.config.whowas_max_entries:
            self.whowas.pop()

    def commit_pending(self) -> None:
        """Make what this pass recorded durable. Transports call it before they write to any socket."""
        history = self.history
        if history is not None and history.pending:
            history.commit()

    def logged_in(self, client: Client, account: str) -> None:
        """``client`` is now logged in to ``account`` (after any account it was logged in to)."""
        self.logged_out(client)
        client.account = account
        self.logins.setdefault(casefold(account), set()).add(client)
        if client.registered:
            self.always_on_changed_for(client)
            self.nick_registry.updated(client)

    def logged_out(self, client: Client) -> None:
        if client.account is not None and self.always_on_kept.get(casefold(client.account)) is client:
            self.always_on_changed[casefold(client.account)] = None
        self._unindex_login(client)
        had = client.account is not None
        client.account = None
        if had and client.registered and not client.quitting:
            self.nick_registry.updated(client)

    def _unindex_login(self, client: Client) -> None:
        if client.account is None:
            return
        key = casefold(client.account)
        clients = self.logins.get(key)
        if clients is not None:
            clients.discard(client)
            if not clients:
                del self.logins[key]

    def flush_markers(self) -> None:
        """Hand the read markers set since the last call to the store."""
        accounts = self.accounts
        if accounts is not None and accounts.markers.dirty:
            accounts.markers.flush(accounts.write, self._markers_failed)

    @staticmethod
    def _markers_failed(error: BaseException) -> None:
        log.warning("read markers not stored yet (will retry): %s", error)

    def tick(self) -> None:
        """Timers, called about once a second: registration timeouts, PINGs, ping timeouts, retention,
        read markers to the store."""
        now = self.clock()
        self.flush_markers()
        self.flush_always_on()
        if self.history is not None:
            self.history.store_if_due(now)
            self.history.retention_step(now, self.wallclock())
        if self.nick_deadlines:
            for client, deadline in list(self.nick_deadlines.items()):
                if now >= deadline:
                    rename_to_guest(self, client)
        if self.open_batches:
            multiline.expire(self, now)
        config = self.config
        ping = f"PING :{self.name}\r\n".encode()
        for client in list(self.clients):
            if not client.registered:
                # Before registration idle_since is still the time of connection.
                if now - client.idle_since > config.registration_timeout_s:
                    self.disconnect(client, "Registration timeout")
                continue
            if client.ping_sent_at is None:
                if now - client.last_seen > config.ping_interval_s:
                    client.ping_sent_at = now
                    client.conn.write(ping)
            elif now - client.ping_sent_at > config.ping_timeout_s:
                waited = int(now - client.last_seen)
                self.disconnect(client, f"Ping timeout: {waited} seconds")

    def shutdown(self, reason: str) -> None:
        """Tell everyone why and close every connection."""
        self._save_always_on()
        self.shutting_down = True
        for client in list(self.clients):
            self.disconnect(client, reason, error=reason)
        for user in list(self.detached_users):  # not connections: they go without a word
            self.detached_users.discard(user)
            user.quitting = True
            self._remove(user, reason)
        self.flush_markers()
