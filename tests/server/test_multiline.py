"""draft/multiline: batches of lines from clients, relayed as one message (https://ircv3.net/specs/extensions/multiline)."""

from __future__ import annotations

import pytest

from salotto.proto import parse
from salotto.proto.message import Message
from salotto.proto.numerics import (
    ERR_CANNOTSENDTOCHAN,
    ERR_NOSUCHNICK,
    ERR_UNKNOWNCOMMAND,
    RPL_AWAY,
)
from salotto.transport.web import render_metrics
from tests.server.harness import Harness, User

CAPS = ["draft/multiline", "batch", "message-tags", "server-time"]
ALICE = "alice!~alice@127.0.0.1"


def _send_batch(user: User, target: str, lines: list[str], *, ref: str = "r1", tags: str = "",
                command: str = "PRIVMSG") -> None:
    """``lines`` in a batch: a line starting with "+" continues the one before (draft/multiline-concat)."""
    user.send(f"{tags}BATCH +{ref} draft/multiline {target}")
    for line in lines:
        concat = line.startswith("+")
        user.send(f"@batch={ref}{';draft/multiline-concat' if concat else ''} {command} {target} :{line.lstrip('+')}")
    user.send(f"BATCH -{ref}")


def _fails(user: User) -> list[list[str]]:
    return [m.params for m in user.messages() if m.command == "FAIL"]


def _multiline_batch(messages: list[Message]) -> tuple[Message, list[Message]]:
    """The draft/multiline batch among ``messages``: its opening line and its lines."""
    start = next(m for m in messages if m.command == "BATCH" and m.params[1:2] == ["draft/multiline"])
    ref = start.params[0][1:]
    inner = [m for m in messages if m.tags.get("batch") == ref]
    assert any(m.command == "BATCH" and m.params == ["-" + ref] for m in messages), "the batch is closed"
    return start, inner


def test_cap_ls_advertises_the_limits_from_the_config() -> None:
    h = Harness(multiline_max_bytes=2000, multiline_max_lines=7)
    user = h.connect()
    user.send("CAP LS 302")
    offered = " ".join(m.params[-1] for m in user.messages() if m.command == "CAP")
    assert "draft/multiline=max-bytes=2000,max-lines=7" in offered.split()


def test_a_batch_reaches_cap_clients_as_one_batch_and_others_as_lines() -> None:
    h = Harness()
    alice = h.user("alice", caps=[*CAPS, "echo-message", "labeled-response"])
    bob = h.user("bob", caps=CAPS)
    carol = h.user("carol", caps=["message-tags", "server-time"])
    dave = h.user("dave")
    for user in (alice, bob, carol, dave):
        user.lines()
    _send_batch(alice, "#lobby", ["hello", "", "how is ", "+everyone?"],
                tags="@label=q1;+draft/reply=m0 ")

    start, inner = _multiline_batch(bob.messages())
    assert start.source == ALICE and start.params[2] == "#lobby"
    assert start.tags["+draft/reply"] == "m0" and "msgid" in start.tags and "time" in start.tags
    assert [(m.command, m.params[1], "draft/multiline-concat" in m.tags) for m in inner] == [
        ("PRIVMSG", "hello", False), ("PRIVMSG", "", False), ("PRIVMSG", "how is ", False),
        ("PRIVMSG", "everyone?", True)]
    assert not any("msgid" in m.tags or "time" in m.tags for m in inner), "the message's tags are on the batch"

    echo = alice.messages()
    echo_start, echo_inner = _multiline_batch(echo)
    assert echo[0] is echo_start and echo_start.tags["label"] == "q1", "the label is on the opening BATCH"
    assert echo_start.tags["msgid"] == start.tags["msgid"] and len(echo_inner) == 4

    fallback = carol.messages()
    assert [(m.command, m.params) for m in fallback] == [
        ("PRIVMSG", ["#lobby", "hello"]), ("PRIVMSG", ["#lobby", "how is "]), ("PRIVMSG", ["#lobby", "everyone?"])]
    assert [m.tags.get("msgid") for m in fallback] == [start.tags["msgid"], None, None], "the msgid on the first"
    assert [m.tags.get("+draft/reply") for m in fallback] == ["m0", None, None], "client tags once, as the msgid"
    assert all(m.tags["time"] == start.tags["time"] for m in fallback)
    assert dave.lines() == [f":{ALICE} PRIVMSG #lobby :hello", f":{ALICE} PRIVMSG #lobby :how is ",
                            f":{ALICE} PRIVMSG #lobby :everyone?"], "no tags, no blank line"
    assert h.server.stats.multiline_batches == 1
    assert "salotto_multiline_batches_total 1" in render_metrics(h.server)


