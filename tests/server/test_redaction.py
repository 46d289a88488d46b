"""REDACT (draft/message-redaction): who may delete which message, what others are told, and that the
message is gone from history (CHATHISTORY, the replay on join), in the order the store works in."""

from __future__ import annotations

from pathlib import Path

import pytest

from salotto.config import OperBlock
from salotto.passwords import hash_password
from salotto.proto import parse
from salotto.proto.message import Message
from salotto.proto.numerics import ERR_NEEDMOREPARAMS, ERR_UNKNOWNCOMMAND
from salotto.storage import open_storage
from salotto.storage.store import Store
from salotto.transport.web import render_metrics
from tests.server.harness import Harness, User
from tests.server.test_history import (
    ImmediateReader,
    StepStorer,
    _account,
    _batch,
    _harness,
    _journaled,
    _journals,
    _say,
)

CAP = "draft/message-redaction"
CAPS = [CAP, "message-tags", "echo-message", "draft/chathistory", "batch", "server-time"]
WINDOW = 900.0


@pytest.fixture(params=["journal", "no journal"])
def h(tmp_path: Path, request: pytest.FixtureRequest) -> Harness:
    return _harness(tmp_path, journal=request.param == "journal")


def _user(h: Harness, nick: str, caps: list[str] | None = None) -> User:
    user = h.user(nick, caps=CAPS if caps is None else caps)
    h.wall[0] += 1.0  # (what is said in the very millisecond a nick was taken is not provably its holder's)
    return user


def _said(h: Harness, user: User, target: str, text: str) -> str:
    """``user`` says ``text`` (echo-message on): its msgid."""
    _say(h, user, f"PRIVMSG {target} :{text}")
    echo = [m for m in user.messages() if m.command == "PRIVMSG" and m.params[1] == text]
    return echo[-1].tags["msgid"]


def _history(user: User, target: str = "#lobby") -> list[str]:
    user.lines()
    user.send(f"CHATHISTORY LATEST {target} * 50")
    return [m.params[1] for m in _batch(user)[1] if m.command == "PRIVMSG"]


def _fails(user: User) -> list[list[str]]:
    return [m.params for m in user.messages() if m.command == "FAIL"]


def _redacts(user: User) -> list[Message]:
    return [m for m in user.messages() if m.command == "REDACT"]


def test_the_capability_is_offered_with_history_only(h: Harness) -> None:
    user = h.connect()
    user.send("CAP LS 302")
    assert CAP in " ".join(user.lines())
    plain = Harness().connect()
    plain.send("CAP LS 302")
    assert CAP not in " ".join(plain.lines())


def test_the_author_deletes_a_message_and_those_with_the_cap_are_told(h: Harness) -> None:
    alice = _user(h, "alice")
    bob = _user(h, "bob")
    old = _user(h, "old", caps=["message-tags"])  # without the capability: told nothing
    msgid = _said(h, alice, "#lobby", "oops, wrong window")
    _said(h, alice, "#lobby", "hello")
    for user in (bob, old):
        user.lines()
    alice.send(f"REDACT #lobby {msgid} :sent by mistake")
    echoed = _redacts(alice)
    assert [(m.source.split("!")[0], m.params) for m in echoed] == [("alice", ["#lobby", msgid, "sent by mistake"])]
    relayed = _redacts(bob)
    assert [(m.source, m.params) for m in relayed] == [(alice.client.prefix, ["#lobby", msgid, "sent by mistake"])]
    assert old.lines() == []
    assert _history(bob) == ["hello"]
    assert h.server.stats.redactions == 1
    assert "salotto_redactions_total 1" in render_metrics(h.server)


def test_the_replay_on_join_leaves_it_out_too(h: Harness) -> None:
    alice = _user(h, "alice")
    msgid = _said(h, alice, "#lobby", "regret")
    _said(h, alice, "#lobby", "fine")
    alice.send(f"REDACT #lobby {msgid}")
    assert [m.params for m in _redacts(alice)] == [["#lobby", msgid]]  # no reason: none relayed
    plain = h.user("plain")
    text = bytes(plain.conn.data).decode()
    assert "fine" in text and "regret" not in text


