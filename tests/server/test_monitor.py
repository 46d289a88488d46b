"""MONITOR (https://ircv3.net/specs/extensions/monitor): the list, its limit and the notifications."""

from __future__ import annotations

from pathlib import Path

from salotto.config import OperBlock
from salotto.passwords import hash_password
from salotto.proto import Message
from salotto.proto.numerics import (
    ERR_MONLISTFULL,
    ERR_NEEDMOREPARAMS,
    RPL_ENDOFMONLIST,
    RPL_ISUPPORT,
    RPL_MONLIST,
    RPL_MONOFFLINE,
    RPL_MONONLINE,
)
from tests.server.harness import Harness, User


def _targets(messages: list[Message], numeric: str) -> list[str]:
    """Every target the ``numeric`` lines list (comma-separated in their last parameter)."""
    return [target for m in messages if m.command == numeric for target in m.params[-1].split(",")]


def _status(user: User) -> tuple[list[str], list[str]]:
    messages = user.messages()
    return _targets(messages, RPL_MONONLINE), _targets(messages, RPL_MONOFFLINE)


def test_isupport_advertises_the_limit_from_the_config() -> None:
    for overrides, token in (({}, "MONITOR=100"), ({"monitor_max_targets": 7}, "MONITOR=7")):
        h = Harness(**overrides)
        user = h.connect()
        user.send("NICK alice")
        user.send("USER alice 0 * :Alice")
        isupport = [p for m in user.messages() if m.command == RPL_ISUPPORT for p in m.params]
        assert token in isupport


def test_add_answers_online_with_the_hostmask_and_offline_as_given() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    h.user("bob")
    alice.send("MONITOR + Bob,carol")
    messages = alice.messages()
    assert [(m.command, m.params) for m in messages] == [
        (RPL_MONONLINE, ["alice", "bob!~bob@127.0.0.1"]),
        (RPL_MONOFFLINE, ["alice", "carol"]),
    ]


def test_list_remove_clear_and_status() -> None:
    h = Harness()
    alice = h.user("alice")
    h.user("bob")
    alice.send("MONITOR + Bob,carol,dave")
    alice.lines()
    alice.send("MONITOR L")
    messages = alice.messages()
    assert _targets(messages, RPL_MONLIST) == ["Bob", "carol", "dave"]
    assert messages[-1].command == RPL_ENDOFMONLIST

    alice.send("MONITOR - CAROL,nobody")
    assert alice.lines() == []  # "-" answers nothing
    alice.send("MONITOR S")
    assert _status(alice) == (["bob!~bob@127.0.0.1"], ["dave"])

    alice.send("MONITOR C")
    assert alice.lines() == []
    alice.send("MONITOR L")
    assert [m.command for m in alice.messages()] == [RPL_ENDOFMONLIST]
    alice.send("MONITOR S")
    assert alice.lines() == []
    assert h.server.monitors == {}


def test_modifiers_are_case_insensitive_and_targets_are_added_once() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("MONITOR + carol,Carol,CAROL")
    assert _status(alice) == ([], ["carol"])
    alice.send("monitor l")
    assert _targets(alice.messages(), RPL_MONLIST) == ["carol"]
    assert h.server.monitors == {"carol": {alice.client}}


def test_bad_input_gets_numerics_not_tracebacks() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("MONITOR")
    assert alice.numerics() == [ERR_NEEDMOREPARAMS]
    for line in ("MONITOR +", "MONITOR -", "MONITOR + ,,", "MONITOR - :"):
        alice.send(line)
        assert alice.numerics() == [ERR_NEEDMOREPARAMS], line
    alice.send("MONITOR X bob")
    fails = [m.params for m in alice.messages() if m.command == "FAIL"]
    assert [f[:3] for f in fails] == [["MONITOR", "INVALID_PARAMS", "X"]]
    # Targets that are no nick (a channel, a mask, too long) could never come online: dropped.
    alice.send("MONITOR + #lobby,b*b,-x," + "n" * 31 + ",ok")
    assert _status(alice) == ([], ["ok"])
    assert set(h.server.monitors) == {"ok"}
    assert h.server.internal_errors == 0