def test_a_private_batch_with_an_away_reply_nests_in_the_labelled_answer() -> None:
    h = Harness()
    alice = h.user("alice", caps=[*CAPS, "echo-message", "labeled-response"])
    bob = h.user("bob", caps=CAPS)
    bob.send("AWAY :lunch")
    bob.lines()
    alice.lines()
    _send_batch(alice, "Bob", ["one", "two"], tags="@label=p1 ")
    start, inner = _multiline_batch(bob.messages())
    assert start.params[2] == "bob" and [m.params for m in inner] == [["bob", "one"], ["bob", "two"]]
    answer = alice.messages()
    outer = answer[0]
    assert (outer.command, outer.params[1], outer.tags["label"]) == ("BATCH", "labeled-response", "p1")
    outer_ref = outer.params[0][1:]
    away = next(m for m in answer if m.command == RPL_AWAY)
    echo_start, echo_inner = _multiline_batch(answer)
    assert away.tags["batch"] == outer_ref and echo_start.tags["batch"] == outer_ref
    assert [m.params[1] for m in echo_inner] == ["one", "two"], "the echo's lines stay in their own batch"


def test_permissions_are_those_of_a_privmsg() -> None:
    h = Harness(autojoin=[])
    op = h.user("op")
    alice = h.user("alice", caps=CAPS)
    op.send("JOIN #m")
    _send_batch(alice, "#m", ["from outside"])
    assert ERR_CANNOTSENDTOCHAN in alice.numerics(), "+n"
    alice.send("JOIN #m")
    op.send("MODE #m +m")
    op.lines()
    alice.lines()
    _send_batch(alice, "#m", ["moderated"])
    assert ERR_CANNOTSENDTOCHAN in alice.numerics()
    _send_batch(alice, "#m", ["a notice"], command="NOTICE")
    assert alice.lines() == [], "no error replies to a NOTICE"
    op.send("MODE #m +v alice")
    op.lines()
    _send_batch(alice, "#m", ["now", "I can"])
    assert op.lines() == [f":{ALICE} PRIVMSG #m :now", f":{ALICE} PRIVMSG #m :I can"]
    op.send("MODE #m -mv+b alice alice!*@*")
    op.lines()
    alice.lines()
    _send_batch(alice, "#m", ["banned"])
    assert ERR_CANNOTSENDTOCHAN in alice.numerics() and op.lines() == []
    _send_batch(alice, "nobody", ["hello?"])
    assert ERR_NOSUCHNICK in alice.numerics()
    _send_batch(alice, "NickServ", ["help"])
    assert _fails(alice) == [["BATCH", "MULTILINE_INVALID", "Services take one line at a time"]]
    assert h.server.stats.multiline_batches == 1


def test_notice_batches_arrive_as_notices() -> None:
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob")
    bob.lines()
    _send_batch(alice, "#lobby", ["first", "second"], command="NOTICE")
    assert bob.lines() == [f":{ALICE} NOTICE #lobby :first", f":{ALICE} NOTICE #lobby :second"]