def test_without_echo_message_the_author_gets_only_the_ack(h: Harness) -> None:
    alice = _user(h, "alice", caps=[CAP, "message-tags", "labeled-response", "batch"])
    _say(h, alice, "PRIVMSG #lobby :x")
    watcher = _user(h, "watcher")
    watcher.send("CHATHISTORY LATEST #lobby * 1")
    msgid = _batch(watcher)[1][0].tags["msgid"]
    alice.lines()
    alice.send(f"@label=r1 REDACT #lobby {msgid}")
    assert [parse(line).command for line in alice.lines()] == ["ACK"]
    assert len(_redacts(watcher)) == 1


def test_someone_elses_message_is_forbidden_but_not_to_a_channel_operator(h: Harness) -> None:
    op = _user(h, "op")
    op.send("JOIN #room")
    alice = _user(h, "alice")
    alice.send("JOIN #room")
    bob = _user(h, "bob")
    bob.send("JOIN #room")
    msgid = _said(h, alice, "#room", "spam spam spam")
    bob.lines()
    bob.send(f"REDACT #room {msgid} :no")
    assert _fails(bob) == [
        ["REDACT", "REDACT_FORBIDDEN", "#room", msgid, "You are not authorised to delete this message"]
    ]
    h.wall[0] += 10 * WINDOW  # operators have no window
    op.lines()
    op.send(f"REDACT #room {msgid} :spam")
    assert [m.params for m in _redacts(op)] == [["#room", msgid, "spam"]]
    assert [m.params for m in _redacts(alice)] == [["#room", msgid, "spam"]]
    assert _history(bob, "#room") == []


def test_the_operator_of_a_recreated_channel_cannot_touch_the_old_ones_messages(h: Harness) -> None:
    alice = _user(h, "alice")
    alice.send("JOIN #secret")
    msgid = _said(h, alice, "#secret", "launch codes")
    alice.send("PART #secret")
    h.wall[0] += 10
    mallory = _user(h, "mallory")
    mallory.send("JOIN #secret")
    mallory.lines()
    mallory.send(f"REDACT #secret {msgid}")
    assert [f[1] for f in _fails(mallory)] == ["UNKNOWN_MSGID"]


def test_a_server_operator_deletes_anything_in_a_channel_even_from_outside(h: Harness) -> None:
    h.server.config.opers["admin"] = OperBlock("admin", hash_password("hunter2", n=2**10), "*!*@127.0.0.1")
    alice = _user(h, "alice")
    alice.send("JOIN #room")
    first = _said(h, alice, "#room", "one")
    second = _said(h, alice, "#lobby", "two")
    admin = _user(h, "admin")
    admin.send("PART #lobby")
    admin.send("REDACT #room " + first)
    assert _fails(admin) == [["REDACT", "INVALID_TARGET", "#room", "You cannot delete messages from #room"]]
    admin.send("OPER admin hunter2")
    admin.lines()
    admin.send("REDACT #room " + first)
    admin.send("REDACT #lobby " + second)
    assert [m.params for m in _redacts(admin)] == [["#room", first], ["#lobby", second]]
    assert _history(alice, "#room") == [] and _history(alice) == []


def test_the_author_may_only_within_the_window(tmp_path: Path) -> None:
    h = _harness(tmp_path, redaction_window_s=60)
    alice = _user(h, "alice")
    late = _said(h, alice, "#lobby", "said long ago")
    soon = _said(h, alice, "#lobby", "said just now")
    h.wall[0] += 58.5
    alice.send(f"REDACT #lobby {soon}")
    assert len(_redacts(alice)) == 1
    alice.send(f"REDACT #lobby {late}")
    assert _fails(alice) == [
        ["REDACT", "REDACT_WINDOW_EXPIRED", "#lobby", late, "60", "You can no longer delete this message"]
    ]
    assert _history(alice) == ["said long ago"]


def test_a_window_of_zero_leaves_deleting_to_operators(tmp_path: Path) -> None:
    h = _harness(tmp_path, redaction_window_s=0)
    alice = _user(h, "alice")
    msgid = _said(h, alice, "#lobby", "forever")
    alice.send(f"REDACT #lobby {msgid}")
    assert [f[1] for f in _fails(alice)] == ["REDACT_WINDOW_EXPIRED"]


