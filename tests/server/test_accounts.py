"""Accounts: REGISTER, SASL PLAIN and SCRAM-SHA-256, NickServ, nick protection, account-notify & co.

In memory, on a real SQLite file; password hashing runs inline (the runtime runs it on threads).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from scramp import ScramClient

from salotto.proto import parse
from salotto.server.client import Client
from salotto.storage import Storage, open_storage
from salotto.storage.outcome import Outcome
from tests.server.harness import Harness, User

PASSWORD = "correct-horse-battery"


def _harness(tmp_path: Path, *, deferred: bool = False, **overrides: Any) -> Harness:
    h = Harness(**overrides)
    h.attach_store(tmp_path, deferred=deferred)
    return h


@pytest.fixture(params=["at-once", "deferred"])
def h(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    """Both ways a store answers: at once, and later through the loop (as the server's does)."""
    yield _harness(tmp_path, deferred=request.param == "deferred")


def _registered(h: Harness, nick: str, password: str = PASSWORD, caps: list[str] | None = None) -> User:
    """A user who registered ``nick`` as an account (and is logged in to it)."""
    user = h.user(nick, caps=caps)
    user.send(f"REGISTER * * :{password}")
    assert any(m.command == "REGISTER" and m.params[0] == "SUCCESS" for m in user.messages())
    return user


def _sasl_plain(user: User, account: str, password: str) -> list[str]:
    user.send("AUTHENTICATE PLAIN")
    assert user.lines()[-1].endswith("AUTHENTICATE +")
    payload = base64.b64encode(f"\0{account}\0{password}".encode()).decode()
    user.send(f"AUTHENTICATE {payload}")
    return user.lines()


def _connecting(h: Harness, nick: str) -> User:
    user = h.connect()
    user.send("CAP LS 302")
    user.send("CAP REQ :sasl")
    user.send(f"NICK {nick}")
    user.send(f"USER {nick} 0 * :{nick}")
    user.lines()
    return user


def test_cap_ls_offers_sasl_mechanisms_and_account_caps(h: Harness) -> None:
    user = h.connect()
    user.send("CAP LS 302")
    offered = " ".join(m.params[-1] for m in user.messages())
    assert "sasl=PLAIN,SCRAM-SHA-256" in offered
    assert "draft/account-registration=before-connect" in offered
    assert "account-notify" in offered and "account-tag" in offered


def test_register_before_connect_logs_in_and_whois_shows_the_account(h: Harness) -> None:
    user = h.connect()
    user.send("CAP LS 302")
    user.send("NICK alice")
    user.send(f"REGISTER * alice@example.org :{PASSWORD}")
    messages = user.messages()
    assert [m.params for m in messages if m.command == "REGISTER"] == [["SUCCESS", "alice", "Account created"]]
    assert any(m.command == "900" and m.params[2] == "alice" for m in messages)
    user.send("USER alice 0 * :Alice")
    user.send("CAP END")
    assert user.client.registered
    other = h.user("bob")
    other.send("WHOIS alice")
    assert [m.params[1:3] for m in other.messages() if m.command == "330"] == [["alice", "alice"]]


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("REGISTER * * short", "WEAK_PASSWORD"),
        (f"REGISTER carol * :{PASSWORD}", "ACCOUNT_NAME_MUST_BE_NICK"),
        (f"REGISTER * not-an-email :{PASSWORD}", "INVALID_EMAIL"),
    ],
)
def test_register_refusals_are_standard_replies(h: Harness, line: str, code: str) -> None:
    user = h.user("alice")
    user.send(line)
    fails = [m.params for m in user.messages() if m.command == "FAIL"]
    assert fails and fails[0][:2] == ["REGISTER", code]
    assert user.client.account is None


def test_register_says_so_when_the_database_refuses_the_account(tmp_path: Path) -> None:
    """Not "already exists": the name is free, the store could not take it (here a read-only file)."""
    open_storage("sqlite", tmp_path).close()
    h = Harness()
    h.attach_refusing_store(tmp_path)
    alice = h.user("alice")
    alice.send(f"REGISTER * * :{PASSWORD}")
    fails = [m.params for m in alice.messages() if m.command == "FAIL"]
    assert [f[:2] for f in fails] == [["REGISTER", "TEMPORARILY_UNAVAILABLE"]] and "try again later" in fails[0][-1]
    assert alice.client.account is None


