"""Channel and user modes."""

from __future__ import annotations

from salotto.proto import parse
from salotto.proto.numerics import (
    ERR_BANLISTFULL,
    ERR_CHANOPRIVSNEEDED,
    ERR_INVALIDKEY,
    ERR_INVALIDMODEPARAM,
    ERR_UMODEUNKNOWNFLAG,
    ERR_UNKNOWNMODE,
    ERR_USERSDONTMATCH,
    RPL_BANLIST,
    RPL_CHANNELMODEIS,
    RPL_CREATIONTIME,
    RPL_ENDOFBANLIST,
    RPL_UMODEIS,
)
from tests.server.harness import Harness


def test_channel_mode_query_and_changes_broadcast() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #c")
    bob.send("JOIN #c")
    alice.lines()
    bob.lines()
    alice.send("MODE #c")
    replies = alice.messages()
    assert [m.command for m in replies] == [RPL_CHANNELMODEIS, RPL_CREATIONTIME]
    assert replies[0].params[2] == "+nt"
    alice.send("MODE #c +imk-t secret")
    assert bob.lines() == [":alice!~alice@127.0.0.1 MODE #c +imk-t secret"]
    alice.lines()
    bob.send("MODE #c")
    assert bob.messages()[0].params[2:] == ["+imnk", "secret"]
    alice.send("MODE #c +o bob")
    assert bob.lines() == [":alice!~alice@127.0.0.1 MODE #c +o bob"]
    bob.send("MODE #c -o alice")
    assert not h.server.find_channel("#c").is_op(alice.client)


def test_non_operator_cannot_change_modes_but_can_list_bans() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #c")
    alice.send("MODE #c +b *!*@10.*")
    bob.send("JOIN #c")
    bob.lines()
    bob.send("MODE #c +m")
    assert bob.numerics() == [ERR_CHANOPRIVSNEEDED]
    bob.send("MODE #c +b")
    replies = bob.messages()
    assert [m.command for m in replies] == [RPL_BANLIST, RPL_ENDOFBANLIST]
    assert replies[0].params[2:4] == ["*!*@10.*", "alice"]


def test_invalid_mode_params() -> None:
    h = Harness(autojoin=[], max_list_entries=1)
    alice = h.user("alice")
    alice.send("JOIN #c")
    alice.lines()
    alice.send("MODE #c +l many")
    alice.send("MODE #c +k :has space")
    alice.send("MODE #c +Z")
    assert alice.numerics() == [ERR_INVALIDMODEPARAM, ERR_INVALIDKEY, ERR_UNKNOWNMODE]
    alice.send("MODE #c +b one")
    alice.lines()
    alice.send("MODE #c +b two")
    assert alice.numerics() == [ERR_BANLISTFULL]


def test_user_modes() -> None:
    h = Harness()
    alice = h.user("alice")
    h.user("bob")
    alice.lines()
    alice.send("MODE alice +i")
    assert alice.lines() == [":alice MODE alice +i"]
    alice.send("MODE alice")
    assert [(m.command, m.params[-1]) for m in alice.messages()] == [(RPL_UMODEIS, "+i")]
    alice.send("MODE alice +o")
    assert alice.lines() == [], "+o only through OPER"
    alice.send("MODE bob +i")
    alice.send("MODE alice +Q")
    assert alice.numerics() == [ERR_USERSDONTMATCH, ERR_UMODEUNKNOWNFLAG]


def test_mode_line_parses_back() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("JOIN #c")
    alice.lines()
    alice.send("MODE #c +l 10")
    msg = parse(alice.lines()[0])
    assert msg.params == ["#c", "+l", "10"]


def test_one_mode_line_answers_each_list_once() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("JOIN #c")
    for i in range(5):
        alice.send(f"MODE #c +b x{i}!*@*")
    alice.lines()
    alice.send("MODE #c " + "b" * 300 + "ZZZ")
    numerics = alice.numerics()
    assert numerics.count(RPL_BANLIST) == 5 and numerics.count(RPL_ENDOFBANLIST) == 1
    assert numerics.count(ERR_UNKNOWNMODE) == 1


def test_odd_digits_are_an_invalid_limit_not_a_crash() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #c")
    bob.send("JOIN #c")
    alice.lines()
    bob.lines()
    alice.send("MODE #c +ml \u00b2")
    assert ERR_INVALIDMODEPARAM in alice.numerics()
    assert bob.lines() == [":alice!~alice@127.0.0.1 MODE #c +m"], "what was applied is announced"
    assert h.server.internal_errors == 0
