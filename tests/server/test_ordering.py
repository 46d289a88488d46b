"""One connection's commands are answered in order, with the off-loop work finishing when the test says.

The transport-level tests (tests/transport/test_ordering.py) pipeline over real sockets; these step the
work by hand to pin down what happens while a command waits: a labelled answer, a client that leaves,
a callback that raises, an overlong line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pytest

from salotto.config import OperBlock
from salotto.passwords import hash_password
from salotto.storage.worker import Outcome
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
