"""NickServ and ChanServ: account and channel registration for clients that only know /msg.

The services are part of the server, not separate bots: ``PRIVMSG NickServ :IDENTIFY pw`` (or the
``NS``/``NICKSERV``/``CS``/``CHANSERV`` commands many clients send for /ns and /cs) run here, and
the answers come as NOTICEs from ``NickServ!NickServ@<server>``. Each service has its own command
table: name -> (handler, syntax, help).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from salotto.proto.casemap import casefold
from salotto.proto.framing import encode_wire
from salotto.proto.names import CHANTYPES
from salotto.server.accounts import (
    Accounts,
    channel_state,
    grant_access_status,
    is_service,
    log_in,
    log_out,
)
from salotto.server.channel import Channel
from salotto.server.context import Context
from salotto.server.handlers.auth import start_registration, try_login, verify_account
from salotto.storage.base import AlreadyExists, Storage, StoredAccount
from salotto.storage.outcome import Outcome

__all__ = ["CHANSERV", "NICKSERV", "handle_chanserv_command", "handle_nickserv_command", "service_message"]

log = logging.getLogger("salotto.accounts")

Handler = Callable[[Context, "Service", list[str]], None]

# Longest service notice text: with the service's prefix, the nick and NOTICE it stays under 512.
_SAY_MAX_BYTES = 380


@dataclass(frozen=True, slots=True)
class ServiceCommand:
    handler: Handler
    syntax: str
    help: str
    # The handler gets the rest of the line unsplit, as one argument: passwords may hold spaces.
    raw: bool = False


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    commands: dict[str, ServiceCommand]

    def say(self, ctx: Context, text: str) -> None:
        server = ctx.server
        # Notices may echo what the user sent; cut so the line stays within 512 bytes.
        text = encode_wire(text)[:_SAY_MAX_BYTES].decode("utf-8", "ignore")
        line = server.outgoing(f"{self.name}!{self.name}@{server.name}", "NOTICE", [ctx.client.nick, text])
        ctx.send(line.variant(ctx.session.tag_flags))


def _date(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _accounts(ctx: Context, service: Service) -> Accounts | None:
    accounts = ctx.server.accounts
    if accounts is None:
        service.say(ctx, "Accounts are not available on this server.")
    return accounts


def _not_saved(ctx: Context, service: Service, exc: BaseException | None) -> None:
    """The store refused a write (locked, full, shutting down): nothing changed, and the user is told."""
    log.error("%s: %s", service.name, exc)
    service.say(ctx, "That could not be saved (the database is not available); nothing changed. Try again later.")


# -- NickServ ------------------------------------------------------------------------------------


def _ns_register(ctx: Context, service: Service, args: list[str]) -> None:
    # REGISTER <password> [<email>]
    def fail(code: str, description: str) -> None:
        service.say(ctx, f"Registration failed: {description}.")

    def registered(account: StoredAccount) -> None:
        service.say(ctx, f"Account {account.name} registered; you are logged in. "
                         f"Next time: /msg NickServ IDENTIFY <password>, or SASL.")

    def pending(account: StoredAccount) -> None:
        service.say(ctx, f"A code was sent to {account.email}. Finish with: /msg NickServ VERIFY {account.name} <code>")

    # REGISTER <password> [<email>]: the last word is the email when it looks like one.
    password, email = args[0], None
    head, _, last = password.rpartition(" ")
    if head and "@" in last:
        password, email = head.rstrip(), last
    start_registration(ctx, ctx.client.nick, email, password, fail, registered, pending)


def _ns_verify(ctx: Context, service: Service, args: list[str]) -> None:
    # VERIFY <account> <code>
    def fail(code: str, description: str) -> None:
        service.say(ctx, f"Verification failed: {description}.")

    def verified(account: StoredAccount) -> None:
        service.say(ctx, f"Account {account.name} verified.")

    verify_account(ctx, args[0], args[1], fail, verified)


def _ns_set(ctx: Context, service: Service, args: list[str]) -> None:
    # SET ALWAYS-ON ON|OFF|DEFAULT
    client = ctx.client
    server = ctx.server
    accounts = _accounts(ctx, service)
    if accounts is None:
        return
    if client.account is None:
        service.say(ctx, "You are not logged in.")
        return
    words = args[0].split()
    if len(words) != 2 or words[0].upper() != "ALWAYS-ON" or words[1].upper() not in ("ON", "OFF", "DEFAULT"):
        service.say(ctx, "Syntax: SET ALWAYS-ON ON|OFF|DEFAULT")
        return
    setting = {"ON": True, "OFF": False, "DEFAULT": None}[words[1].upper()]
    name = client.account
    limit = server.config.always_on_max_accounts
    if setting and not accounts.always_on_setting(name) and accounts.always_on_count() >= limit:
        service.say(ctx, f"Always-on not set: this server allows it for {limit} accounts, and that many have it "
                         "(always_on_max_accounts).")
        return

    def stored(outcome: Outcome[bool]) -> None:
        if outcome.error is not None or not outcome.value:
            _not_saved(ctx, service, outcome.error)
            return
        on = server.config.always_on_default if setting is None else setting
        if on:
            service.say(ctx, f"Always-on is on for {name}: your nick stays in its channels while you are not "
                             "connected, and what is said to you waits for your next connection.")
        else:
            service.say(ctx, f"Always-on is off for {name}: your nick leaves when your last connection does.")

    answer = ctx.wait(stored)

    def done(outcome: Outcome[bool]) -> None:
        # Whether or not the connection that asked is still there to be answered (it may have hung up
        # meanwhile, leaving its user detached): the account's users follow the new setting.
        if outcome.error is None and outcome.value:
            server.always_on_setting_changed(name)
        answer(outcome)

    accounts.set_always_on(name, setting, done)


def _ns_identify(ctx: Context, service: Service, args: list[str]) -> None:
    # IDENTIFY [<account>] <password>
    client = ctx.client
    if _accounts(ctx, service) is None:
        return
    if client.account is not None:
        service.say(ctx, f"You are already logged in as {client.account}.")
        return
    # IDENTIFY [<account>] <password>: the first word is an account name only if one is registered
    # by that name (a password may hold spaces).
    accounts = ctx.server.accounts
    first, _, rest = args[0].partition(" ")
    if rest and accounts is not None and accounts.get(first) is not None:
        name, password = first, rest
    else:
        name, password = client.nick, args[0]

    def done(account: StoredAccount | None, why: str) -> None:
        if account is None:
            service.say(ctx, f"Login failed: {why}.")
            return
        log_in(ctx, account)
        service.say(ctx, f"You are now logged in as {account.name}.")

    try_login(ctx, name, password, done)


def _ns_logout(ctx: Context, service: Service, args: list[str]) -> None:
    # LOGOUT
    if ctx.client.account is None:
        service.say(ctx, "You are not logged in.")
        return
    if ctx.client.devices:
        service.say(ctx, "Not logged out: other devices are connected as you. Disconnect them first.")
        return
    log_out(ctx.server, ctx.client, ctx)
    service.say(ctx, "You are now logged out.")


def _ns_drop(ctx: Context, service: Service, args: list[str]) -> None:
    # DROP <password>
    client = ctx.client
    server = ctx.server
    accounts = _accounts(ctx, service)
    if accounts is None:
        return
    if client.account is None:
        service.say(ctx, "Log in to the account you want to drop first.")
        return
    name = client.account

    def done(account: StoredAccount | None, why: str) -> None:
        if account is None:
            service.say(ctx, f"Not dropped: {why}.")
            return
        answer = ctx.wait(dropped)

        def deleted(outcome: Outcome[list[str]]) -> None:
            # Whether or not the dropper is still here to be answered: nobody stays logged in to it.
            if outcome.value is not None:
                log.info("account %s dropped by %s (%s)", name, client.nick, client.ip)
                if server.push is not None:
                    server.push.forget_account(name)
                holders = list(server.logins.get(casefold(name), ()))
                for holder in holders:  # a user's devices go (a device is its user's account), then it logs out
                    if holder.primary is not None:
                        server.disconnect(holder, "Account dropped")
                for holder in holders:
                    if holder.primary is not None or holder.quitting:
                        continue
                    if holder.detached:  # always-on, no connection left: it goes with its account
                        server.end_user(holder, "Account dropped")
                    else:
                        log_out(server, holder, ctx)
            answer(outcome)

        accounts.delete(name, deleted)

    def dropped(outcome: Outcome[list[str]]) -> None:
        founded = outcome.value
        if founded is None:
            _not_saved(ctx, service, outcome.error)
            return
        service.say(ctx, f"Account {name} dropped" + (f", with channels {', '.join(founded)}." if founded else "."))

    try_login(ctx, name, args[0], done)


def _ns_ghost(ctx: Context, service: Service, args: list[str]) -> None:
    # GHOST <nick> [<password>]
    client = ctx.client
    server = ctx.server
    nick, _, rest = args[0].partition(" ")
    args = [nick, rest]
    target = server.find_user(nick)
    if target is None:
        service.say(ctx, f"{nick} is not online.")
        return
    if target is client:
        service.say(ctx, "That is you.")
        return
    owner = target.account or nick
    password = args[1] if len(args) > 1 else ""

    def ghost() -> None:
        server.end_user(target, f"GHOST command used by {client.nick}")  # every connection, always-on or not
        service.say(ctx, f"{target.nick} has been disconnected.")

    if client.account is not None and casefold(client.account) == casefold(owner):
        ghost()
        return
    if not password:
        service.say(ctx, f"You are not logged in to {owner}: GHOST {nick} <password>.")
        return

    def done(account: StoredAccount | None, why: str) -> None:
        if account is None:
            service.say(ctx, f"GHOST refused: {why}.")
        elif target.quitting:
            service.say(ctx, f"{nick} is already gone.")
        else:
            ghost()

    try_login(ctx, owner, password, done)


def _ns_info(ctx: Context, service: Service, args: list[str]) -> None:
    # INFO [<account>]
    client = ctx.client
    accounts = _accounts(ctx, service)
    if accounts is None:
        return
    name = args[0] if args else (client.account or client.nick)
    account = accounts.get(name)
    if account is None:
        service.say(ctx, f"{name} is not a registered account.")
        return
    service.say(ctx, f"Account {account.name}, registered {_date(account.created)}.")
    online = sorted(c.nick for c in ctx.server.logins.get(casefold(account.name), ()) if c.primary is None)
    service.say(ctx, f"Logged in now as: {', '.join(online)}." if online else "Not logged in now.")
    if client.account == account.name and account.email:
        service.say(ctx, f"Email: {account.email}")
    if client.account == account.name:
        own = account.always_on
        on = ctx.server.config.always_on_default if own is None else own
        service.say(ctx, f"Always-on: {'on' if on else 'off'}{' (the server default)' if own is None else ''}.")
    founded = sorted(c.name for c in accounts.channels.values() if casefold(c.founder) == casefold(account.name))
    if founded:
        service.say(ctx, f"Founder of: {', '.join(founded)}.")


# -- ChanServ ------------------------------------------------------------------------------------


def _channel_arg(ctx: Context, service: Service, name: str) -> Channel | None:
    channel = ctx.server.find_channel(name) if name[:1] in CHANTYPES else None
    if channel is None:
        service.say(ctx, f"{name} does not exist (it must have members).")
    return channel


def _level(ctx: Context, channel_cf: str) -> str | None:
    """The client's access level, with server operators counting as founders."""
    accounts = ctx.server.accounts
    if ctx.client.is_oper:
        return "founder"
    return accounts.access_level(channel_cf, ctx.client.account) if accounts is not None else None