def test_unknown_and_other_targets_messages_and_bad_commands_get_their_answer(h: Harness) -> None:
    alice = _user(h, "alice")
    alice.send("JOIN #room")
    in_room = _said(h, alice, "#room", "here")
    alice.lines()
    alice.send("REDACT #lobby nosuchmsgid")
    alice.send(f"REDACT #lobby {in_room}")  # it exists, but not there
    alice.send(f"REDACT #nowhere {in_room}")
    alice.send(f"REDACT #room {in_room} :" + "x" * 600)  # a reason longer than a line
    replies = alice.messages()
    assert [m.params[:4] for m in replies if m.command == "FAIL"] == [
        ["REDACT", "UNKNOWN_MSGID", "#lobby", "nosuchmsgid"],
        ["REDACT", "UNKNOWN_MSGID", "#lobby", in_room],
        ["REDACT", "INVALID_TARGET", "#nowhere", "You cannot delete messages from #nowhere"],
    ]
    echoed = [m for m in replies if m.command == "REDACT"]
    assert len(echoed) == 1 and set(echoed[0].params[2]) == {"x"}
    alice.send(f"REDACT #room {in_room}")  # deleted already
    alice.send("REDACT #room")
    alice.send("REDACT x*y abc")
    replies = alice.messages()
    assert [(m.command, m.params[1:3]) for m in replies] == [
        ("FAIL", ["UNKNOWN_MSGID", "#room"]),
        (ERR_NEEDMOREPARAMS, ["REDACT", "Not enough parameters"]),
        ("FAIL", ["INVALID_TARGET", "x*y"]),
    ]
    without = _user(h, "without", caps=["message-tags"])
    without.send("REDACT #lobby abc")
    assert [m.command for m in without.messages()] == [ERR_UNKNOWNCOMMAND]
    assert h.server.internal_errors == 0


def test_whoever_takes_a_guests_nick_cannot_delete_what_the_guest_said(h: Harness) -> None:
    alice = _user(h, "alice")
    msgid = _said(h, alice, "#lobby", "mine")
    alice.send("QUIT")
    impostor = _user(h, "alice")  # the same nick, user name and address
    impostor.send(f"REDACT #lobby {msgid}")
    assert [f[1] for f in _fails(impostor)] == ["REDACT_FORBIDDEN"]
    # Nor a guest that gave the nick up and took it back: another connection may have held it meanwhile.
    mine = _said(h, impostor, "#lobby", "also mine")
    impostor.send("NICK other")
    impostor.send("NICK alice")
    h.wall[0] += 1
    impostor.lines()
    impostor.send(f"REDACT #lobby {mine}")
    assert [f[1] for f in _fails(impostor)] == ["REDACT_FORBIDDEN"]


