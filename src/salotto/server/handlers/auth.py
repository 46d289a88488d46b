"""Logging in and registering: AUTHENTICATE (SASL) and REGISTER (draft/account-registration).

https://ircv3.net/specs/extensions/sasl-3.1, https://ircv3.net/specs/extensions/account-registration
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from salotto.passwords import ScramCredentials, scram_credentials
from salotto.proto.casemap import casefold
from salotto.proto.framing import valid_utf8
from salotto.proto.names import is_valid_nick
from salotto.proto.numerics import (
    ERR_SASLABORTED,
    ERR_SASLALREADY,
    ERR_SASLFAIL,
    ERR_SASLTOOLONG,
    RPL_SASLMECHS,
    RPL_SASLSUCCESS,
)
from salotto.server.accounts import Accounts, is_service, log_in, nick_protection_check
from salotto.server.context import Context
from salotto.server.flood import ip_key
from salotto.server.sasl import ScramServer, parse_plain
from salotto.server.verification import codes_match, verification_code
from salotto.storage.base import AlreadyExists, StoredAccount
from salotto.storage.outcome import Outcome

if TYPE_CHECKING:
    from salotto.server.client import Client
    from salotto.server.state import Server

__all__ = [
    "SaslSession",
    "handle_authenticate",
    "handle_register",
    "handle_verify",
    "start_registration",
    "try_login",
    "verify_account",
]

log = logging.getLogger("salotto.accounts")

# sasl-3.1: payloads travel base64-encoded in AUTHENTICATE lines of at most 400 bytes; a line of
# exactly 400 means more follows ("+" ends a payload that is a multiple of 400).
SASL_CHUNK_BYTES = 400


@dataclass(slots=True)
class SaslSession:
    mechanism: str
    chunks: list[str] = field(default_factory=list)
    size: int = 0
    scram: ScramServer | None = None
    steps: int = 0  # payloads answered so far


def _mechanisms(ctx: Context) -> list[str]:
    return ctx.server.capabilities().get("sasl", "").split(",")


def _fail(ctx: Context, numeric: str = ERR_SASLFAIL, text: str = "SASL authentication failed") -> None:
    ctx.client.sasl = None
    ctx.reply(numeric, text)


def handle_authenticate(ctx: Context) -> None:
    # AUTHENTICATE <mechanism> | AUTHENTICATE <base64 chunk> | AUTHENTICATE + | AUTHENTICATE *
    client = ctx.client
    accounts = ctx.server.accounts
    arg = ctx.msg.params[0]
    session = client.sasl
    assert session is None or isinstance(session, SaslSession)
    if arg == "*":
        _fail(ctx, ERR_SASLABORTED, "SASL authentication aborted")
        return
    if client.account is not None:
        ctx.reply(ERR_SASLALREADY, "You have already authenticated using SASL")
        return
    if accounts is None:
        _fail(ctx)
        return
    if session is None:
        mechanism = arg.upper()
        if mechanism not in _mechanisms(ctx):
            ctx.reply(RPL_SASLMECHS, ",".join(_mechanisms(ctx)), "are available SASL mechanisms")
            _fail(ctx)
            return
        scram = ScramServer(lambda name: _scram_lookup(accounts, name), accounts.secret) \
            if mechanism == "SCRAM-SHA-256" else None
        client.sasl = SaslSession(mechanism, scram=scram)
        ctx.from_server("AUTHENTICATE", "+")
        return
    if len(arg) > SASL_CHUNK_BYTES:
        _fail(ctx, ERR_SASLTOOLONG, "SASL message too long")
        return
    if arg != "+":
        session.chunks.append(arg)
        session.size += len(arg)
        if session.size > ctx.server.config.sasl_max_payload_bytes:
            _fail(ctx, ERR_SASLTOOLONG, "SASL message too long")
            return
        if len(arg) == SASL_CHUNK_BYTES:
            return
    encoded = "".join(session.chunks)
    session.chunks.clear()
    session.size = 0
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        _fail(ctx)
        return
    if session.mechanism == "PLAIN":
        _plain(ctx, accounts, session, payload)
    else:
        _scram(ctx, accounts, session, payload)


def _plain(ctx: Context, accounts: Accounts, session: SaslSession, payload: bytes) -> None:
    parsed = parse_plain(payload)
    if parsed is None:
        _fail(ctx)
        return
    authzid, authcid, password = parsed
    if authzid and casefold(authzid) != casefold(authcid):
        _fail(ctx, text="SASL authentication failed: logging in as another account is not supported")
        return
    client = ctx.client

    def done(account: StoredAccount | None, why: str) -> None:
        if client.sasl is not session:
            return
        client.sasl = None
        if account is None:
            ctx.reply(ERR_SASLFAIL, f"SASL authentication failed: {why}")
            return
        log.info("SASL PLAIN login to %s by %s (%s)", account.name, client.nick, client.ip)
        log_in(ctx, account)
        ctx.reply(RPL_SASLSUCCESS, "SASL authentication successful")

    try_login(ctx, authcid, password, done)


def _scram(ctx: Context, accounts: Accounts, session: SaslSession, payload: bytes) -> None:
    scram = session.scram
    assert scram is not None
    session.steps += 1
    if session.steps == 1:
        # The attempt counts when the exchange starts, before any salt is revealed.
        name = _scram_username(payload)
        wait = accounts.throttle(ctx.server, ctx.client, name)
        if wait:
            _fail(ctx, text=f"SASL authentication failed: too many attempts, try again in {wait:.0f} seconds")
            return
    result = scram.step(payload)
    if result.error is not None:
        log.info("SCRAM login by %s (%s) failed: %s", ctx.client.nick, ctx.client.ip, result.error)
        _fail(ctx)
        return
    if result.done:
        account = accounts.get(result.account or "")
        if account is None:  # dropped during the exchange
            _fail(ctx)
            return
        ctx.client.sasl = None
        accounts.succeeded(ctx.server, ctx.client, account.name)
        log.info("SASL SCRAM-SHA-256 login to %s by %s (%s)", account.name, ctx.client.nick, ctx.client.ip)
        log_in(ctx, account)
        ctx.reply(RPL_SASLSUCCESS, "SASL authentication successful")
        return
    _send_payload(ctx, result.challenge or b"")


def _send_payload(ctx: Context, data: bytes) -> None:
    encoded = base64.b64encode(data).decode()
    chunks = [encoded[i : i + SASL_CHUNK_BYTES] for i in range(0, len(encoded), SASL_CHUNK_BYTES)]
    if not chunks or len(chunks[-1]) == SASL_CHUNK_BYTES:
        chunks.append("+")
    for chunk in chunks:
        ctx.from_server("AUTHENTICATE", chunk)


def _scram_lookup(accounts: Accounts, name: str) -> ScramCredentials | None:
    account = accounts.get(name)
    if account is None or not account.verified:
        return None
    return scram_credentials(account.password_hash)


def _scram_username(client_first: bytes) -> str:
    """The ``n=`` of a client-first-message, for the throttle only (the exchange validates it)."""
    for part in client_first.decode("utf-8", "replace").split(","):
        if part.startswith("n="):
            return part[2:].replace("=2C", ",").replace("=3D", "=")
    return "*"


def try_login(ctx: Context, name: str, password: str, done: Callable[[StoredAccount | None, str], None]) -> None:
    """Check a password off the loop (throttled); ``done(account or None, why)`` runs on the loop and
    writes its answer into ``ctx``, which is sent after it (the client's later lines wait until then).
    Nothing happens if the client left."""
    server = ctx.server
    client = ctx.client
    accounts = server.accounts
    assert accounts is not None
    wait = accounts.throttle(server, client, name)
    if wait:
        done(None, f"too many attempts, try again in {wait:.0f} seconds")
        return

    def checked(account: StoredAccount | None) -> None:
        if account is None:
            log.info("failed login as %r by %s (%s)", name, client.nick, client.ip)
            done(None, "invalid account name or password")
        elif not account.verified:
            done(None, f"the account is not verified yet (VERIFY {account.name} <code from the email>)")
        else:
            accounts.succeeded(server, client, account.name)
            accounts.renew_scram(account.name, password, account.password_hash)
            done(account, "")

    accounts.check_password(name, password, ctx.wait(checked))


def handle_register(ctx: Context) -> None:
    # REGISTER <account> {<email> | "*"} <password>
    params = ctx.msg.params
    name = ctx.client.nick if params[0] == "*" else params[0]
    email = None if params[1] == "*" else params[1]

    def fail(code: str, description: str) -> None:
        ctx.fail("REGISTER", code, name or "*", description=description)

    def registered(account: StoredAccount) -> None:
        ctx.from_server("REGISTER", "SUCCESS", account.name, "Account created")

    def pending(account: StoredAccount) -> None:
        ctx.from_server("REGISTER", "VERIFICATION_REQUIRED", account.name,
                        f"A code was sent to {account.email}: send VERIFY {account.name} <code>")

    start_registration(ctx, name, email, params[2], fail, registered, pending)


def handle_verify(ctx: Context) -> None:
    # VERIFY <account> <code>
    name, code = ctx.msg.params[0], ctx.msg.params[1]

    def fail(code_name: str, description: str) -> None:
        ctx.fail("VERIFY", code_name, name, description=description)

    def verified(account: StoredAccount) -> None:
        ctx.from_server("VERIFY", "SUCCESS", account.name, "Account verified")

    verify_account(ctx, name, code, fail, verified)


def verify_account(
    ctx: Context,
    name: str,
    code: str,
    fail: Callable[[str, str], None],
    verified: Callable[[StoredAccount], None],
) -> None:
    """Checks shared by VERIFY and NickServ VERIFY; on success the client is logged in (if it is not
    logged in to another account)."""
    server = ctx.server
    accounts = server.accounts
    if accounts is None:
        fail("TEMPORARILY_UNAVAILABLE", "Accounts are not available on this server")
        return
    account = accounts.get(name)
    if account is None or account.verified:
        fail("INVALID_CODE", "No account with that name is waiting for verification")
        return
    # A code is a password of sorts: the login limits apply to guessing it.
    wait = accounts.throttle(server, ctx.client, account.name)
    if wait:
        fail("TEMPORARILY_UNAVAILABLE", f"Too many attempts, try again in {wait:.0f} seconds")
        return
    if not codes_match(code, verification_code(accounts.secret, account)):
        log.info("wrong verification code for %s from %s (%s)", account.name, ctx.client.nick, ctx.client.ip)
        fail("INVALID_CODE", "That code is not right")
        return
    accounts.succeeded(server, ctx.client, account.name)

    def stored(outcome: Outcome[bool]) -> None:
        if not outcome.value:  # an error, or the account was dropped meanwhile
            log.error("could not store the verification of %s: %s", name, outcome.error or "no such account")
            fail("TEMPORARILY_UNAVAILABLE", "Could not store that; try again later")
            return
        done = replace(account, verified=True)
        log.info("account %s verified", done.name)
        verified(done)
        if ctx.client.account is None:
            log_in(ctx, done)

    accounts.set_verified(account.name, ctx.wait(stored))


def _log_failed_delete(name: str, outcome: Outcome[bool]) -> None:
    if outcome.error is not None:  # it expires unverified (account_verify_timeout_s)
        log.error("could not delete the unverified account %s: %s", name, outcome.error)


def _registration_refused(server: Server, client: Client) -> str:
    """Count a registration against its address's limit and the server's; why it may not go ahead, or ""."""
    if client.ip in server.throttle_exempt:
        return ""
    accounts = server.accounts
    assert accounts is not None
    config = server.config
    window, now, address = config.account_registration_window_s, server.clock(), ip_key(client.ip)
    wait = accounts.registrations_per_ip.take(address, config.account_registrations_per_ip, window, now)
    if wait:
        return f"Too many accounts registered from your address; try again in {wait / 60:.0f} minutes"
    wait = accounts.registrations.take("", config.account_registrations, window, now)
    if wait:
        accounts.registrations_per_ip.give_back(address, now)
        log.warning("account registrations paused for %.0f s (account_registrations reached)", wait)
        return f"Too many new accounts on this server right now; try again in {wait / 60:.0f} minutes"
    return ""


def start_registration(
    ctx: Context,
    name: str,
    email: str | None,
    password: str,
    fail: Callable[[str, str], None],
    registered: Callable[[StoredAccount], None],
    pending: Callable[[StoredAccount], None],
) -> None:
    """Checks shared by REGISTER and NickServ REGISTER. On success the client is logged in; with
    ``account_verification = "email"`` a code is mailed first and ``pending`` says so."""
    server = ctx.server
    client = ctx.client
    accounts = server.accounts
    config = server.config
    if accounts is None or not config.account_registration:
        fail("TEMPORARILY_UNAVAILABLE", "Account registration is disabled on this server")
        return
    if client.account is not None:
        fail("ALREADY_AUTHENTICATED", f"You are already logged in as {client.account}")
        return
    if not client.nick_cf:
        fail("NEED_NICK", "Choose a nick first: the account is named after it")
        return
    # An existing account is named as such first, whatever the client's nick: that is what a client
    # registering before connecting can act on (pick another name), not that its nick differs.
    existing = accounts.get(name)
    if existing is None and casefold(name) != client.nick_cf:
        fail("ACCOUNT_NAME_MUST_BE_NICK", "The account name must be your current nick")
        return
    if is_service(name) or not is_valid_nick(name, config.nick_max_len):
        fail("BAD_ACCOUNT_NAME", "That name can't be an account name")
        return
    if existing is not None:
        expired = server.wallclock() - existing.created > config.account_verify_timeout_s
        if existing.verified or not expired:
            fail("ACCOUNT_EXISTS", "An account with that name already exists")
            return
        if casefold(name) != client.nick_cf:
            fail("ACCOUNT_NAME_MUST_BE_NICK", "The account name must be your current nick")
            return
    by_email = config.account_verification == "email"
    if by_email and email is None:
        fail("INVALID_EMAIL", "An email address is needed to register here (a code is sent to it)")
        return
    if valid_utf8(password) is not password:
        fail("UNACCEPTABLE_PASSWORD", "The password must be UTF-8 text")
        return
    if len(password) < config.account_password_min_len:
        fail("WEAK_PASSWORD", f"Use a password of at least {config.account_password_min_len} characters")
        return
    if email is not None and ("@" not in email or len(email) > 254 or valid_utf8(email) is not email):
        fail("INVALID_EMAIL", "That is not an email address")
        return
    # Hashing costs the same as a login: the per-IP login limit applies.
    wait = accounts.per_ip.take(ip_key(client.ip), config.login_attempts_per_ip, config.login_throttle_window_s,
                                server.clock())
    if wait:
        fail("TEMPORARILY_UNAVAILABLE", f"Too many attempts, try again in {wait:.0f} seconds")
        return
    refusal = _registration_refused(server, client)
    if refusal:
        fail("TEMPORARILY_UNAVAILABLE", refusal)
        return

    def expired_deleted(outcome: Outcome[bool]) -> None:
        if outcome.error is not None:
            log.error("could not delete the expired account %s: %s", name, outcome.error)
            fail("TEMPORARILY_UNAVAILABLE", "Could not store the account; try again later")
        elif not outcome.value:  # verified (or registered anew) meanwhile
            fail("ACCOUNT_EXISTS", "An account with that name already exists")
        else:
            accounts.register(name, password, email, server.wallclock(), ctx.wait(stored), verified=not by_email)

    def stored(outcome: Outcome[StoredAccount]) -> None:
        account = outcome.value
        if account is None:
            if isinstance(outcome.error, AlreadyExists):
                fail("ACCOUNT_EXISTS", "An account with that name already exists")
            else:
                fail("TEMPORARILY_UNAVAILABLE", "Could not store the account; try again later")
            return
        if not account.verified:
            code = verification_code(accounts.secret, account)
            mailer = server.mailer
            server.offload.run(lambda: mailer(config, account, code),
                               ctx.wait(lambda outcome: mailed(account, outcome)))
            return
        registered(account)
        # Unless the client logged in or changed nick meanwhile, it is now logged in to its account;
        # whoever else took the nick in the meantime now holds a registered nick.
        if client.account is None and casefold(account.name) == client.nick_cf:
            log_in(ctx, account)
        holder = server.nick_registry.holder(casefold(account.name))
        if holder is not None and holder is not client:
            nick_protection_check(server, holder)

    def mailed(account: StoredAccount, outcome: Outcome[None]) -> None:
        if outcome.error is not None:
            log.error("could not mail the verification code of %s: %s", account.name, outcome.error)
            accounts.delete_expired(account, partial(_log_failed_delete, account.name))
            fail("TEMPORARILY_UNAVAILABLE", "Could not send the verification email; try again later")
        else:
            log.info("verification code for %s mailed", account.name)
            pending(account)

    if existing is not None:  # unverified and expired (checked above): gone first, unless verified meanwhile
        log.info("unverified account %s expired; registering it anew", existing.name)
        accounts.delete_expired(existing, ctx.wait(expired_deleted))
        return
    accounts.register(name, password, email, server.wallclock(), ctx.wait(stored), verified=not by_email)