def _cs_register(ctx: Context, service: Service, args: list[str]) -> None:
    # REGISTER <#channel>
    client = ctx.client
    server = ctx.server
    accounts = _accounts(ctx, service)
    if accounts is None:
        return
    if client.account is None:
        service.say(ctx, "Log in first: a channel is registered to your account.")
        return
    channel = _channel_arg(ctx, service, args[0])
    if channel is None:
        return
    if not channel.may_moderate(client):
        service.say(ctx, f"You must be a channel operator of {channel.name} to register it.")
        return
    if channel.name_cf in accounts.channels:
        service.say(ctx, f"{channel.name} is already registered.")
        return
    owned = sum(1 for c in accounts.channels.values() if casefold(c.founder) == casefold(client.account))
    if owned >= server.config.max_channels_per_account:
        service.say(ctx, f"You already founded {owned} channels (max_channels_per_account).")
        return
    founder = client.account
    registered = server.wallclock()

    name = channel.name
    state = channel_state(channel)

    def register(store: Storage) -> None:
        with store.transaction():
            store.register_channel(name, founder, registered)
            store.update_channel(name, **state)

    def done(outcome: Outcome[None]) -> None:
        if isinstance(outcome.error, AlreadyExists):
            service.say(ctx, f"{name} is already registered.")
        elif outcome.error is not None:
            _not_saved(ctx, service, outcome.error)
        else:
            log.info("%s registered %s to %s", client.nick, name, founder)
            service.say(ctx, f"{name} is registered to {founder}. Its topic and modes will be kept, "
                             f"and you get operator status when you join.")

    accounts.change_channel(name, register, ctx.wait(done))