@pytest.mark.parametrize(("lines", "code"), [
    (["@batch=r1 PRIVMSG #other :hi"], ["MULTILINE_INVALID_TARGET", "#lobby", "#other"]),
    (["@batch=zz PRIVMSG #lobby :hi"], ["MULTILINE_INVALID"]),
    (["@batch=r1 PRIVMSG #lobby :hi", "@batch=r1;draft/multiline-concat PRIVMSG #lobby :"], ["MULTILINE_INVALID"]),
    (["@batch=r1 PRIVMSG #lobby :hi", "@batch=r1 NOTICE #lobby :there"], ["MULTILINE_INVALID"]),
    (["@batch=r1 TAGMSG #lobby"], ["MULTILINE_INVALID"]),
    (["@batch=r1 PRIVMSG #lobby"], ["MULTILINE_INVALID"]),
    (["BATCH +r2 draft/multiline #lobby"], ["MULTILINE_INVALID"]),
])
def test_a_bad_line_fails_the_batch_and_the_rest_of_it_is_ignored(lines: list[str], code: list[str]) -> None:
    h = Harness()
    alice = h.user("alice", caps=[*CAPS, "labeled-response"])
    bob = h.user("bob", caps=CAPS)
    bob.lines()
    alice.send("@label=L BATCH +r1 draft/multiline #lobby")
    alice.send("@batch=r1 PRIVMSG #lobby :before")
    for line in lines:
        alice.send(line)
    answer = alice.messages()
    fail = next(m for m in answer if m.command == "FAIL")
    assert fail.params[1:-1] == code and fail.tags.get("label") == "L", "the FAIL answers the batch's label"
    alice.send("@batch=r1 PRIVMSG #lobby :after")
    alice.send("BATCH -r1")
    assert alice.lines() == [], "the rest of a failed batch is ignored, once"
    assert bob.lines() == [], "nothing of it is delivered"
    assert h.server.stats.multiline_refused == 1
    _send_batch(alice, "#lobby", ["a new batch works"], ref="r3")
    assert [m.params[1] for m in _multiline_batch(bob.messages())[1]] == ["a new batch works"]


def test_batch_commands_that_cannot_open_a_batch() -> None:
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    alice.send("BATCH +x netsplit a b")
    alice.send("BATCH -x")
    alice.send("BATCH +bad!ref draft/multiline #lobby")
    alice.send("BATCH -nothing")
    alice.send("BATCH +y draft/multiline #a,#b")
    alice.send("BATCH +z draft/multiline")
    assert _fails(alice) == [
        ["BATCH", "UNKNOWN_TYPE", "x", "netsplit", "Unknown batch type"],
        ["BATCH", "INVALID_REFTAG", "+bad!ref", "Invalid batch reference tag"],
        ["BATCH", "MULTILINE_INVALID", "No batch nothing is open"],
        ["BATCH", "MULTILINE_INVALID", "A multiline batch has one target"],
        ["BATCH", "MULTILINE_INVALID", "A multiline batch has one target"],
    ]
    plain = h.user("plain", caps=["batch"])
    plain.send("BATCH +r draft/multiline #lobby")
    assert plain.numerics() == [ERR_UNKNOWNCOMMAND], "BATCH is for clients with draft/multiline"
    nobatch = h.user("nobatch", caps=["draft/multiline"])
    nobatch.send("BATCH +r draft/multiline #lobby")
    assert _fails(nobatch)[0][1] == "MULTILINE_INVALID"


def test_empty_and_blank_batches_are_refused() -> None:
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob")
    bob.lines()
    _send_batch(alice, "#lobby", [])
    _send_batch(alice, "#lobby", ["", ""], ref="r2")
    assert [fail[1] for fail in _fails(alice)] == ["MULTILINE_INVALID", "MULTILINE_INVALID"]
    assert bob.lines() == []


def test_max_lines_counts_every_line_concat_included() -> None:
    h = Harness(multiline_max_lines=3)
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob", caps=CAPS)
    bob.lines()
    _send_batch(alice, "#lobby", ["a", "+b", "c"])
    assert len(_multiline_batch(bob.messages())[1]) == 3
    _send_batch(alice, "#lobby", ["a", "+b", "c", "d"], ref="r2")
    assert _fails(alice) == [["BATCH", "MULTILINE_MAX_LINES", "3", "Multiline batch max-lines exceeded"]]
    assert bob.lines() == []


def test_max_bytes_counts_text_and_line_breaks() -> None:
    h = Harness(multiline_max_bytes=10)
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob", caps=CAPS)
    bob.lines()
    _send_batch(alice, "#lobby", ["abcd", "efg", "+hi"])  # 4 + 1 + 3 + 2 = 10
    assert [m.params[1] for m in _multiline_batch(bob.messages())[1]] == ["abcd", "efg", "hi"]
    _send_batch(alice, "#lobby", ["abcd", "efg", "hi"], ref="r2")  # 11: the second line break is one too many
    assert _fails(alice) == [["BATCH", "MULTILINE_MAX_BYTES", "10", "Multiline batch max-bytes exceeded"]]
    _send_batch(alice, "#lobby", ["é" * 6], ref="r3")  # bytes, not characters
    assert _fails(alice)[0][1] == "MULTILINE_MAX_BYTES"
    assert bob.lines() == []