def test_an_account_deletes_its_messages_from_any_connection(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    h.attach_store(tmp_path / "accounts")
    alice = _account(h, "ali", "alice")
    alice.send("CAP REQ :" + " ".join(CAPS))
    h.wall[0] += 1
    msgid = _said(h, alice, "#lobby", "from my laptop")
    phone = _user(h, "phone")
    phone.send("REDACT #lobby " + msgid)
    assert [f[1] for f in _fails(phone)] == ["REDACT_FORBIDDEN"]
    phone.send("PRIVMSG NickServ :IDENTIFY alice a-long-password")
    phone.lines()
    phone.send("REDACT #lobby " + msgid)
    assert len(_redacts(phone)) == 1


def test_a_private_message_is_deleted_by_its_author_and_the_other_side_is_told(h: Harness) -> None:
    alice = _user(h, "alice")
    bob = _user(h, "bob")
    msgid = _said(h, alice, "bob", "psst")
    kept = _said(h, bob, "alice", "what?")
    bob.lines()
    bob.send(f"REDACT alice {msgid}")  # the other side's message
    assert [f[1] for f in _fails(bob)] == ["REDACT_FORBIDDEN"]
    carol = _user(h, "carol")
    carol.send(f"REDACT alice {msgid}")  # not her conversation: no such message there
    assert [f[1] for f in _fails(carol)] == ["UNKNOWN_MSGID"]
    alice.send(f"REDACT bob {msgid} :nevermind")
    assert [(m.source.split("!")[0], m.params) for m in _redacts(bob)] == [("alice", ["bob", msgid, "nevermind"])]
    assert [m.params for m in _redacts(alice)] == [["bob", msgid, "nevermind"]]
    assert _history(bob, "alice") == ["what?"]
    assert _history(alice, "bob") == ["what?"]
    assert kept


def test_a_message_still_in_the_journal_is_deleted_after_it_is_stored(tmp_path: Path) -> None:
    """The storer has not stored the message yet when REDACT comes: the deletion is its job after the
    batch's, the connection's next command waits for it, and nothing brings the message back: not the
    batch landing, not the journal replayed at the next start."""
    h = Harness(history_store_interval_s=3600.0)
    server = h.server
    storer = StepStorer()
    writer = open_storage("sqlite", tmp_path)
    history = Store(server.config, writer, ImmediateReader(tmp_path), server.clock(), _journals(tmp_path), storer)
    server.attach_history(history)
    alice = _user(h, "alice")
    alice.send("PRIVMSG #lobby :first")
    alice.send("PRIVMSG #lobby :second")
    msgid = next(m for m in alice.messages() if m.command == "PRIVMSG").tags["msgid"]
    alice.send(f"REDACT #lobby {msgid}")
    alice.send(f"REDACT #lobby {msgid}")
    alice.send("PING :after")
    assert alice.lines() == [], "the answer and the next commands wait for the storer"
    assert _journaled(tmp_path) == ["first", "second"]
    assert len(storer.jobs) == 2, "the batch, then one deletion: a connection has one REDACT on its way at a time"
    storer.run()
    assert [(m.command, m.params[1]) for m in alice.messages()] == [
        ("REDACT", msgid), ("FAIL", "UNKNOWN_MSGID"), ("PONG", "after"),
    ]
    assert _journaled(tmp_path) == []
    assert [m.text for m in writer.latest("#lobby", 10)] == ["second"]
    storer.holding = False
    history.close()
    writer = open_storage("sqlite", tmp_path)
    again = Store(server.config, writer, ImmediateReader(tmp_path), 0.0, _journals(tmp_path))
    assert again.recover() == 0
    assert [m.text for m in writer.latest("#lobby", 10)] == ["second"]
    again.close()


def test_a_redact_waits_for_the_batch_in_flight_then_for_its_own(tmp_path: Path) -> None:
    """A batch is being stored while the message waits in the other journal: REDACT neither waits on
    the loop nor runs before the message's batch."""
    h = Harness(history_store_interval_s=0.0)
    server = h.server
    storer = StepStorer()
    writer = open_storage("sqlite", tmp_path)
    queued: list[object] = []
    history = Store(server.config, writer, ImmediateReader(tmp_path), server.clock(), _journals(tmp_path), storer,
                    queued.append)
    server.attach_history(history)
    alice = _user(h, "alice")
    _say(h, alice, "PRIVMSG #lobby :in flight")
    history.store_if_due(h.clock.now)  # handed over; the storer holds it
    _say(h, alice, "PRIVMSG #lobby :waiting")
    msgid = [m for m in alice.messages() if m.command == "PRIVMSG"][-1].tags["msgid"]
    alice.send(f"REDACT #lobby {msgid}")
    assert len(storer.jobs) == 1, "nothing more is handed over while the batch is in flight"
    storer.run()  # the first batch; the REDACT's turn comes back to the loop
    while queued or storer.jobs:
        for callback in queued[:]:
            queued.remove(callback)
            callback()  # type: ignore[operator]
        storer.run()
    assert [parse(line).command for line in alice.lines()] == ["REDACT"]
    assert [m.text for m in writer.latest("#lobby", 10)] == ["in flight"]
    storer.holding = False
    history.close()


def test_a_msgid_that_is_not_utf8_is_unknown_without_asking_the_store(h: Harness) -> None:
    alice = _user(h, "alice")
    h.server.handle_line(alice.client, b"REDACT #lobby \xff\xfe")
    (fail,) = _fails(alice)
    assert fail[:3] == ["REDACT", "UNKNOWN_MSGID", "#lobby"] and fail[-1] == "This message does not exist or is too old"
    assert h.server.internal_errors == 0