def _cs_info(ctx: Context, service: Service, args: list[str]) -> None:
    # INFO <#channel>
    accounts = _accounts(ctx, service)
    if accounts is None:
        return
    registration = accounts.channels.get(casefold(args[0]))
    if registration is None:
        service.say(ctx, f"{args[0]} is not registered.")
        return
    registered = _date(registration.registered)
    service.say(ctx, f"{registration.name}: founder {registration.founder}, registered {registered}.")
    live = ctx.server.find_channel(registration.name)
    secret = "s" in registration.modes or (live is not None and "s" in live.modes)
    member = live is not None and ctx.client in live
    if registration.topic and (not secret or member or _level(ctx, casefold(registration.name)) is not None):
        service.say(ctx, f"Topic: {registration.topic}")
    if registration.modes or registration.key is not None or registration.limit is not None:
        service.say(ctx, f"Modes kept: +{registration.modes}" + (" with a key" if registration.key else "")
                    + (f", limit {registration.limit}" if registration.limit is not None else ""))


def _status(adding: bool, mode: str) -> Handler:
    def handler(ctx: Context, service: Service, args: list[str]) -> None:
        # OP|DEOP|VOICE|DEVOICE <#channel> [<nick>]
        server = ctx.server
        channel = _channel_arg(ctx, service, args[0])
        if channel is None:
            return
        level = _level(ctx, channel.name_cf)
        if level not in ("founder", "op"):
            service.say(ctx, f"You have no operator access to {channel.name}.")
            return
        target = server.find_user(args[1]) if len(args) > 1 else ctx.client
        if target is None or target not in channel:
            service.say(ctx, f"{args[1] if len(args) > 1 else ctx.client.nick} is not on {channel.name}.")
            return
        current = channel.status(target) or ""
        if adding == (mode in current):
            return
        server.channel_registry.set_status(channel, target, current + mode if adding else current.replace(mode, ""))
        change = server.outgoing(f"{service.name}!{service.name}@{server.name}", "MODE",
                                 [channel.name, ("+" if adding else "-") + mode, target.nick])
        server.backplane.to_channel(channel, change)

    return handler


