"""One connection's commands are answered in order, with the off-loop work finishing when the test says.

The transport-level tests (tests/transport/test_ordering.py) pipeline over real sockets; these step the
work by hand to pin down what happens while a command waits: a labelled answer, a client that leaves,
a callback that raises, an overlong line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from salotto.config import OperBlock
from salotto.passwords import hash_password
from salotto.proto import parse
from salotto.storage import Storage, open_storage
from salotto.storage.journal import JOURNAL_FILENAMES, Journal
from salotto.storage.outcome import Outcome
from salotto.storage.store import Store
from tests.server.harness import Harness

_HASH = hash_password("hunter2", n=2**10)


class SteppedOffload:
    """Runs the work at once but hands the callback back only when the test calls ``finish``."""

    def __init__(self) -> None:
        self.waiting: list[Callable[[], None]] = []

    def run(self, fn: Callable[[], Any], callback: Callable[[Outcome[Any]], None]) -> None:
        outcome = Outcome(value=fn())
        self.waiting.append(lambda: callback(outcome))

    def finish(self) -> None:
        while self.waiting:
            self.waiting.pop(0)()


def _harness() -> tuple[Harness, SteppedOffload]:
    h = Harness()
    h.server.config.opers["admin"] = OperBlock("admin", _HASH, "*!*@*")
    offload = SteppedOffload()
    h.server.offload = offload
    return h, offload


def test_lines_after_a_waiting_command_wait_and_then_run_in_order() -> None:
    h, offload = _harness()
    alice = h.user("alice")
    alice.send("OPER admin hunter2")
    alice.send("PING :one")
    alice.send("MODE alice")
    assert alice.lines() == []  # nothing answered yet, not even the PING
    offload.finish()
    assert alice.lines() == [
        ":salotto.local 381 alice :You are now an IRC operator",
        ":alice MODE alice +o",
        ":salotto.local PONG salotto.local one",
        ":salotto.local 221 alice +o",  # the MODE ran after the OPER took effect
    ]
    alice.send("PING :two")  # nothing waits any more: answered at once
    assert alice.lines() == [":salotto.local PONG salotto.local two"]


def test_a_waiting_command_does_not_hold_other_connections() -> None:
    h, offload = _harness()
    alice = h.user("alice")
    bob = h.user("bob")
    alice.send("OPER admin hunter2")
    bob.send("PING :bob")
    assert bob.lines() == [":salotto.local PONG salotto.local bob"]
    offload.finish()


def test_a_labelled_waiting_command_is_answered_as_one_labelled_response() -> None:
    h, offload = _harness()
    alice = h.user("alice", caps=["labeled-response", "batch", "message-tags"])
    alice.send("@label=op1 OPER admin hunter2")
    alice.send("@label=p2 PING :x")
    offload.finish()
    lines = alice.lines()
    assert lines[0].startswith("@label=op1 :salotto.local BATCH +") and lines[0].endswith(" labeled-response")
    assert [line.split(" ", 2)[2] for line in lines[1:3]] == [
        "381 alice :You are now an IRC operator", "MODE alice +o"]
    assert lines[3].startswith(":salotto.local BATCH -")
    assert lines[4] == "@label=p2 :salotto.local PONG salotto.local x"
    assert len(lines) == 5


def test_a_client_that_leaves_while_waiting_gets_nothing_more() -> None:
    h, offload = _harness()
    alice = h.user("alice")
    alice.send("OPER admin hunter2")
    alice.send("QUIT :bye")  # waits behind the OPER, as everything does
    h.server.disconnect(alice.client, "Connection closed")
    offload.finish()
    assert not alice.client.is_oper  # the answer came for a client that had gone: nothing done
    assert alice.lines()[-1].startswith("ERROR")  # and nothing sent after the ERROR


def test_a_callback_that_raises_is_answered_and_releases_the_input(caplog: pytest.LogCaptureFixture) -> None:
    h, offload = _harness()
    alice = h.user("alice")
    block = h.server.config.opers["admin"]
    h.server.config.opers["admin"] = OperBlock("admin", block.password_hash, None)  # type: ignore[arg-type]
    alice.send("OPER admin hunter2")  # mask_match(None, ...) raises in the callback: our bug, simulated
    alice.send("PING :after")
    with caplog.at_level(logging.ERROR, "salotto.server"):
        offload.finish()
    assert alice.lines()[-2:] == [
        ":salotto.local 400 alice OPER :Internal server error",
        ":salotto.local PONG salotto.local after",
    ]
    assert h.server.internal_errors == 1
    assert any("internal error" in r.getMessage() for r in caplog.records)
    h.server.internal_errors = 0


def test_an_overlong_line_is_answered_in_its_turn() -> None:
    h, offload = _harness()
    alice = h.user("alice")
    alice.send("OPER admin hunter2")
    h.server.line_too_long(alice.client)
    alice.send("PING :after")
    assert alice.lines() == []
    offload.finish()
    assert [line.split(" ")[1] for line in alice.lines()] == ["381", "MODE", "417", "PONG"]


def test_lines_held_past_the_flood_limit_disconnect_with_excess_flood() -> None:
    h, offload = _harness()
    h.server.config = dataclasses.replace(h.server.config, flood_max_queued_lines=3)
    alice = h.user("alice")
    alice.send("OPER admin hunter2")
    for i in range(4):
        alice.send(f"PING :{i}")
    assert alice.conn.closed == "Excess Flood"
    offload.finish()


# -- the replay on join follows the JOIN's answer; services answer inside the PRIVMSG's ----------------


class SteppedReader:
    """History reads on a real SQLite file, answered when the test says so."""

    def __init__(self, data_dir: Path) -> None:
        self.storage = open_storage("sqlite", data_dir, readonly=True)
        self.waiting: list[Callable[[], None]] = []

    def read(self, fn: Callable[[Storage], Any], callback: Callable[[Outcome[Any]], None]) -> None:
        self.waiting.append(lambda: callback(Outcome(value=fn(self.storage))))

    def finish(self) -> None:
        while self.waiting:
            self.waiting.pop(0)()


def _with_history(tmp_path: Path, reader_cls: Any) -> tuple[Harness, Any]:
    h = Harness()
    writer = open_storage("sqlite", tmp_path)
    journals = tuple(Journal(tmp_path / name) for name in JOURNAL_FILENAMES)
    reader = reader_cls(tmp_path)
    h.server.attach_history(Store(h.server.config, writer, reader, h.server.clock(), journals))  # type: ignore[arg-type]
    return h, reader


def test_the_join_answer_leaves_at_once_and_the_replay_follows_before_the_next_command(tmp_path: Path) -> None:
    h, reader = _with_history(tmp_path, SteppedReader)
    alice = h.user("alice", caps=["draft/chathistory"])  # no replay for her: nothing to wait for
    alice.send("PRIVMSG #lobby :old news")
    h.server.commit_pending()
    h.wall[0] += 1  # the replay holds what was said before the join
    bob = h.connect()
    bob.send("NICK bob")
    bob.send("USER bob 0 * :Bob")
    bob.send("PING :after")
    # The welcome burst, the JOIN of #lobby, its NAMES: all there before the history read returns...
    first = bob.lines()
    assert [line.split(" ")[1] for line in first[:1]] == ["001"]
    assert any(" JOIN #lobby" in line for line in first) and any(" 366 " in line for line in first)
    # ...and the channel's live traffic reaches bob after his JOIN, as for anyone in it.
    alice.send("PRIVMSG #lobby :live")
    assert [line for line in bob.lines() if "PRIVMSG" in line] == [":alice!~alice@127.0.0.1 PRIVMSG #lobby :live"]
    reader.finish()  # the replay, then the answer to the PING that waited for it
    rest = bob.lines()
    assert [line.endswith("] old news") for line in rest] == [True, False]
    assert rest[1] == ":salotto.local PONG salotto.local after"


def test_a_labelled_join_with_its_replay_nests_the_history_batch_correctly(tmp_path: Path) -> None:
    from tests.server.test_history import ImmediateReader

    h, _ = _with_history(tmp_path, ImmediateReader)
    alice = h.user("alice", caps=["draft/chathistory"])
    alice.send("JOIN #room")
    alice.send("PRIVMSG #room :said before")
    h.server.commit_pending()
    h.wall[0] += 1
    bob = h.user("bob", caps=["labeled-response", "batch", "message-tags", "server-time"])
    bob.send("@label=j1 JOIN #room")
    lines = [parse(line) for line in bob.lines()]
    outer = lines[0]
    assert outer.command == "BATCH" and outer.tags["label"] == "j1" and outer.params[1] == "labeled-response"
    ref = outer.params[0][1:]
    inner_start = next(m for m in lines if m.command == "BATCH" and m.params[1:2] == ["chathistory"])
    inner = inner_start.params[0][1:]
    assert inner_start.tags["batch"] == ref
    inner_end = next(m for m in lines if m.command == "BATCH" and m.params == ["-" + inner])
    assert inner_end.tags["batch"] == ref  # the nested batch's end is in the outer batch too
    replayed = next(m for m in lines if m.command == "PRIVMSG")
    assert replayed.tags["batch"] == inner and replayed.params == ["#room", "said before"]
    assert lines[-1].command == "BATCH" and lines[-1].params == ["-" + ref]


def test_a_labelled_privmsg_to_nickserv_is_answered_as_one_response(tmp_path: Path) -> None:
    h, offload = _harness()
    h.attach_store(tmp_path)
    h.server.accounts.offload = offload  # type: ignore[union-attr]
    owner = h.user("alice")
    owner.send("REGISTER * * :a long password")
    offload.finish()
    owner.send("QUIT")
    alice = h.user("alice", caps=["labeled-response", "batch", "echo-message"])
    alice.send("@label=ns PRIVMSG NickServ :IDENTIFY a long password")
    alice.send("PING :after")
    assert alice.lines() == []
    offload.finish()
    lines = [parse(line) for line in alice.lines()]
    assert lines[0].command == "BATCH" and lines[0].tags["label"] == "ns"
    inside = [m.command for m in lines[1:-2]]
    assert "900" in inside and "NOTICE" in inside
    assert lines[-2].command == "BATCH" and lines[-1].command == "PONG"


def test_a_service_command_whose_work_cannot_start_answers_400_and_releases_the_input(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenOffload:
        def run(self, fn: Any, callback: Any) -> None:
            raise RuntimeError("the hashing pool is gone")

    h = Harness()
    h.attach_store(tmp_path)
    h.user("alice")
    alice = h.user("alice_")
    h.server.accounts.offload = BrokenOffload()  # type: ignore[union-attr,assignment]
    with caplog.at_level(logging.ERROR, "salotto.server"):
        alice.send("PRIVMSG NickServ :IDENTIFY alice something")
    alice.send("PING :after")
    lines = alice.lines()
    assert any(" 400 " in line for line in lines) and lines[-1] == ":salotto.local PONG salotto.local after"
    h.server.internal_errors = 0