def test_monitor_needs_registration() -> None:
    h = Harness()
    user = h.connect()
    user.send("MONITOR + bob")
    assert user.numerics() == ["451"]
    assert h.server.monitors == {}


def test_told_when_a_watched_nick_registers_and_quits() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("MONITOR + bob")
    alice.lines()
    bob = h.connect("10.0.0.2")
    bob.send("NICK bob")
    assert alice.lines() == []  # holding the nick while registering is not being online
    alice.send("MONITOR S")
    assert _status(alice) == ([], ["bob"])
    bob.send("USER bob 0 * :Bob")
    assert [(m.command, m.params) for m in alice.messages()] == [
        (RPL_MONONLINE, ["alice", "bob!~bob@10.0.0.2"])
    ]
    bob.send("QUIT :bye")
    messages = alice.messages()
    assert [(m.command, m.params) for m in messages if m.command.isdigit()] == [(RPL_MONOFFLINE, ["alice", "bob"])]


def test_told_when_a_watched_nick_is_disconnected_or_loses_its_connection() -> None:
    h = Harness(autojoin=[])  # no shared channel: the numerics are all alice hears
    alice = h.user("alice")
    alice.send("MONITOR + bob,carol")
    alice.lines()
    bob = h.user("bob")
    carol = h.user("carol")
    assert _status(alice) == (["bob!~bob@127.0.0.1", "carol!~carol@127.0.0.1"], [])
    h.server.disconnect(bob.client, "Killed (oper (go away))")  # what KILL and timeouts call
    assert alice.lines() == [":salotto.local 731 alice bob"]
    h.server.connection_lost(carol.client, "Connection reset by peer")
    assert alice.lines() == [":salotto.local 731 alice carol"]


def test_nick_changes_take_a_nick_offline_and_another_online() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("MONITOR + bob,robert")
    alice.lines()
    bob = h.user("bob")
    alice.lines()
    bob.send("NICK robert")
    assert [(m.command, m.params) for m in alice.messages()] == [
        (RPL_MONOFFLINE, ["alice", "bob"]),
        (RPL_MONONLINE, ["alice", "robert!~bob@127.0.0.1"]),
    ]
    bob.send("NICK Robert")  # the same nick under the casemapping: still online, nothing to say
    assert alice.lines() == []
    bob.send("NICK zed")
    assert [(m.command, m.params) for m in alice.messages()] == [(RPL_MONOFFLINE, ["alice", "Robert"])]


def test_nicks_match_under_rfc1459_casemapping() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    alice.send("MONITOR + [Bob]\\")
    alice.lines()
    h.user("{bob}|")
    assert [(m.command, m.params) for m in alice.messages()] == [
        (RPL_MONONLINE, ["alice", "{bob}|!~bob@127.0.0.1"])
    ]
    alice.send("MONITOR - {BOB}|")
    assert h.server.monitors == {}
    assert alice.client.monitoring == {}


def test_the_list_is_limited_and_734_names_what_did_not_fit() -> None:
    h = Harness(monitor_max_targets=3)
    alice = h.user("alice")
    alice.send("MONITOR + a,b,c,d,e")
    messages = alice.messages()
    assert _targets(messages, RPL_MONOFFLINE) == ["a", "b", "c"]
    assert [m.params for m in messages if m.command == ERR_MONLISTFULL] == [
        ["alice", "3", "d,e", "Monitor list is full."]
    ]
    alice.send("MONITOR + A,b")  # already there: no room needed
    messages = alice.messages()
    assert _targets(messages, RPL_MONOFFLINE) == ["A", "b"] and ERR_MONLISTFULL not in [m.command for m in messages]
    alice.send("MONITOR - a")
    alice.send("MONITOR + f,g")
    messages = alice.messages()
    assert _targets(messages, RPL_MONOFFLINE) == ["f"]
    assert [m.params[2] for m in messages if m.command == ERR_MONLISTFULL] == ["g"]
    assert len(alice.client.monitoring or {}) == 3


