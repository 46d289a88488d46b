"""Server operators: OPER, KILL, REHASH, CHGHOST."""

from __future__ import annotations

from salotto.config import OperBlock
from salotto.passwords import hash_password
from salotto.proto.numerics import (
    ERR_CHANOPRIVSNEEDED,
    ERR_NOOPERHOST,
    ERR_NOPRIVILEGES,
    ERR_PASSWDMISMATCH,
    RPL_REHASHING,
)
from tests.server.harness import Harness

_HASH = hash_password("hunter2", n=2**10)


def _with_oper(hostmask: str = "*!*@127.0.0.1") -> Harness:
    h = Harness()
    h.server.config.opers["admin"] = OperBlock("admin", _HASH, hostmask)
    return h


def test_oper_with_right_and_wrong_password() -> None:
    h = _with_oper()
    alice = h.user("alice")
    alice.send("OPER admin wrong")
    alice.send("OPER nobody hunter2")
    assert alice.numerics() == [ERR_PASSWDMISMATCH, ERR_PASSWDMISMATCH]
    assert not alice.client.is_oper
    alice.send("OPER admin hunter2")
    assert alice.lines() == [":salotto.local 381 alice :You are now an IRC operator", ":alice MODE alice +o"]
    assert alice.client.is_oper


def test_oper_hostmask_enforced() -> None:
    h = _with_oper("*!*@192.0.2.*")
    alice = h.user("alice")
    alice.send("OPER admin hunter2")
    assert alice.numerics() == [ERR_NOOPERHOST]


def test_kill_needs_oper_and_disconnects() -> None:
    h = _with_oper()
    alice = h.user("alice")
    bob = h.user("bob")
    carol = h.user("carol")
    bob.send("KILL alice :nope")
    assert bob.numerics() == [ERR_NOPRIVILEGES]
    alice.send("OPER admin hunter2")
    carol.lines()
    alice.send("KILL bob :spamming")
    assert bob.conn.closed == "Killed (alice (spamming))"
    assert carol.lines() == [":bob!~bob@127.0.0.1 QUIT :Killed (alice (spamming))"]


def test_rehash_calls_the_runtime_hook_and_reports_errors() -> None:
    h = _with_oper()
    calls: list[int] = []
    results = [None, "config key 'max_targets': bad value -1"]

    def hook() -> str | None:
        calls.append(1)
        return results[len(calls) - 1]

    h.server.rehash_hook = hook
    alice = h.user("alice")
    alice.send("REHASH")
    assert alice.numerics() == [ERR_NOPRIVILEGES] and calls == []
    alice.send("OPER admin hunter2")
    alice.lines()
    alice.send("REHASH")
    assert alice.numerics() == [RPL_REHASHING] and calls == [1]
    alice.send("REHASH")
    lines = alice.lines()
    assert "max_targets" in lines[-1] and "NOTICE" in lines[-1]


def test_chghost_seen_by_cap_holders() -> None:
    h = _with_oper()
    alice = h.user("alice")
    bob = h.user("bob", caps=["chghost"])
    carol = h.user("carol")
    alice.send("OPER admin hunter2")
    bob.lines()
    carol.lines()
    alice.send("CHGHOST carol staff example.org")
    assert bob.lines() == [":carol!~carol@127.0.0.1 CHGHOST staff example.org"]
    assert carol.lines() == []
    assert h.server.find_user("carol").prefix == "carol!staff@example.org"


def test_rehash_applies_new_config_limits() -> None:
    h = Harness()
    from salotto.config import load_config

    h.server.apply_config(load_config(None, {"max_targets": 9, "autojoin": ["#lobby", "#news"]}))
    alice = h.user("alice")
    assert set(alice.client.channels) == {"#lobby", "#news"}
    alice.send("VERSION")
    assert any("MAXTARGETS=9" in line for line in alice.lines())


def test_server_operator_moderates_the_lobby() -> None:
    h = _with_oper()
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("MODE #lobby +m")
    assert alice.numerics() == [ERR_CHANOPRIVSNEEDED], "nobody is operator of #lobby by arriving first"
    alice.send("OPER admin hunter2")
    alice.send("MODE #lobby +o bob")
    assert ":alice!~alice@127.0.0.1 MODE #lobby +o bob" in bob.lines()
    alice.send("KICK #lobby bob :test")
    assert bob.client.channels == {}


def test_oper_attempts_per_connection_are_limited() -> None:
    h = _with_oper()
    alice = h.user("alice")
    for _ in range(3):
        alice.send("OPER admin wrong")
    alice.send("OPER admin hunter2")
    assert alice.numerics() == [ERR_PASSWDMISMATCH] * 4, "even the right password, after 3 failures"
    assert not alice.client.is_oper


def test_oper_attempts_per_connection_is_a_config_key() -> None:
    h = _with_oper()
    h.server.config.oper_attempts_per_connection = 1
    alice = h.user("alice")
    alice.send("OPER admin wrong")
    alice.send("OPER admin hunter2")
    assert alice.numerics() == [ERR_PASSWDMISMATCH] * 2 and not alice.client.is_oper
