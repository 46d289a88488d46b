"""PRIVMSG, NOTICE, TAGMSG, AWAY, SETNAME and the IRCv3 tags that ride on them."""

from __future__ import annotations

import re

from salotto.proto import parse
from salotto.proto.numerics import (
    ERR_CANNOTSENDTOCHAN,
    ERR_NORECIPIENT,
    ERR_NOSUCHCHANNEL,
    ERR_NOSUCHNICK,
    ERR_NOTEXTTOSEND,
    ERR_TOOMANYTARGETS,
    ERR_UNKNOWNCOMMAND,
    RPL_AWAY,
    RPL_NOWAWAY,
    RPL_UNAWAY,
)
from tests.server.harness import Harness


def test_private_message_and_errors() -> None:
    h = Harness()
    alice = h.user("alice")
    bob = h.user("bob")
    alice.lines()
    alice.send("PRIVMSG Bob :psst")
    assert bob.lines() == [":alice!~alice@127.0.0.1 PRIVMSG bob :psst"]
    alice.send("PRIVMSG nobody :hello?")
    alice.send("PRIVMSG #nowhere :hello?")
    alice.send("PRIVMSG")
    alice.send("PRIVMSG bob")
    alice.send("PRIVMSG bob :")
    assert alice.numerics() == [ERR_NOSUCHNICK, ERR_NOSUCHCHANNEL, ERR_NORECIPIENT, ERR_NOTEXTTOSEND,
                                ERR_NOTEXTTOSEND]


def test_notice_never_gets_error_replies() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("NOTICE nobody :hello?")
    alice.send("NOTICE #nowhere :hello?")
    alice.send("NOTICE")
    assert alice.lines() == []


def test_several_targets_and_target_limit() -> None:
    h = Harness(max_targets=2)
    alice = h.user("alice")
    bob = h.user("bob")
    carol = h.user("carol")
    bob.lines()
    carol.lines()
    alice.send("PRIVMSG bob,carol :hi both")
    assert bob.lines() == [":alice!~alice@127.0.0.1 PRIVMSG bob :hi both"]
    assert carol.lines() == [":alice!~alice@127.0.0.1 PRIVMSG carol :hi both"]
    alice.send("PRIVMSG bob,carol,#lobby :too many")
    assert alice.numerics() == [ERR_TOOMANYTARGETS]
    assert bob.lines() == []


def test_no_external_messages_moderated_and_banned() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("JOIN #c")
    bob.send("PRIVMSG #c :from outside")
    assert bob.numerics() == [ERR_CANNOTSENDTOCHAN]
    alice.send("MODE #c -n")
    alice.lines()
    bob.send("PRIVMSG #c :from outside")
    assert alice.lines() == [":bob!~bob@127.0.0.1 PRIVMSG #c :from outside"]
    bob.send("JOIN #c")
    alice.send("MODE #c +m")
    bob.send("PRIVMSG #c :can I talk?")
    assert ERR_CANNOTSENDTOCHAN in bob.numerics()
    alice.send("MODE #c +v bob")
    alice.lines()
    bob.send("PRIVMSG #c :now I can")
    assert alice.lines() == [":bob!~bob@127.0.0.1 PRIVMSG #c :now I can"]
    alice.send("MODE #c -m-v+b bob bob!*@*")
    bob.send("PRIVMSG #c :banned")
    assert ERR_CANNOTSENDTOCHAN in bob.numerics()