def test_long_lists_are_split_into_lines_that_fit_512_bytes() -> None:
    h = Harness(monitor_max_targets=200, nick_max_len=30, autojoin=[])
    alice = h.user("alice")
    nicks = [f"n{i:03d}" + "x" * 26 for i in range(100)]  # 30 characters each, 3,100 in all
    for i, nick in enumerate(nicks[:50]):
        h.user(nick, ip=f"10.0.{i}.1")
    for start in range(0, 100, 10):  # each MONITOR line stays under 512 bytes
        alice.send("MONITOR + " + ",".join(nicks[start : start + 10]))
    alice.lines()
    for command, numeric, expected in (
        ("MONITOR L", RPL_MONLIST, nicks),
        ("MONITOR S", RPL_MONONLINE, [f"{n}!~{n[:9]}@10.0.{i}.1" for i, n in enumerate(nicks[:50])]),
        ("MONITOR S", RPL_MONOFFLINE, nicks[50:]),
    ):
        alice.send(command)
        lines = alice.lines()
        assert all(len(line.encode()) + 2 <= 512 for line in lines)
        ours = [line for line in lines if f" {numeric} " in line]
        assert len(ours) > 1, command
        targets = [t for line in ours for t in line.rsplit(" ", 1)[-1].lstrip(":").split(",")]
        assert targets == expected


def test_full_list_error_is_split_too() -> None:
    h = Harness(monitor_max_targets=1)
    alice = h.user("alice")
    nicks = [f"n{i:02d}" + "y" * 27 for i in range(16)]  # one line's worth of targets
    alice.send("MONITOR + " + ",".join(nicks))
    lines = alice.lines()
    assert all(len(line.encode()) + 2 <= 512 for line in lines)
    full = [line.split(" ")[4] for line in lines if " 734 " in line]
    assert len(full) > 1
    assert ",".join(full).split(",") == nicks[1:]


def test_a_client_that_never_monitors_keeps_no_list() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("MONITOR - bob")
    alice.send("MONITOR C")
    alice.send("MONITOR L")
    alice.send("MONITOR S")
    assert alice.client.monitoring is None
    assert h.server.monitors == {}


def test_the_index_is_emptied_as_watchers_leave() -> None:
    h = Harness(monitor_max_targets=100, autojoin=[])
    target = h.user("target")
    # Forty clients watching the same nick: one entry, forty watchers.
    watchers = [h.user(f"w{i}", ip=f"10.0.{i}.1") for i in range(40)]
    for watcher in watchers:
        watcher.send("MONITOR + target,other")
    assert len(h.server.monitors) == 2 and len(h.server.monitors["target"]) == 40
    # A client that fills its list and reconnects, again and again, leaves nothing behind.
    for _ in range(5):
        pest = h.user("pest", ip="10.9.9.9")
        for start in range(0, 100, 20):
            pest.send("MONITOR + " + ",".join(f"p{i}" for i in range(start, start + 20)))
        assert len(pest.client.monitoring or {}) == 100
        pest.send("QUIT")
        assert len(h.server.monitors) == 2
    target.send("QUIT")
    assert all(w.lines()[-1] == f":salotto.local 731 {w.client.nick} target" for w in watchers)
    for watcher in watchers[:20]:
        watcher.send("QUIT")
    for watcher in watchers[20:]:
        h.server.connection_lost(watcher.client, "EOF")
    assert h.server.monitors == {}
    assert not h.server.clients


def test_no_offline_flood_on_shutdown() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("MONITOR + bob")
    bob.send("MONITOR + alice")
    alice.lines()
    bob.lines()
    h.server.shutdown("Server shutting down")
    assert not any(" 731 " in line for line in alice.lines() + bob.lines())
    assert h.server.monitors == {}


# extended-monitor (https://ircv3.net/specs/extensions/extended-monitor): away, account and realname
# changes of a watched nick reach the watcher without a shared channel, for the caps it asked for.

EXTENDED = ["extended-monitor", "away-notify", "setname"]


def _watching(h: Harness, nick: str, target: str, caps: list[str]) -> User:
    watcher = h.user(nick, caps=caps, ip="10.1.1.1")
    watcher.send(f"MONITOR + {target}")
    watcher.lines()
    return watcher


def test_extended_monitor_is_offered() -> None:
    h = Harness()
    user = h.connect()
    user.send("CAP LS 302")
    assert "extended-monitor" in user.lines()[0].split(":", 2)[2].split()


