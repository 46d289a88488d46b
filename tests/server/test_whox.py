"""WHOX (https://ircv3.net/specs/extensions/whox): WHO <mask> %<fields>[,<token>] answered with 354."""

from __future__ import annotations

from pathlib import Path

from salotto.config import OperBlock
from salotto.passwords import hash_password
from salotto.proto.numerics import RPL_ENDOFWHO, RPL_ISUPPORT, RPL_WHOREPLY, RPL_WHOSPCRPL
from tests.server.harness import Harness, User

PASSWORD = "correct-horse-battery"


def _who(user: User, line: str) -> list[list[str]]:
    """Send a WHO; return the 354 rows (without the viewer's nick), checking that no 352 came and
    that 315 closed the list."""
    user.send(line)
    messages = user.messages()
    assert messages and messages[-1].command == RPL_ENDOFWHO
    assert RPL_WHOREPLY not in [m.command for m in messages]
    assert {m.command for m in messages[:-1]} <= {RPL_WHOSPCRPL}
    return [m.params[1:] for m in messages[:-1]]


def test_isupport_advertises_whox() -> None:
    h = Harness()
    user = h.connect()
    user.send("NICK alice")
    user.send("USER alice 0 * :Alice")
    isupport = [p for m in user.messages() if m.command == RPL_ISUPPORT for p in m.params]
    assert "WHOX" in isupport


def test_every_field_in_the_spec_order_whatever_the_request_order(tmp_path: Path) -> None:
    h = Harness()
    h.attach_store(tmp_path)
    alice = h.user("alice")
    bob = h.user("bob", ip="10.0.0.2")
    bob.send(f"REGISTER * * :{PASSWORD}")
    bob.send("PRIVMSG alice :hi")  # a message resets the idle time; AWAY does not
    bob.send("AWAY :lunch")
    h.clock.now += 42
    alice.lines()
    rows = _who(alice, "WHO bob %raolhdfnsiuct,123")
    assert rows == [["123", "*", "~bob", "10.0.0.2", "10.0.0.2", "salotto.local", "bob", "G", "0", "42", "bob",
                     "n/a", "bob Realname"]]
    # The realname is the trailing parameter, with its colon.
    alice.send("WHO bob %tr,1")
    assert alice.lines()[0] == ":salotto.local 354 alice 1 :bob Realname"


def test_account_is_zero_when_logged_out(tmp_path: Path) -> None:
    h = Harness()
    h.attach_store(tmp_path)
    alice = h.user("alice")
    bob = h.user("bob")
    bob.send(f"REGISTER * * :{PASSWORD}")
    alice.lines()
    assert _who(alice, "WHO #lobby %na") == [["alice", "0"], ["bob", "bob"]]
    bob.send("PRIVMSG NickServ :LOGOUT")
    assert _who(alice, "WHO #lobby %na") == [["alice", "0"], ["bob", "0"]]


def test_channel_rows_carry_the_channel_and_prefixes() -> None:
    h = Harness()
    alice = h.user("alice", caps=["multi-prefix"])
    bob = h.user("bob")
    h.user("carol")
    alice.send("JOIN #room")
    bob.send("JOIN #room")
    alice.send("MODE #room +v bob")
    alice.send("MODE #room +o bob")
    alice.lines()
    assert _who(alice, "WHO #room %cnf") == [["#room", "alice", "H@"], ["#room", "bob", "H@+"]]
    # A mask query names no channel: "*", as plain WHO does.
    assert _who(alice, "WHO c* %cn") == [["*", "carol"]]


def test_token_is_one_to_three_digits_or_zero() -> None:
    h = Harness()
    alice = h.user("alice")
    assert _who(alice, "WHO alice %tn,7") == [["7", "alice"]]
    assert _who(alice, "WHO alice %tn,999") == [["999", "alice"]]
    for bad in ("%tn", "%tn,", "%tn,1234", "%tn,abc", "%tn,-1", "%tn,\u0661"):
        assert _who(alice, f"WHO alice {bad}") == [["0", "alice"]], bad
    # Without "t" the token is not sent, even when given.
    assert _who(alice, "WHO alice %n,5") == [["alice"]]


def test_unknown_fields_are_ignored_and_no_field_is_an_empty_row() -> None:
    h = Harness()
    alice = h.user("alice")
    assert _who(alice, "WHO alice %zxnqn") == [["alice"]]
    assert _who(alice, "WHO alice %") == [[]]
    # Flags before the "%" (ircu's) are accepted and not acted on.
    assert _who(alice, "WHO alice o%n") == [["alice"]]
    alice.send("WHO nobody %n")
    assert [m.command for m in alice.messages()] == [RPL_ENDOFWHO]


def test_ip_is_hidden_behind_a_changed_host_but_not_from_oneself_or_operators() -> None:
    h = Harness(autojoin=[])
    h.server.config.opers["admin"] = OperBlock("admin", hash_password("hunter2", n=2**10), "*!*@*")
    oper = h.user("oper")
    alice = h.user("alice", ip="10.0.0.1")
    bob = h.user("bob", ip="10.0.0.2")
    oper.send("OPER admin hunter2")
    oper.send("CHGHOST bob staff example.org")
    oper.lines()
    assert _who(alice, "WHO bob %uih") == [["staff", "255.255.255.255", "example.org"]]
    assert _who(bob, "WHO bob %uih") == [["staff", "10.0.0.2", "example.org"]]
    assert _who(oper, "WHO bob %ifn") == [["10.0.0.2", "bob", "H"]]
    # While the host is the address, the address is no secret.
    assert _who(bob, "WHO alice %ih") == [["10.0.0.1", "10.0.0.1"]]
    assert _who(alice, "WHO oper %f") == [["H*"]]


def test_plain_who_is_unchanged_by_a_second_parameter_without_percent() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("WHO alice o")
    assert [m.command for m in alice.messages()] == [RPL_WHOREPLY, RPL_ENDOFWHO]
    alice.send("WHO alice")
    lines = alice.lines()
    assert lines == [
        ":salotto.local 352 alice * ~alice 127.0.0.1 salotto.local alice H :0 alice Realname",
        ":salotto.local 315 alice alice :End of WHO list",
    ]


def test_whox_masks_are_bounded_like_plain_who() -> None:
    h = Harness(who_max_results=3, autojoin=[])
    alice = h.user("alice")
    for i in range(6):
        h.user(f"user{i}", ip=f"10.0.{i}.1")
    assert len(_who(alice, "WHO user* %n")) == 3


def test_whox_shows_an_ipv6_address_as_the_host_shows_it() -> None:
    """::1 is shown as 0::1 (a word IRC can carry), in the host and in %i alike; the address is no secret
    while it is the host."""
    h = Harness()
    h.user("local", ip="::1")
    alice = h.user("alice")
    alice.send("WHO local %tih,7")
    reply = next(m for m in alice.messages() if m.command == "354")
    assert reply.params[1:] == ["7", "0::1", "0::1"]