def test_a_batch_left_open_is_dropped_by_the_timeout() -> None:
    h = Harness(multiline_timeout_s=30)
    alice = h.user("alice", caps=[*CAPS, "labeled-response"])
    bob = h.user("bob")
    bob.lines()
    alice.lines()
    alice.send("@label=t BATCH +slow draft/multiline #lobby")
    alice.send("@batch=slow PRIVMSG #lobby :hello")
    h.clock.now += 29
    h.server.tick()
    assert alice.lines() == []
    h.clock.now += 2
    h.server.tick()
    fail = alice.messages()
    assert [(m.command, m.params[:3], m.tags.get("label")) for m in fail] == [
        ("FAIL", ["BATCH", "TIMEOUT", "slow"], "t")]
    alice.send("@batch=slow PRIVMSG #lobby :too late")
    alice.send("BATCH -slow")
    assert alice.lines() == [] and bob.lines() == []
    assert h.server.open_batches == {}


def test_other_commands_break_an_open_batch_but_keepalives_do_not() -> None:
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob")
    bob.lines()
    alice.lines()
    alice.send("BATCH +r1 draft/multiline #lobby")
    alice.send("@batch=r1 PRIVMSG #lobby :one")
    alice.send("PING :keepalive")
    alice.send("@batch=r1 PRIVMSG #lobby :two")
    alice.send("BATCH -r1")
    assert [m.command for m in alice.messages()] == ["PONG"]
    assert bob.lines() == [f":{ALICE} PRIVMSG #lobby :one", f":{ALICE} PRIVMSG #lobby :two"]
    alice.send("BATCH +r2 draft/multiline #lobby")
    alice.send("PRIVMSG #lobby :not in the batch")
    alice.send("@batch=r2 PRIVMSG #lobby :left over")
    alice.send("BATCH -r2")
    assert _fails(alice)[0][1] == "MULTILINE_INVALID"
    assert bob.lines() == [f":{ALICE} PRIVMSG #lobby :not in the batch"], "the command itself still runs"


def test_a_long_line_is_split_to_fit_the_line_limit() -> None:
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob", caps=CAPS)
    carol = h.user("carol")
    bob.lines()
    carol.lines()
    # Fits the client's own 512 bytes, but not once the server adds alice's prefix.
    words = ("word " * 100)[: 512 - len("PRIVMSG #lobby :\r\n") - len("@batch=r1 ")]
    accented = "è" * 240  # two bytes each: a cut must not fall inside one
    _send_batch(alice, "#lobby", [words, accented])
    inner = _multiline_batch(bob.messages())[1]
    assert all(len(f":{ALICE} PRIVMSG #lobby :{m.params[1]}\r\n".encode()) <= 512 for m in inner)
    assert len(inner) == 4
    assert [("draft/multiline-concat" in m.tags) for m in inner] == [False, True, False, True]
    assert inner[0].params[1].endswith("word "), "cut after a space"
    assert inner[0].params[1] + inner[1].params[1] == words and inner[2].params[1] + inner[3].params[1] == accented
    assert len(carol.lines()) == 4


def test_a_client_that_leaves_with_a_batch_open_leaves_nothing_behind() -> None:
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    alice.send("BATCH +r1 draft/multiline #lobby")
    alice.send("@batch=r1 PRIVMSG #lobby :hello")
    assert list(h.server.open_batches) == [alice.client]
    alice.send("QUIT :bye")
    assert h.server.open_batches == {}


def test_a_refused_batch_keeps_no_text() -> None:
    h = Harness(multiline_max_lines=2)
    alice = h.user("alice", caps=CAPS)
    alice.send("BATCH +r1 draft/multiline #lobby")
    for i in range(3):
        alice.send(f"@batch=r1 PRIVMSG #lobby :{'x' * 300} {i}")
    batch = alice.client.batch
    assert batch is not None and batch.dropped and batch.lines == [], "what was collected is let go at once"
    assert h.server.open_batches == {}