def test_echo_message_server_time_and_msgid() -> None:
    h = Harness()
    alice = h.user("alice", caps=["echo-message", "server-time", "message-tags"])
    bob = h.user("bob", caps=["server-time"])
    carol = h.user("carol")
    alice.lines()
    bob.lines()
    carol.lines()
    alice.send("@+draft/reply=abc PRIVMSG #lobby :hello")
    echo = parse(alice.lines()[0])
    assert echo.command == "PRIVMSG" and echo.params == ["#lobby", "hello"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", echo.tags["time"])
    assert echo.tags["msgid"] and echo.tags["+draft/reply"] == "abc"
    to_bob = parse(bob.lines()[0])
    assert to_bob.tags == {"time": echo.tags["time"]}, "no message-tags: no msgid, no client tags"
    assert carol.lines() == [":alice!~alice@127.0.0.1 PRIVMSG #lobby :hello"]


def test_message_to_self_arrives_once() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("PRIVMSG alice :note to self")
    assert alice.lines() == [":alice!~alice@127.0.0.1 PRIVMSG alice :note to self"]
    echoer = h.user("echoer", caps=["echo-message"])
    echoer.send("PRIVMSG echoer :note")
    assert echoer.lines() == [":echoer!~echoer@127.0.0.1 PRIVMSG echoer :note"]


def test_tagmsg_typing_only_reaches_message_tags_clients() -> None:
    h = Harness()
    alice = h.user("alice", caps=["message-tags"])
    bob = h.user("bob", caps=["message-tags"])
    carol = h.user("carol")
    alice.lines()
    bob.lines()
    carol.lines()
    alice.send("@+typing=active;not-client=1 TAGMSG #lobby")
    got = parse(bob.lines()[0])
    assert got.command == "TAGMSG" and got.tags["+typing"] == "active" and "not-client" not in got.tags
    assert carol.lines() == []
    carol.send("@+typing=active TAGMSG #lobby")
    assert carol.numerics() == [ERR_UNKNOWNCOMMAND], "TAGMSG needs the message-tags capability"


def test_away_reply_and_away_notify() -> None:
    h = Harness()
    alice = h.user("alice")
    bob = h.user("bob", caps=["away-notify"])
    alice.lines()
    alice.send("AWAY :lunch")
    assert alice.numerics() == [RPL_NOWAWAY]
    assert bob.lines() == [":alice!~alice@127.0.0.1 AWAY :lunch"]
    bob.send("PRIVMSG alice :there?")
    away = bob.messages()
    assert away[0].command == RPL_AWAY and away[0].params[-1] == "lunch"
    alice.lines()
    alice.send("AWAY")
    assert alice.numerics() == [RPL_UNAWAY]
    assert bob.lines() == [":alice!~alice@127.0.0.1 AWAY"]


def test_away_length_limit() -> None:
    h = Harness(away_max_len=4)
    alice = h.user("alice")
    alice.send("AWAY :gone fishing")
    assert alice.client.away == "gone"


def test_setname() -> None:
    h = Harness(realname_max_len=20)
    alice = h.user("alice", caps=["setname"])
    bob = h.user("bob", caps=["setname"])
    alice.lines()
    alice.send("SETNAME :Alice P. Liddell")
    assert alice.lines() == [":alice!~alice@127.0.0.1 SETNAME :Alice P. Liddell"]
    assert bob.lines() == [":alice!~alice@127.0.0.1 SETNAME :Alice P. Liddell"]
    alice.send("SETNAME :" + "x" * 21)
    assert alice.lines() == [":salotto.local FAIL SETNAME INVALID_REALNAME :Realname is not valid"]


def test_labeled_response_ack_single_and_batch() -> None:
    h = Harness()
    alice = h.user("alice", caps=["labeled-response", "batch", "echo-message"])
    alice.send("@label=a1 PONG :x")
    assert alice.lines() == ["@label=a1 :salotto.local ACK"]
    alice.send("@label=a2 PING :tok")
    assert alice.lines() == ["@label=a2 :salotto.local PONG salotto.local tok"]
    alice.send("@label=a3 PRIVMSG #lobby :hi")
    assert alice.lines() == ["@label=a3 :alice!~alice@127.0.0.1 PRIVMSG #lobby :hi"]
    alice.send("@label=a4 WHOIS alice")
    lines = alice.lines()
    start, end = parse(lines[0]), parse(lines[-1])
    assert start.command == "BATCH" and start.tags == {"label": "a4"}
    ref = start.params[0][1:]
    assert start.params == ["+" + ref, "labeled-response"] and end.params == ["-" + ref]
    assert all(parse(line).tags.get("batch") == ref for line in lines[1:-1])
    assert len(lines) > 3