_LEVELS = ("op", "voice")


def _cs_access(ctx: Context, service: Service, args: list[str]) -> None:
    # ACCESS <#channel> LIST | ADD <account> <op|voice> | DEL <account>
    server = ctx.server
    accounts = _accounts(ctx, service)
    if accounts is None:
        return
    registration = accounts.channels.get(casefold(args[0]))
    if registration is None:
        service.say(ctx, f"{args[0]} is not registered.")
        return
    level = _level(ctx, casefold(registration.name))
    sub = args[1].upper() if len(args) > 1 else "LIST"
    if sub == "LIST":
        if level is None:
            service.say(ctx, f"You have no access to {registration.name}.")
            return
        for name, entry in sorted(registration.access.items()):
            service.say(ctx, f"{registration.name}: {name} {entry}")
        service.say(ctx, f"End of {registration.name} access list ({len(registration.access)}).")
        return
    if level != "founder":
        service.say(ctx, f"Only the founder of {registration.name} can change its access list.")
        return
    if sub == "ADD" and len(args) == 4 and args[3].lower() in _LEVELS:
        added = accounts.get(args[2])
        if added is None:
            service.say(ctx, f"{args[2]} is not a registered account.")
            return
        if casefold(added.name) == casefold(registration.founder):
            service.say(ctx, f"{added.name} is the founder.")
            return
        if len(registration.access) >= server.config.max_list_entries:
            service.say(ctx, f"The access list of {registration.name} is full (max_list_entries).")
            return
        level = args[3].lower()

        def added_(outcome: Outcome[None]) -> None:
            if outcome.error is not None:
                _not_saved(ctx, service, outcome.error)
                return
            service.say(ctx, f"{added.name} now has {level} access to {registration.name}.")
            channel = server.find_channel(registration.name)
            if channel is not None and casefold(registration.name) in accounts.channels:
                for member in list(channel.roster()):
                    if member.account is not None and casefold(member.account) == casefold(added.name):
                        grant_access_status(server, channel, member)

        accounts.change_channel(registration.name, lambda store: store.set_access(registration.name, added.name,
                                                                                  level), ctx.wait(added_))
        return
    if sub == "DEL" and len(args) == 3:
        if casefold(args[2]) == casefold(registration.founder):
            service.say(ctx, "The founder can't be removed; DROP the channel instead.")
            return
        gone = args[2]

        def removed(outcome: Outcome[bool]) -> None:
            if outcome.error is not None:
                _not_saved(ctx, service, outcome.error)
                return
            service.say(ctx, f"{gone} removed from {registration.name}." if outcome.value
                        else f"{gone} is not on the access list.")

        accounts.change_channel(registration.name, lambda store: store.remove_access(registration.name, gone),
                                ctx.wait(removed))
        return
    service.say(ctx, "Syntax: ACCESS <#channel> LIST | ADD <account> <op|voice> | DEL <account>")