def test_the_batch_parses_as_irc() -> None:
    # Every line a recipient gets is one IRC line that parses: nothing a client sends can split it.
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob", caps=CAPS)
    bob.lines()
    _send_batch(alice, "#lobby", ["a;b c\\d"], tags="@+draft/reply=x\\sy;+k ")
    lines = bob.lines()
    assert [parse(line).command for line in lines] == ["BATCH", "PRIVMSG", "BATCH"]
    assert parse(lines[0]).tags["+draft/reply"] == "x y"


def test_a_line_too_long_in_a_batch_fails_it_rather_than_leave_a_hole() -> None:
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob")
    bob.lines()
    alice.lines()
    alice.send("BATCH +r1 draft/multiline #lobby")
    alice.send("@batch=r1 PRIVMSG #lobby :one")
    h.server.line_too_long(alice.client)  # what the transport does with a line over max_line_bytes
    alice.send("@batch=r1 PRIVMSG #lobby :three")
    alice.send("BATCH -r1")
    answer = alice.messages()
    assert [(m.command, m.params[:2]) for m in answer] == [
        ("FAIL", ["BATCH", "MULTILINE_INVALID"]), ("417", ["alice", "Input line was too long"])]
    assert bob.lines() == []


def test_a_bots_multiline_message_carries_the_bot_tag() -> None:
    h = Harness()
    helper = h.user("helper", caps=CAPS)
    helper.send("MODE helper +B")
    bob = h.user("bob", caps=CAPS)
    carol = h.user("carol", caps=["message-tags"])
    bob.lines()
    carol.lines()
    _send_batch(helper, "#lobby", ["build passed", "all green"])
    start, inner = _multiline_batch(bob.messages())
    assert "bot" in start.tags and not any("bot" in m.tags for m in inner)
    assert [("bot" in m.tags, m.params[1]) for m in carol.messages()] == [(True, "build passed"), (True, "all green")]


def test_the_lines_of_a_refused_batch_never_go_out_whatever_comes_between() -> None:
    h = Harness(multiline_max_lines=2, multiline_timeout_s=30)
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob")
    bob.lines()
    alice.lines()
    alice.send("BATCH +r draft/multiline #lobby")
    for text in ("one", "two", "three"):  # the third is refused: MULTILINE_MAX_LINES
        alice.send(f"@batch=r PRIVMSG #lobby :{text}")
    alice.send("PING :keepalive")
    alice.send("@+typing=active TAGMSG #lobby")
    alice.send("@batch=r PRIVMSG #lobby :four")
    alice.send("BATCH -r")
    assert [line for line in bob.lines() if "PRIVMSG" in line] == []
    assert [f[1] for f in _fails(alice)] == ["MULTILINE_MAX_LINES"]
    # Timed out, then a keepalive: the same.
    alice.send("BATCH +t draft/multiline #lobby")
    alice.send("@batch=t PRIVMSG #lobby :slow")
    h.clock.now += 31
    h.server.tick()
    alice.send("PONG :x")
    alice.send("@batch=t PRIVMSG #lobby :too late")
    alice.send("BATCH -t")
    assert [line for line in bob.lines() if "PRIVMSG" in line] == []
    assert [f[1] for f in _fails(alice)] == ["TIMEOUT"]


def test_a_line_of_a_batch_that_is_not_open_is_refused_not_relayed() -> None:
    h = Harness()
    alice = h.user("alice", caps=CAPS)
    bob = h.user("bob")
    bob.lines()
    alice.lines()
    alice.send("@batch=never PRIVMSG #lobby :stray")
    assert _fails(alice) == [["BATCH", "MULTILINE_INVALID", "No batch never is open"]]
    alice.send("@batch=never;+draft/react=x TAGMSG #lobby")
    assert _fails(alice)[0][1] == "MULTILINE_INVALID"
    assert bob.lines() == []
    alice.send("PRIVMSG #lobby :fine")
    assert bob.lines() == [f":{ALICE} PRIVMSG #lobby :fine"]