def test_extended_monitor_delivers_away_and_setname_without_a_shared_channel() -> None:
    h = Harness(autojoin=[])
    bob = h.user("bob", caps=["setname"])
    extended = _watching(h, "ext", "bob", EXTENDED)
    plain = _watching(h, "plain", "bob", ["away-notify", "setname"])  # MONITOR without extended-monitor
    half = _watching(h, "half", "bob", ["extended-monitor"])  # neither away-notify nor setname
    bob.send("AWAY :lunch")
    bob.send("AWAY")
    bob.send("SETNAME :Robert Tables")
    assert [(m.source, m.command, m.params) for m in extended.messages()] == [
        ("bob!~bob@127.0.0.1", "AWAY", ["lunch"]),
        ("bob!~bob@127.0.0.1", "AWAY", []),
        ("bob!~bob@127.0.0.1", "SETNAME", ["Robert Tables"]),
    ]
    assert plain.lines() == []
    assert half.lines() == []


def test_extended_monitor_follows_the_nick_and_sends_once_to_a_peer_that_also_watches() -> None:
    h = Harness(autojoin=["#lobby"])
    bob = h.user("bob")
    peer = _watching(h, "peer", "bob", EXTENDED)  # in #lobby with bob, and watching him
    bob.send("AWAY :gone")
    assert [m.command for m in peer.messages()] == ["AWAY"]
    bob.send("NICK robert")  # no longer the watched nick: only the channel tells
    peer.lines()
    bob.send("PART #lobby")
    peer.lines()
    bob.send("AWAY")
    assert peer.lines() == []
    # Watching oneself brings no echo of one's own AWAY.
    peer.send("MONITOR + peer")
    peer.lines()
    peer.send("AWAY :me")
    assert [m.command for m in peer.messages()] == ["306"]


def test_extended_monitor_delivers_account_changes(tmp_path: Path) -> None:
    h = Harness(autojoin=[])
    h.attach_store(tmp_path)
    bob = h.user("bob")
    extended = _watching(h, "ext", "bob", ["extended-monitor", "account-notify"])
    plain = _watching(h, "plain", "bob", ["account-notify"])
    bob.send("REGISTER * * :correct-horse-battery")
    assert any(m.command == "REGISTER" and m.params[0] == "SUCCESS" for m in bob.messages())
    bob.send("PRIVMSG NickServ :LOGOUT")
    assert [(m.source, m.command, m.params) for m in extended.messages()] == [
        ("bob!~bob@127.0.0.1", "ACCOUNT", ["bob"]),
        ("bob!~bob@127.0.0.1", "ACCOUNT", ["*"]),
    ]
    assert plain.lines() == []


def test_extended_monitor_delivers_chghost() -> None:
    h = Harness(autojoin=[])
    h.server.config.opers["admin"] = OperBlock("admin", hash_password("hunter2", n=2**10), "*!*@*")
    admin = h.user("admin")
    admin.send("OPER admin hunter2")
    bob = h.user("bob")
    extended = _watching(h, "ext", "bob", ["extended-monitor", "chghost"])
    plain = _watching(h, "plain", "bob", ["chghost"])
    admin.send("CHGHOST bob robert example.org")
    assert [(m.source, m.command, m.params) for m in extended.messages()] == [
        ("bob!~bob@127.0.0.1", "CHGHOST", ["robert", "example.org"])]
    assert plain.lines() == []
    assert bob.client.prefix == "bob!robert@example.org"


def test_a_host_that_is_not_utf8_is_refused_by_chghost_and_monitor_never_breaks() -> None:
    h = Harness(autojoin=[])
    h.server.config.opers["admin"] = OperBlock("admin", hash_password("hunter2", n=2**10), "*!*@*")
    admin = h.user("admin")
    admin.send("OPER admin hunter2")
    bob = h.user("bob")
    watcher = _watching(h, "watcher", "robert", ["extended-monitor", "chghost"])
    admin.lines()
    h.server.handle_line(admin.client, b"CHGHOST bob user ex\xe9mple.org")
    assert "FAIL CHGHOST INVALID_PARAMS" in admin.lines()[0]
    bob.send("NICK robert")  # comes online for the watcher: 730, no internal error
    assert [m.command for m in watcher.messages()] == ["730"]
    assert h.server.internal_errors == 0