def test_register_taken_name_and_when_disabled(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    _registered(h, "alice").send("QUIT")
    again = h.user("alice")
    again.send(f"REGISTER * * :{PASSWORD}")
    assert [m.params[:2] for m in again.messages() if m.command == "FAIL"] == [["REGISTER", "ACCOUNT_EXISTS"]]

    closed = _harness(tmp_path / "closed", account_registration=False)
    user = closed.user("dave")
    user.send(f"REGISTER * * :{PASSWORD}")
    assert [m.params[:2] for m in user.messages() if m.command == "FAIL"] == [["REGISTER", "TEMPORARILY_UNAVAILABLE"]]


def test_sasl_plain_right_and_wrong_password(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    wrong = _connecting(h, "alice")
    lines = _sasl_plain(wrong, "alice", "not the password")
    assert [parse(line).command for line in lines] == ["904"]
    assert wrong.client.account is None

    right = _connecting(h, "alice2")
    lines = _sasl_plain(right, "alice", PASSWORD)
    assert [parse(line).command for line in lines] == ["900", "903"]
    right.send("CAP END")
    assert right.client.registered and right.client.account == "alice"


def test_sasl_abort_too_long_already_and_unknown_mechanism(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    user = _connecting(h, "bob")
    user.send("AUTHENTICATE DIGEST-MD5")
    assert [m.command for m in user.messages()] == ["908", "904"]
    user.send("AUTHENTICATE PLAIN")
    user.send("AUTHENTICATE *")
    assert user.numerics()[-1] == "906"
    user.send("AUTHENTICATE PLAIN")
    user.send("AUTHENTICATE " + "A" * 401)
    assert user.numerics()[-1] == "905"
    user.send("AUTHENTICATE PLAIN")
    for _ in range(11):  # 4,400 bytes in full chunks: over sasl_max_payload_bytes (4096)
        user.send("AUTHENTICATE " + "A" * 400)
    assert user.numerics()[-1] == "905"
    _sasl_plain(user, "alice", PASSWORD)
    user.send("AUTHENTICATE PLAIN")
    assert user.numerics() == ["907"]


def _connecting_from(h: Harness, nick: str, ip: str) -> User:
    user = h.connect(ip)
    for line in ("CAP LS 302", "CAP REQ :sasl", f"NICK {nick}", f"USER {nick} 0 * :{nick}"):
        user.send(line)
    user.lines()
    return user


def test_login_attempts_are_throttled_per_ip_and_per_account(tmp_path: Path) -> None:
    h = _harness(tmp_path, login_attempts_per_account=3, login_attempts_per_ip=5, login_throttle_window_s=60)
    _registered(h, "alice").send("QUIT")  # from 127.0.0.1
    results = []
    for i in range(4):
        user = _connecting_from(h, f"guesser{i}", "192.0.2.1")
        results.append(_sasl_plain(user, "alice", "guess")[-1])
    assert "too many attempts" not in results[2] and "too many attempts" in results[3]
    # From an address that never logged in to alice, the right password is refused too meanwhile...
    user = _connecting_from(h, "alice_", "198.51.100.7")
    assert "too many attempts" in _sasl_plain(user, "alice", PASSWORD)[-1]
    # ...but from the owner's own address (alice registered from it), the guessing holds nothing back.
    user = _connecting_from(h, "alice__", "127.0.0.1")
    assert parse(_sasl_plain(user, "alice", PASSWORD)[-1]).command == "903"
    # Elsewhere, it works again once the window has refilled.
    h.clock.now += 60
    user = _connecting_from(h, "alice___", "198.51.100.7")
    assert parse(_sasl_plain(user, "alice", PASSWORD)[-1]).command == "903"


class SteppedOffload:
    """Hashes when the test says so: every attempt below is in flight at once, as from many addresses."""

    def __init__(self) -> None:
        self.work: list[tuple[Any, Any]] = []

    def run(self, fn: Any, callback: Any) -> None:
        self.work.append((fn, callback))

    def finish(self) -> int:
        done = 0
        while self.work:
            fn, callback = self.work.pop(0)
            callback(Outcome(value=fn()))
            done += 1
        return done


def test_forty_addresses_guessing_at_once_get_no_more_checks_than_the_account_limit(tmp_path: Path) -> None:
    h = _harness(tmp_path, login_attempts_per_account=5, login_attempts_per_ip=10, login_throttle_window_s=60)
    _registered(h, "alice").send("QUIT")
    offload = SteppedOffload()
    assert h.server.accounts is not None
    h.server.accounts.offload = offload
    guessers = [_connecting_from(h, f"guesser{i}", f"192.0.2.{i + 1}") for i in range(40)]
    for user in guessers:
        user.send("AUTHENTICATE PLAIN")
        user.send("AUTHENTICATE " + base64.b64encode(b"\0alice\0guess").decode())
    assert offload.finish() == 5  # hashes computed: the limit, not forty
    answers = [user.lines()[-1] for user in guessers]
    assert sum("too many attempts" in line for line in answers) == 35
    assert sum(" 904 " in line and "invalid account name or password" in line for line in answers) == 5


def test_a_spray_of_other_names_never_resets_the_limit_of_the_account_under_attack(tmp_path: Path) -> None:
    """The throttle's memory is bounded, but not by forgetting the bucket of the account under attack
    (the oldest one): SCRAM's first step counts an attempt on any name before any hash is made, so
    fresh names cost an attacker nothing."""
    h = _harness(tmp_path, login_attempts_per_account=3, login_attempts_per_ip=100)
    _registered(h, "alice").send("QUIT")
    accounts = h.server.accounts
    assert accounts is not None
    for i in range(3):
        user = _connecting_from(h, f"guesser{i}", "192.0.2.1")
        assert " 904 " in _sasl_plain(user, "alice", "guess")[-1]
    for i in range(10_001):  # from as many addresses: the per-address limit is not what stops them
        sprayer = cast(Client, SimpleNamespace(ip=f"10.0.{i // 256}.{i % 256}"))
        accounts.throttle(h.server, sprayer, f"fresh{i}")
    user = _connecting_from(h, "guesser", "192.0.2.1")
    assert "too many attempts" in _sasl_plain(user, "alice", "guess")[-1]
    # Those names are no account's: they share one bucket, and the throttle holds two in all.
    assert len(accounts.per_account._buckets) == 2


def test_a_scram_exchange_for_a_name_that_is_no_account_uses_the_shared_bucket(tmp_path: Path) -> None:
    h = _harness(tmp_path, login_attempts_per_account=2, login_attempts_per_ip=100)
    _registered(h, "alice").send("QUIT")
    answers = []
    for i in range(3):
        user = _connecting_from(h, f"prober{i}", f"192.0.2.{i + 1}")
        user.send("AUTHENTICATE SCRAM-SHA-256")
        user.send("AUTHENTICATE " + base64.b64encode(f"n,,n=nobody{i},r=abcdefgh".encode()).decode())
        answers.append(user.lines()[-1])
    assert [parse(a).command for a in answers[:2]] == ["AUTHENTICATE", "AUTHENTICATE"]  # the server-first
    assert "too many attempts" in answers[2]
    # alice's own allowance is untouched.
    user = _connecting_from(h, "alice_", "198.51.100.7")
    assert parse(_sasl_plain(user, "alice", PASSWORD)[-1]).command == "903"


def test_an_unknown_account_answers_as_slowly_as_a_known_one(tmp_path: Path) -> None:
    """A wrong password for an account that does not exist costs a hash too: the time of the answer does
    not tell whether the account exists."""
    h = _harness(tmp_path, login_attempts_per_account=100, login_attempts_per_ip=100)
    _registered(h, "alice").send("QUIT")

    def answer_time(account: str) -> float:
        times = []
        for i in range(3):
            user = _connecting_from(h, f"t{account}{i}", "192.0.2.50")
            started = time.perf_counter()
            assert " 904 " in _sasl_plain(user, account, "wrong guess")[-1]
            times.append(time.perf_counter() - started)
        return sorted(times)[1]

    known, unknown = answer_time("alice"), answer_time("nosuchaccount")
    assert unknown > known * 0.5, (known, unknown)


def _scram_exchange(user: User, account: str, password: str) -> list[str]:
    client = ScramClient(["SCRAM-SHA-256"], account, password)
    user.send("AUTHENTICATE SCRAM-SHA-256")
    assert user.lines()[-1].endswith("AUTHENTICATE +")
    user.send("AUTHENTICATE " + base64.b64encode(client.get_client_first().encode()).decode())
    server_first = parse(user.lines()[-1])
    assert server_first.command == "AUTHENTICATE"
    client.set_server_first(base64.b64decode(server_first.params[0]).decode())
    user.send("AUTHENTICATE " + base64.b64encode(client.get_client_final().encode()).decode())
    reply = user.lines()
    final = parse(reply[-1])
    if final.command != "AUTHENTICATE":
        return reply
    client.set_server_final(base64.b64decode(final.params[0]).decode())  # raises on a bad server signature
    user.send("AUTHENTICATE +")
    return user.lines()


def test_sasl_scram_sha_256_with_an_independent_client(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    user = _connecting(h, "someone")
    assert [parse(line).command for line in _scram_exchange(user, "alice", PASSWORD)] == ["900", "903"]
    assert user.client.account == "alice"
    wrong = _connecting(h, "other")
    assert [parse(line).command for line in _scram_exchange(wrong, "alice", "wrong password")] == ["904"]
    unknown = _connecting(h, "third")
    assert [parse(line).command for line in _scram_exchange(unknown, "nobody", PASSWORD)] == ["904"]


def test_nickserv_identify_logout_info_and_help(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    user = h.user("alice_", caps=["account-notify"])
    user.send("PRIVMSG NickServ :IDENTIFY alice wrong-password")
    assert "Login failed" in user.lines()[-1]
    user.send(f"NS IDENTIFY alice {PASSWORD}")
    messages = user.messages()
    assert [m.command for m in messages] == ["900", "ACCOUNT", "NOTICE"]
    assert messages[-1].source.startswith("NickServ!") and "logged in as alice" in messages[-1].params[1]
    user.send("PRIVMSG NickServ :INFO alice")
    info = " ".join(m.params[1] for m in user.messages())
    assert "Account alice, registered" in info and "alice_" in info
    user.send("PRIVMSG NickServ :LOGOUT")
    assert [m.command for m in user.messages()] == ["901", "ACCOUNT", "NOTICE"]
    assert user.client.account is None
    user.send("PRIVMSG NickServ :HELP")
    assert any("GHOST" in m.params[1] for m in user.messages())


def test_nickserv_register_and_ghost(h: Harness) -> None:
    alice = h.user("alice")
    alice.send(f"PRIVMSG NickServ :REGISTER {PASSWORD}")
    assert any("registered" in m.params[1] for m in alice.messages() if m.command == "NOTICE")
    assert alice.client.account == "alice"
    # A stale connection still holds the nick; from another, alice disconnects it.
    stale = alice
    fresh = h.user("alice2")
    fresh.send(f"PRIVMSG NickServ :GHOST alice {PASSWORD}")
    assert stale.conn.closed is not None
    assert "disconnected" in fresh.messages()[-1].params[1]
    fresh.send("NICK alice")
    assert fresh.client.nick == "alice"


def test_nickserv_drop_deletes_the_account(h: Harness) -> None:
    alice = _registered(h, "alice")
    accounts = h.server.accounts
    assert accounts is not None and accounts.is_registered("alice")
    alice.send("PRIVMSG NickServ :DROP wrong-password")
    assert alice.client.account == "alice"
    alice.messages()
    alice.send(f"PRIVMSG NickServ :DROP {PASSWORD}")
    assert alice.client.account is None
    assert accounts.get("alice") is None
    # The nick is free again: whoever takes it next is not warned off it.
    alice.send("NICK alice_")
    mallory = h.user("mallory")
    mallory.send("NICK alice")
    assert mallory.client.nick == "alice"
    assert not [m for m in mallory.messages() if m.command == "NOTICE"]


def test_registered_nick_taken_by_someone_else_is_renamed_after_the_grace(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    mallory = h.user("mallory")
    watcher = h.user("watcher")
    mallory.send("NICK alice")
    notices = [m for m in mallory.messages() if m.command == "NOTICE"]
    assert notices and "is registered" in notices[0].params[1] and notices[0].source.startswith("NickServ!")
    h.clock.now += 29
    h.server.tick()
    assert mallory.client.nick == "alice"
    h.clock.now += 2
    h.server.tick()
    assert mallory.client.nick.startswith("Guest")
    assert any(m.command == "NICK" and m.params == [mallory.client.nick] for m in watcher.messages())


def test_someone_logged_in_to_another_account_is_told_to_log_out_first(h: Harness) -> None:
    """IDENTIFY alone would answer "already logged in": the notice says what works."""
    _registered(h, "alice").send("QUIT")
    thief = _registered(h, "thief")
    thief.send("NICK alice")
    notice = next(m for m in thief.messages() if m.command == "NOTICE").params[1]
    assert "logged in as thief" in notice and "LOGOUT, then IDENTIFY" in notice
    thief.send("NS LOGOUT")
    thief.send(f"NS IDENTIFY alice {PASSWORD}")
    h.clock.now += 60
    h.server.tick()
    assert thief.client.nick == "alice" and thief.client.account == "alice"


def test_logging_out_and_in_again_does_not_restart_the_grace(h: Harness) -> None:
    """Holding alice's nick while logged in as thief: each LOGOUT warns again, with the time that is
    left, not a fresh grace period; the rename comes when the first one ends."""
    _registered(h, "alice").send("QUIT")
    thief = _registered(h, "thief")
    thief.send("NICK alice")
    for _ in range(2):
        h.clock.now += 10
        h.server.tick()
        thief.send("NS LOGOUT")
        thief.send(f"NS IDENTIFY thief {PASSWORD}")
    notices = [m.params[1] for m in thief.messages() if m.command == "NOTICE" and "is registered" in m.params[1]]
    assert [n.split("within ")[1].split(" seconds")[0] for n in notices] == ["30", "20", "10"]
    h.clock.now += 10
    h.server.tick()
    assert thief.client.nick.startswith("Guest")


def test_logging_in_within_the_grace_keeps_the_nick(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    alice = h.user("alice")
    alice.send(f"NS IDENTIFY {PASSWORD}")
    h.clock.now += 60
    h.server.tick()
    assert alice.client.nick == "alice" and alice.client.account == "alice"


def test_zero_grace_refuses_a_registered_nick(tmp_path: Path) -> None:
    h = _harness(tmp_path, nick_protection_grace_s=0)
    _registered(h, "alice").send("QUIT")
    bob = h.user("bob")
    bob.send("NICK alice")
    assert bob.numerics() == ["433"] and bob.client.nick == "bob"
    # At registration too: the client must pick another nick, as after any 433.
    user = h.connect()
    user.send("NICK alice")
    user.send("USER x 0 * :x")
    assert user.numerics() == ["433"] and not user.client.registered
    user.send("NICK alice_")
    assert user.client.registered
    # With SASL during registration, the owner gets the nick.
    owner = _connecting(h, "alice")
    _sasl_plain(owner, "alice", PASSWORD)
    owner.send("CAP END")
    assert owner.client.registered and owner.client.nick == "alice"


def test_services_nicks_cannot_be_taken(h: Harness) -> None:
    user = h.user("someone")
    user.send("NICK NickServ")
    assert user.numerics() == ["433"]


def test_account_notify_extended_join_and_account_tag(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    watcher = h.user("watcher", caps=["account-notify", "extended-join", "account-tag", "message-tags"])
    alice = h.user("alice")
    alice.send(f"NS IDENTIFY {PASSWORD}")
    seen = watcher.messages()
    assert [m.params for m in seen if m.command == "ACCOUNT"] == [["alice"]]
    alice.send("JOIN #room")
    watcher.send("JOIN #room")
    watcher.messages()
    alice.send("PRIVMSG #room :hello")
    message = watcher.messages()[-1]
    assert message.tags.get("account") == "alice"
    bob = h.user("bob")
    bob.send("JOIN #room")
    join = next(m for m in watcher.messages() if m.command == "JOIN" and m.params[0] == "#room")
    assert join.params == ["#room", "*", "bob Realname"]


def test_oper_password_check_still_works(tmp_path: Path) -> None:
    from salotto.config import OperBlock
    from salotto.passwords import hash_password

    h = _harness(tmp_path)
    h.server.config.opers["admin"] = OperBlock("admin", hash_password("secret", n=2**10))
    user = h.user("op")
    user.send("OPER admin wrong")
    assert user.numerics() == ["464"]
    user.send("OPER admin secret")
    assert "381" in user.numerics()


def test_guest_rename_never_lands_on_a_registered_nick(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    mallory = h.user("mallory")
    _registered(h, f"Guest{mallory.client.id}").send("QUIT")
    mallory.send("NICK alice")
    h.clock.now += 31
    h.server.tick()
    assert mallory.client.nick == f"Guest{mallory.client.id}_1"


def test_changing_only_the_case_does_not_restart_the_grace(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    mallory = h.user("mallory")
    mallory.send("NICK alice")
    h.clock.now += 20
    mallory.send("NICK ALICE")
    h.clock.now += 11
    h.server.tick()
    assert mallory.client.nick.startswith("Guest")


def test_the_owners_own_logins_never_lock_the_account(tmp_path: Path) -> None:
    h = _harness(tmp_path, login_attempts_per_account=2, login_attempts_per_ip=100)
    _registered(h, "alice").send("QUIT")
    for i in range(5):
        user = _connecting(h, f"alice{i}")
        assert parse(_sasl_plain(user, "alice", PASSWORD)[-1]).command == "903"
        user.send("QUIT")


def test_the_owners_addresses_outlive_a_restart(tmp_path: Path) -> None:
    """The addresses an account logged in from are in the store: after a restart, guessing from elsewhere
    still never locks the owner out at home."""
    overrides: dict[str, Any] = {"login_attempts_per_account": 3, "login_attempts_per_ip": 100}
    h = _harness(tmp_path, **overrides)
    _registered(h, "alice").send("QUIT")  # from 127.0.0.1
    home = _connecting_from(h, "alice", "192.0.2.10")
    assert parse(_sasl_plain(home, "alice", PASSWORD)[-1]).command == "903"
    restarted = _harness(tmp_path, **overrides)  # a new server on the same data directory
    accounts = restarted.server.accounts
    assert accounts is not None and accounts.trusted("alice") == ["127.0.0.1", "192.0.2.10"]
    for i in range(4):
        guesser = _connecting_from(restarted, f"guesser{i}", "198.51.100.66")
        answer = _sasl_plain(guesser, "alice", f"guess {i}")[-1]
    assert "too many attempts" in answer  # the account's limit is used up...
    elsewhere = _connecting_from(restarted, "alice_", "203.0.113.5")
    assert "too many attempts" in _sasl_plain(elsewhere, "alice", PASSWORD)[-1]
    home = _connecting_from(restarted, "alice", "192.0.2.10")  # ...but not at home
    assert parse(_sasl_plain(home, "alice", PASSWORD)[-1]).command == "903"


def alices_addresses(store: Storage) -> list[str]:
    """The addresses alice's account has in the store, oldest first."""
    return [address for account, address, _ in store.list_login_addresses() if account == "alice"]


def test_an_account_keeps_its_newest_eight_addresses_and_loses_them_when_dropped(tmp_path: Path) -> None:
    h = Harness(login_attempts_per_ip=100)
    store = h.attach_store(tmp_path)
    _registered(h, "alice").send("QUIT")  # from 127.0.0.1, the oldest
    for i in range(8):
        h.wall[0] += 60
        user = _connecting_from(h, f"alice{i}", f"192.0.2.{i + 1}")
        assert parse(_sasl_plain(user, "alice", PASSWORD)[-1]).command == "903"
        user.send("QUIT")
    accounts = h.server.accounts
    assert accounts is not None
    newest = [f"192.0.2.{i + 1}" for i in range(8)]
    assert accounts.trusted("alice") == newest
    assert alices_addresses(store) == newest
    # Logging in again from one of them within the day writes nothing.
    h.wall[0] += 60
    user = _connecting_from(h, "again", "192.0.2.1")
    assert parse(_sasl_plain(user, "alice", PASSWORD)[-1]).command == "903"
    assert alices_addresses(store)[0] == "192.0.2.1"
    # A day later it is written again, and is the newest.
    h.wall[0] += 86_400
    user = _connecting_from(h, "later", "192.0.2.1")
    assert parse(_sasl_plain(user, "alice", PASSWORD)[-1]).command == "903"
    assert accounts.trusted("alice") == [*newest[1:], "192.0.2.1"]
    assert alices_addresses(store) == [*newest[1:], "192.0.2.1"]
    user.send("CAP END")
    user.send("PRIVMSG NickServ :DROP " + PASSWORD)
    assert accounts.get("alice") is None and alices_addresses(store) == []
    assert accounts.trusted("alice") == []


def test_nickserv_passwords_may_hold_spaces(h: Harness) -> None:
    user = h.user("alice")
    user.send("REGISTER * * :correct horse battery staple")
    user.send("QUIT")
    again = h.user("alice")
    again.send("PRIVMSG NickServ :IDENTIFY correct horse battery staple")
    assert again.client.account == "alice"
    other = h.user("bob")
    other.send("PRIVMSG NickServ :REGISTER two words bob@example.org")
    assert other.client.account == "bob"
    assert h.server.accounts is not None and h.server.accounts.get("bob").email == "bob@example.org"  # type: ignore[union-attr]


def test_a_service_command_among_other_targets_answers_and_keeps_the_echo(h: Harness) -> None:
    _registered(h, "alice").send("QUIT")
    user = h.user("alice_", caps=["echo-message"])
    user.send(f"PRIVMSG #lobby,NickServ :IDENTIFY alice {PASSWORD}")
    messages = user.messages()
    assert any(m.command == "PRIVMSG" and m.params[0] == "#lobby" for m in messages)  # the echo
    assert any(m.command == "900" for m in messages)


def test_long_input_to_a_service_gets_a_line_within_512_bytes(h: Harness) -> None:
    user = h.user("someone")
    user.send("CS " + "A" * 480)
    lines = user.lines()
    assert lines and all(len(line.encode()) + 2 <= 512 for line in lines)


def test_labeled_logout_answers_inside_its_batch(h: Harness) -> None:
    user = _registered(h, "alice", caps=["labeled-response", "batch", "account-notify"])
    user.send("@label=out NS LOGOUT")
    messages = user.messages()
    assert messages[0].command == "BATCH" and messages[0].tags.get("label") == "out"
    # 901, account-notify, NickServ's warning that alice is a registered nick, the LOGOUT notice.
    assert [m.command for m in messages[1:-1]] == ["901", "ACCOUNT", "NOTICE", "NOTICE"]
    assert messages[-1].command == "BATCH"


def test_a_password_login_renews_scram_keys_that_are_missing_or_weak(tmp_path: Path) -> None:
    """An account whose SCRAM keys were dropped (or made with old, fewer rounds) gets today's at its next
    login with the password, and SCRAM works for it again."""
    from salotto.passwords import SCRAM_ITERATIONS, scram_credentials

    _registered(_harness(tmp_path), "alice").send("QUIT")
    _drop_scram_keys(tmp_path, "alice")
    h = _harness(tmp_path)  # a restart: the account is as the store has it
    accounts = h.server.accounts
    assert accounts is not None
    user = _connecting(h, "someone")
    assert [parse(line).command for line in _scram_exchange(user, "alice", PASSWORD)][-1] == "904"
    user = _connecting(h, "other")
    assert parse(_sasl_plain(user, "alice", PASSWORD)[-1]).command == "903"
    stored = accounts.get("alice")
    assert stored is not None
    credentials = scram_credentials(stored.password_hash)
    assert credentials is not None and credentials.iterations == SCRAM_ITERATIONS
    user = _connecting(h, "third")
    assert [parse(line).command for line in _scram_exchange(user, "alice", PASSWORD)] == ["900", "903"]


def _drop_scram_keys(data_dir: Path, name: str) -> None:
    """Leave an account with a password hash only, as an older salotto stored it."""
    from salotto.passwords import make_account_secret

    store = open_storage("sqlite", data_dir)
    store.set_password_hash(name, make_account_secret(PASSWORD, scram_iterations=4096).split(";")[0])
    store.close()


class HeldOffload:
    """Runs each piece of work when the test says so, in any order."""

    def __init__(self) -> None:
        self.work: list[tuple[Any, Any]] = []

    def run(self, fn: Any, callback: Any) -> None:
        self.work.append((fn, callback))

    def step(self, index: int = 0) -> None:
        fn, callback = self.work.pop(index)
        callback(Outcome(value=fn()))


def test_renewed_scram_keys_never_replace_the_password_of_an_account_registered_meanwhile(tmp_path: Path) -> None:
    """The renewal is stored a fraction of a second after the login; if the account was dropped and
    registered anew in between, the new owner's password stays."""
    from salotto.passwords import verify_password

    _registered(_harness(tmp_path), "alice").send("QUIT")
    _drop_scram_keys(tmp_path, "alice")  # no SCRAM keys: the next login renews them
    h = Harness()
    store = h.attach_store(tmp_path)
    accounts = h.server.accounts
    assert accounts is not None
    offload = accounts.offload = HeldOffload()
    user = _connecting(h, "someone")
    user.send("AUTHENTICATE PLAIN")
    user.send("AUTHENTICATE " + base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode())
    offload.step()  # the password check: right, and the renewal starts
    assert user.client.account == "alice" and len(offload.work) == 1
    # Meanwhile alice drops the account and someone registers the name with another password.
    accounts.delete("alice")
    accounts.register("alice", "the newcomer's password", None, 2.0, lambda outcome: None)
    offload.step(1)  # the newcomer's hash, then its account
    newcomer = accounts.get("alice")
    assert newcomer is not None and verify_password("the newcomer's password", newcomer.password_hash)
    offload.step()  # the renewal's keys are ready: they belong to the old password
    for stored in (accounts.get("alice"), store.get_account("alice")):
        assert stored is not None and stored.password_hash == newcomer.password_hash


def test_account_registrations_are_limited_per_address_and_in_all(tmp_path: Path) -> None:
    h = _harness(tmp_path, account_registrations_per_ip=2, account_registrations=5,
                 account_registration_window_s=600, login_attempts_per_ip=100, throttle_exempt=["10.9.9.9"])

    def register(nick: str, ip: str) -> str:
        user = h.user(nick, ip=ip)
        user.send(f"REGISTER * * :{PASSWORD}")
        return user.lines()[0]

    assert "SUCCESS" in register("a1", "192.0.2.1") and "SUCCESS" in register("a2", "192.0.2.1")
    refused = register("a3", "192.0.2.1")
    assert refused.startswith(":salotto.local FAIL REGISTER TEMPORARILY_UNAVAILABLE a3 :Too many accounts "
                              "registered from your address"), refused
    assert "SUCCESS" in register("b1", "192.0.2.2") and "SUCCESS" in register("b2", "192.0.2.2")
    assert "SUCCESS" in register("c1", "192.0.2.3")
    # Five in the window: the sixth waits, from whichever address (the hash queue stays free for logins).
    assert "Too many new accounts on this server" in register("d1", "192.0.2.4")
    assert "SUCCESS" in register("e1", "10.9.9.9")  # throttle_exempt: the operator's own address
    h.clock.now += 600
    assert "SUCCESS" in register("d2", "192.0.2.4")
    assert h.server.accounts is not None and h.server.accounts.get("a3") is None


def test_a_drop_whose_sender_leaves_before_the_answer_still_logs_out_every_session(tmp_path: Path) -> None:
    """NickServ DROP, and the connection goes before the store answers: the account is gone, and no other
    session stays logged in to it (a newcomer registering the name must not share it with them)."""
    h = _harness(tmp_path, deferred=True)
    alice = _registered(h, "alice")
    phone = h.user("alice_phone")
    phone.send(f"PRIVMSG NickServ :IDENTIFY alice {PASSWORD}")
    assert phone.client.account == "alice"
    alice.send_unsettled(f"PRIVMSG NickServ :DROP {PASSWORD}")  # the delete is on its way
    h.server.disconnect(alice.client, "Connection reset by peer")
    phone.lines()  # the store answers
    assert h.server.accounts is not None and h.server.accounts.get("alice") is None
    assert phone.client.account is None


def test_a_login_whose_hash_ends_after_a_drop_logs_in_to_nothing(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    _registered(h, "alice").send("QUIT")
    accounts = h.server.accounts
    assert accounts is not None
    offload = accounts.offload = HeldOffload()
    user = h.user("someone")
    user.send(f"PRIVMSG NickServ :IDENTIFY alice {PASSWORD}")  # the hash is on its way
    accounts.delete("alice")
    offload.step()
    assert user.client.account is None
    assert "Login failed" in user.lines()[-1]