def _cs_drop(ctx: Context, service: Service, args: list[str]) -> None:
    # DROP <#channel>
    accounts = _accounts(ctx, service)
    if accounts is None:
        return
    registration = accounts.channels.get(casefold(args[0]))
    if registration is None:
        service.say(ctx, f"{args[0]} is not registered.")
        return
    if _level(ctx, casefold(registration.name)) != "founder":
        service.say(ctx, f"Only the founder of {registration.name} can drop it.")
        return

    def dropped(outcome: Outcome[bool]) -> None:
        if outcome.error is not None:
            _not_saved(ctx, service, outcome.error)
            return
        log.info("%s dropped the registration of %s", ctx.client.nick, registration.name)
        service.say(ctx, f"{registration.name} is no longer registered.")

    accounts.change_channel(registration.name, lambda store: store.drop_channel(registration.name),
                            ctx.wait(dropped))


# -- dispatch ------------------------------------------------------------------------------------


def _help(ctx: Context, service: Service, args: list[str]) -> None:
    # HELP [<command>]
    if args and args[0].upper() in service.commands:
        command = service.commands[args[0].upper()]
        service.say(ctx, f"{args[0].upper()} {command.syntax}: {command.help}")
        return
    service.say(ctx, f"{service.name} commands (/msg {service.name} <command>):")
    for name, command in service.commands.items():
        service.say(ctx, f"  {name} {command.syntax}".rstrip() + f" - {command.help}")


