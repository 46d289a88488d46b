"""A private server (server_password_hash): PASS before registration or 464 and the door; guessing is slow
from one address and from many, and nothing else (accounts, SASL) is open to who lacks the password."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from salotto.config import ConfigError, load_config
from salotto.passwords import hash_password
from salotto.proto.numerics import ERR_ALREADYREGISTERED, ERR_PASSWDMISMATCH, RPL_WELCOME
from salotto.server.offload import InlineOffload
from salotto.storage.outcome import Outcome
from tests.server.harness import Harness, User

T = TypeVar("T")

PASSWORD = "friends only"
# A cheap scrypt cost keeps the tests fast; the hash carries its parameters.
HASH = hash_password(PASSWORD, n=2**10)


class CountingOffload(InlineOffload):
    """Inline hashing that counts the hashes: a refused guess must cost none."""

    def __init__(self) -> None:
        self.runs = 0

    def run(self, fn: Callable[[], T], callback: Callable[[Outcome[T]], None]) -> None:
        self.runs += 1
        super().run(fn, callback)


def private(tmp_path: Path | None = None, **overrides: Any) -> Harness:
    h = Harness(server_password_hash=HASH, **overrides)
    if tmp_path is not None:
        h.attach_store(tmp_path)
    return h


def register(user: User, nick: str, password: str | None = PASSWORD) -> list[str]:
    if password is not None:
        user.send(f"PASS :{password}")
    user.send(f"NICK {nick}")
    user.send(f"USER {nick} 0 * :{nick}")
    return user.lines()


def refused(user: User, lines: list[str], why: str) -> None:
    """464 with ``why``, then ERROR, and the connection closed; the client never registered."""
    assert lines[0].split()[1] == ERR_PASSWDMISMATCH and why in lines[0], lines
    assert lines[1].startswith("ERROR :Closing link"), lines
    assert len(lines) == 2, lines
    assert user.conn.closed is not None and not user.client.registered


def test_the_right_password_registers(tmp_path: Path) -> None:
    h = private(tmp_path)
    user = h.connect()
    lines = register(user, "alice")
    assert lines[0].split()[1] == RPL_WELCOME
    assert user.client.registered


def test_a_wrong_password_is_464_and_the_door(tmp_path: Path) -> None:
    h = private(tmp_path)
    user = h.connect()
    refused(user, register(user, "mallory", "guess"), "Password incorrect")
    # What came after PASS (NICK, USER) was never run: the nick is free.
    assert h.server.find_user("mallory") is None and "mallory" not in h.server.users


def test_no_password_is_464_when_registration_would_complete(tmp_path: Path) -> None:
    h = private(tmp_path)
    user = h.connect()
    user.send("NICK nopass")
    assert user.lines() == []  # nothing is said before registration could complete
    user.send("USER nopass 0 * :x")
    refused(user, user.lines(), "Password required")


def test_cap_negotiation_goes_on_and_pass_may_come_before_cap_end(tmp_path: Path) -> None:
    h = private(tmp_path)
    user = h.connect()
    user.send("CAP LS 302")
    user.send("NICK carol")
    user.send("USER carol 0 * :x")
    user.send(f"PASS :{PASSWORD}")
    user.send("CAP END")
    assert RPL_WELCOME in user.numerics()


def test_pass_after_registration_is_462_and_changes_nothing(tmp_path: Path) -> None:
    h = private(tmp_path)
    user = h.connect()
    register(user, "dave")
    user.send("PASS :anything")
    assert user.numerics() == [ERR_ALREADYREGISTERED]
    assert user.conn.closed is None


def test_a_second_pass_after_the_right_one_costs_no_hash(tmp_path: Path) -> None:
    h = private(tmp_path)
    offload = h.server.offload = CountingOffload()
    user = h.connect()
    user.send(f"PASS :{PASSWORD}")
    user.send("PASS :whatever")
    register(user, "erin", None)
    assert user.client.registered and offload.runs == 1


def test_account_registration_and_sasl_need_the_password_first(tmp_path: Path) -> None:
    h = private(tmp_path)
    squatter = h.connect()
    squatter.send("NICK squatter")
    squatter.send("REGISTER * * :a long enough password")
    refused(squatter, squatter.lines(), "Password required")
    assert h.server.accounts is not None and h.server.accounts.get("squatter") is None
    prober = h.connect()
    prober.send("CAP LS 302")
    prober.send("CAP REQ :sasl")
    prober.lines()
    prober.send("AUTHENTICATE PLAIN")
    refused(prober, prober.lines(), "Password required")
    # With the password, REGISTER before connecting works as on any server.
    member = h.connect()
    member.send(f"PASS :{PASSWORD}")
    member.send("NICK member")
    member.send("REGISTER * * :a long enough password")
    assert any(" REGISTER SUCCESS " in line for line in member.lines())


def held_back(user: User, lines: list[str]) -> None:
    """A limit held the attempt back: ERROR saying when to try again, no 464 (clients take 464 as "wrong
    password, stop"; after an ERROR they reconnect later), and the connection closed."""
    assert len(lines) == 1 and lines[0].startswith("ERROR :") and "try again in" in lines[0], lines
    assert user.conn.closed is not None and not user.client.registered


def welcomed(lines: list[str]) -> bool:
    return any(line.split()[1] == RPL_WELCOME for line in lines if len(line.split()) > 1)


class HeldOffload(InlineOffload):
    """Checks wait until the test runs them: the attempts below are in flight at once."""

    def __init__(self) -> None:
        self.work: list[tuple[Callable[[], Any], Callable[[Outcome[Any]], None]]] = []
        self.runs = 0

    def run(self, fn: Callable[[], T], callback: Callable[[Outcome[T]], None]) -> None:
        self.runs += 1
        self.work.append((fn, callback))  # type: ignore[arg-type]

    def finish(self) -> None:
        while self.work:
            fn, callback = self.work.pop(0)
            callback(Outcome(value=fn()))


def test_guessing_from_one_address_is_held_back_without_hashing(tmp_path: Path) -> None:
    h = private(tmp_path, login_attempts_per_ip=3, login_attempts_per_account=100)
    offload = h.server.offload = CountingOffload()
    for attempt in range(3):
        guesser = h.connect("198.51.100.7")
        refused(guesser, register(guesser, f"g{attempt}", f"guess {attempt}"), "Password incorrect")
    assert offload.runs == 3
    # Even the right password is held back now, and costs no hash; the answer is not a 464.
    guesser = h.connect("198.51.100.7")
    lines = register(guesser, "g3")
    held_back(guesser, lines)
    assert "Too many attempts from your address; try again in 20 seconds" in lines[0]
    assert offload.runs == 3
    # Another address is not.
    friend = h.connect("203.0.113.5")
    assert welcomed(register(friend, "friend"))
    # The window passes: the address may try again.
    h.clock.now += 60
    guesser = h.connect("198.51.100.7")
    assert welcomed(register(guesser, "g4"))


def test_one_address_guessing_all_along_never_keeps_out_a_new_address_with_the_password(tmp_path: Path) -> None:
    """What the attacker does uses up its own allowance and the budget of addresses that guessed wrong,
    never what an address with no wrong password needs, before or after a restart."""
    for restart in range(2):
        h = private(tmp_path / str(restart), connect_attempts_per_ip=10_000)
        offload = h.server.offload = CountingOffload()
        for minute in range(10):
            for second in range(0, 60, 3):  # a guess every 3 s: more than any limit allows
                h.clock.now += 3
                guesser = h.connect("198.51.100.7")
                register(guesser, f"g{minute}x{second}", f"guess {minute} {second}")
                assert guesser.conn.closed is not None
            newcomer = h.connect(f"203.0.113.{minute + 1}")  # a new user, every minute
            assert welcomed(register(newcomer, f"new{minute}")), minute
        # The attacker's checks: one (it had guessed nothing wrong yet), then the budget of the addresses
        # that did: five at once and five a minute. The ten newcomers' checks besides.
        assert offload.runs - 10 <= 1 + 5 + 5 * 10


def test_forty_addresses_get_one_guess_each_then_share_one_budget_and_newcomers_still_get_in(
    tmp_path: Path,
) -> None:
    h = private(tmp_path, login_attempts_per_ip=10, login_attempts_per_account=5)
    offload = h.server.offload = CountingOffload()
    member = h.connect("192.0.2.10")
    assert welcomed(register(member, "member"))
    answers = []
    for round_ in range(5):
        for i in range(40):
            guesser = h.connect(f"198.51.100.{i + 1}")
            answers.append(register(guesser, f"bot{round_}x{i}", f"guess {round_} {i}"))
            assert guesser.conn.closed is not None
    # One each (none of them had guessed wrong before), then the budget they share: five in all.
    assert offload.runs == 1 + 40 + 5
    assert sum(ERR_PASSWDMISMATCH in lines[0] for lines in answers) == 45
    assert sum(lines[0].startswith("ERROR :") and "try again in" in lines[0] for lines in answers) == 155
    # The budget is empty; addresses that guessed nothing wrong do not draw from it.
    again = h.connect("192.0.2.10")
    assert welcomed(register(again, "member2"))
    newcomer = h.connect("203.0.113.77")
    assert welcomed(register(newcomer, "newcomer"))
    # One of the guessers that turns out to know the password gets in once the budget has a token, and
    # its typos are forgiven: it no longer draws from the budget.
    h.clock.now += 12
    typo = h.connect("198.51.100.1")
    assert welcomed(register(typo, "typo"))
    typo = h.connect("198.51.100.1")
    assert welcomed(register(typo, "typo2"))


def test_a_burst_from_one_office_with_the_password_all_get_in_with_one_check(tmp_path: Path) -> None:
    """Fifteen connections from one address behind NAT at once (a restart: everyone reconnects), more
    than login_attempts_per_ip: they wait for the one check of the password they all send."""
    h = private(tmp_path, login_attempts_per_ip=10)
    offload = h.server.offload = HeldOffload()
    office = [h.connect("192.0.2.20") for _ in range(15)]
    for i, user in enumerate(office):
        user.send(f"PASS :{PASSWORD}")
        user.send(f"NICK office{i}")
        user.send(f"USER office{i} 0 * :x")
    assert offload.runs == 1 and not any(user.client.registered for user in office)
    offload.finish()
    assert all(user.client.registered for user in office)
    assert all(welcomed(user.lines()) for user in office)


def test_a_burst_of_the_same_wrong_password_is_one_check_and_every_sender_failed(tmp_path: Path) -> None:
    h = private(tmp_path, login_attempts_per_account=1)
    offload = h.server.offload = HeldOffload()
    guessers = [h.connect(f"198.51.100.{i + 1}") for i in range(3)]
    for i, user in enumerate(guessers):
        user.send("PASS :password123")
        user.send(f"NICK g{i}")
    offload.finish()
    assert offload.runs == 1
    for user in guessers:
        refused(user, user.lines(), "Password incorrect")
    # All three guessed wrong: their next guesses share the budget (one), like any address that did.
    for i in range(3):
        user = h.connect(f"198.51.100.{i + 1}")
        user.send(f"PASS :guess {i}")
        offload.finish()
        if i == 0:
            refused(user, user.lines(), "Password incorrect")
        else:
            held_back(user, user.lines())


def test_a_guesser_that_hangs_up_before_the_answer_still_guessed_wrong(tmp_path: Path) -> None:
    h = private(tmp_path, login_attempts_per_account=1)
    offload = h.server.offload = HeldOffload()
    for i in range(3):
        guesser = h.connect("198.51.100.7")
        guesser.send(f"PASS :guess {i}")
        h.server.connection_lost(guesser.client, "Connection closed")
        offload.finish()
    assert offload.runs == 2  # the first (no wrong password on file yet), then the budget's one
    guesser = h.connect("198.51.100.7")
    guesser.send("PASS :guess 3")
    held_back(guesser, guesser.lines())


def test_right_passwords_do_not_use_up_the_addresss_limit(tmp_path: Path) -> None:
    # Everyone behind one NAT sends the password on every connection, one after the other here.
    h = private(tmp_path, login_attempts_per_ip=3)
    for i in range(10):
        user = h.connect("192.0.2.20")
        register(user, f"office{i}")
        assert user.client.registered, i


def test_without_a_server_password_pass_is_ignored() -> None:
    h = Harness()
    user = h.connect()
    lines = register(user, "frank", "for another network")
    assert lines[0].split()[1] == RPL_WELCOME


def test_a_rehash_sets_a_password_for_new_connections_only(tmp_path: Path) -> None:
    h = Harness()
    h.attach_store(tmp_path)
    before = h.user("before")
    h.server.apply_config(load_config(None, {"server_password_hash": HASH}))
    before.send("PING :still")
    assert before.commands() == ["PONG"]
    late = h.connect()
    refused(late, register(late, "late", None), "Password required")


def test_a_plain_password_in_the_config_is_refused_without_being_shown() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"server_password_hash": "hunter2"})
    assert "server_password_hash" in str(info.value) and "mkpasswd" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert load_config(None, {"server_password_hash": HASH + "\n"}).server_password_hash == HASH