NICKSERV = Service("NickServ", {
    "HELP": ServiceCommand(_help, "[<command>]", "this list"),
    "REGISTER": ServiceCommand(_ns_register, "<password> [<email>]", "register your current nick as an account",
                               raw=True),
    "VERIFY": ServiceCommand(_ns_verify, "<account> <code>", "finish a registration with the emailed code"),
    "IDENTIFY": ServiceCommand(_ns_identify, "[<account>] <password>", "log in", raw=True),
    "LOGOUT": ServiceCommand(_ns_logout, "", "log out"),
    "SET": ServiceCommand(_ns_set, "ALWAYS-ON ON|OFF|DEFAULT", "stay in your channels while not connected", raw=True),
    "GHOST": ServiceCommand(_ns_ghost, "<nick> [<password>]", "disconnect whoever holds your nick", raw=True),
    "INFO": ServiceCommand(_ns_info, "[<account>]", "show an account"),
    "DROP": ServiceCommand(_ns_drop, "<password>", "delete your account and the channels it founded", raw=True),
})
CHANSERV = Service("ChanServ", {
    "HELP": ServiceCommand(_help, "[<command>]", "this list"),
    "REGISTER": ServiceCommand(_cs_register, "<#channel>", "register a channel you operate to your account"),
    "INFO": ServiceCommand(_cs_info, "<#channel>", "show a registered channel"),
    "OP": ServiceCommand(_status(True, "o"), "<#channel> [<nick>]", "give operator status"),
    "DEOP": ServiceCommand(_status(False, "o"), "<#channel> [<nick>]", "take operator status"),
    "VOICE": ServiceCommand(_status(True, "v"), "<#channel> [<nick>]", "give voice"),
    "DEVOICE": ServiceCommand(_status(False, "v"), "<#channel> [<nick>]", "take voice"),
    "ACCESS": ServiceCommand(_cs_access, "<#channel> LIST|ADD|DEL ...", "who gets op or voice on join"),
    "DROP": ServiceCommand(_cs_drop, "<#channel>", "unregister a channel you founded"),
})
_BY_NAME = {casefold(service.name): service for service in (NICKSERV, CHANSERV)}
# Fewest arguments each command needs, so handlers can index args without checking.
_MIN_ARGS = {
    ("NickServ", "REGISTER"): 1, ("NickServ", "IDENTIFY"): 1, ("NickServ", "GHOST"): 1, ("NickServ", "DROP"): 1,
    ("NickServ", "VERIFY"): 2, ("NickServ", "SET"): 1,
    ("ChanServ", "REGISTER"): 1, ("ChanServ", "INFO"): 1, ("ChanServ", "OP"): 1, ("ChanServ", "DEOP"): 1,
    ("ChanServ", "VOICE"): 1, ("ChanServ", "DEVOICE"): 1, ("ChanServ", "ACCESS"): 1, ("ChanServ", "DROP"): 1,
}


def _run(ctx: Context, service: Service, text: str) -> None:
    word, _, rest = text.strip().partition(" ")
    if not word:
        _help(ctx, service, [])
        return
    name = word.upper()
    command = service.commands.get(name)
    if command is None:
        service.say(ctx, f"Unknown command {name[:32]}. /msg {service.name} HELP lists them.")
        return
    rest = rest.strip()
    args = ([rest] if rest else []) if command.raw else rest.split()
    if len(args) < _MIN_ARGS.get((service.name, name), 0):
        service.say(ctx, f"Syntax: {name} {command.syntax}")
        return
    command.handler(ctx, service, args)


def service_message(ctx: Context, target: str, text: str) -> bool:
    """A PRIVMSG to a service runs its command; False if ``target`` is not a service.

    The command answers into the PRIVMSG's own context: with its other targets' echoes, as one response
    (one label), and a command that waits for a password check holds the rest of that answer, and the
    client's next lines, until it is done."""
    if not is_service(target):
        return False
    _run(ctx, _BY_NAME[casefold(target)], text)
    return True


def handle_nickserv_command(ctx: Context) -> None:
    # NICKSERV|NS <command> [<args>...]
    _run(ctx, NICKSERV, " ".join(ctx.msg.params))


def handle_chanserv_command(ctx: Context) -> None:
    # CHANSERV|CS <command> [<args>...]
    _run(ctx, CHANSERV, " ".join(ctx.msg.params))

