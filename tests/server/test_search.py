"""SEARCH (soju.im/search) over real sockets, on a real server and its SQLite file: what a user finds,
what it never finds (a channel it may not read), the errors and limits, and the order of answers."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from salotto.proto.message import Message
from salotto.storage import Storage
from salotto.storage.outcome import Outcome
from tests.conftest import RunningServer, start_server, stop_server
from tests.irc_client import RawClient

CAPS = ["soju.im/search", "batch", "server-time", "message-tags", "echo-message", "draft/chathistory",
        "draft/message-redaction", "labeled-response"]
_names = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("search"), "--autojoin", "")
    yield running
    stop_server(running)


def _user(server: RunningServer, name: str, caps: list[str] | None = None) -> RawClient:
    client = server.client()
    client.register(f"{name}{next(_names)}", caps=CAPS if caps is None else caps)
    return client


def _join(client: RawClient, channel: str) -> None:
    client.send(f"JOIN {channel}")
    client.expect("366")


def _say(client: RawClient, target: str, text: str, command: str = "PRIVMSG") -> str:
    """Send and wait for the echo; its msgid."""
    client.send(f"{command} {target} :{text}")
    return client.expect(command, p0=target, p1=text).tags.get("msgid", "")


def _search(client: RawClient, attributes: str) -> tuple[Message, list[Message]]:
    """The batch start and the messages inside it."""
    client.send(f"SEARCH {attributes}")
    start = client.expect("BATCH")
    ref = start.params[0][1:]
    inner: list[Message] = []
    while True:
        line = client.read_line()
        assert line is not None, "no end of batch"
        from salotto.proto import parse

        msg = parse(line)
        if msg.command == "BATCH" and msg.params[0] == "-" + ref:
            return start, inner
        assert msg.tags.get("batch") == ref, line
        inner.append(msg)


def test_finds_words_in_the_users_channels_and_private_messages_newest_last(server: RunningServer) -> None:
    alice, bob, carol = _user(server, "alice"), _user(server, "bob"), _user(server, "carol")
    room, other = f"#room{next(_names)}", f"#other{next(_names)}"
    for client in (alice, bob):
        _join(client, room)
    _join(carol, other)
    first = _say(alice, room, "the pizza is hot")
    _say(alice, room, "nothing to see")
    second = _say(bob, room, "PIZZA again?")
    private = _say(bob, alice.nick, "secret pizza recipe")
    _say(carol, other, "pizza in a channel alice is not in")
    _say(bob, room, "pizzas are another word")

    start, found = _search(alice, "text=pizza")
    assert start.params[1] == "soju.im/search"
    assert [(m.command, m.params, m.tags["msgid"]) for m in found] == [
        ("PRIVMSG", [room, "the pizza is hot"], first),
        ("PRIVMSG", [room, "PIZZA again?"], second),
        ("PRIVMSG", [alice.nick, "secret pizza recipe"], private),
    ]
    assert all("time" in m.tags for m in found)
    assert found[1].source is not None and found[1].source.startswith(bob.nick + "!")
    # in=, from=, limit: the newest match.
    _, found = _search(alice, f"text=pizza;in={room};from={bob.nick.upper()}")
    assert [m.params[1] for m in found] == ["PIZZA again?"]
    _, found = _search(alice, "text=pizza;limit=1")
    assert [m.params[1] for m in found] == ["secret pizza recipe"]
    # A private conversation by the other side's nick; bob sees it under alice's.
    _, found = _search(bob, f"text=recipe;in={alice.nick}")
    assert [(m.params, m.tags["msgid"]) for m in found] == [([alice.nick, "secret pizza recipe"], private)]
    # Several words: every one must be there.
    _, found = _search(alice, "text=pizza\\shot")
    assert [m.params[1] for m in found] == ["the pizza is hot"]


def test_never_a_channel_the_user_may_not_read(server: RunningServer) -> None:
    owner, eve = _user(server, "owner"), _user(server, "eve")
    secret, public = f"#secret{next(_names)}", f"#public{next(_names)}"
    _join(owner, secret)
    _join(owner, public)
    _join(eve, public)
    _say(owner, secret, "the launch code is swordfish")
    _say(owner, public, "swordfish for dinner")

    _, found = _search(eve, "text=swordfish")
    assert [m.params for m in found] == [[public, "swordfish for dinner"]]
    eve.send(f"SEARCH text=swordfish;in={secret}")
    assert eve.expect("FAIL").params[:3] == ["SEARCH", "INVALID_PARAMS", "in"]
    # A channel left is not searched any more; one joined later only from when it was made (its creation).
    eve.send(f"PART {public}")
    eve.expect("PART")
    _, found = _search(eve, "text=swordfish")
    assert found == []
    eve.send(f"SEARCH in={public};text=swordfish")
    assert eve.expect("FAIL").params[:3] == ["SEARCH", "INVALID_PARAMS", "in"]
    # Someone else's private conversation is never found either.
    _say(owner, eve.nick, "swordfish between us")
    third = _user(server, "third")
    _, found = _search(third, "text=swordfish")
    assert found == []
    _, found = _search(eve, "text=swordfish")
    assert [m.params[1] for m in found] == ["swordfish between us"]


def test_redacted_messages_are_not_found(server: RunningServer) -> None:
    alice = _user(server, "alice")
    room = f"#redact{next(_names)}"
    _join(alice, room)
    keep = _say(alice, room, "typo here kept")
    gone = _say(alice, room, "typo here deleted")
    alice.send(f"REDACT {room} {gone}")
    alice.expect("REDACT")
    _, found = _search(alice, "text=typo")
    assert [m.tags["msgid"] for m in found] == [keep]


def test_time_bounds_page_backwards(server: RunningServer) -> None:
    alice = _user(server, "alice")
    room = f"#pages{next(_names)}"
    _join(alice, room)
    for i in range(5):
        _say(alice, room, f"page word {i}")
    _, newest = _search(alice, f"in={room};text=word;limit=2")
    assert [m.params[1] for m in newest] == ["page word 3", "page word 4"]
    oldest_time = newest[0].tags["time"]
    _, before = _search(alice, f"in={room};text=word;limit=10;before={oldest_time}")
    # Both bounds are inclusive: the message at that time is there again (with any of its millisecond).
    assert "page word 3" in [m.params[1] for m in before]
    assert all(m.tags["time"] <= oldest_time for m in before) and len(before) >= 4
    _, after = _search(alice, f"in={room};after={oldest_time}")
    assert [m.params[1] for m in after][-2:] == ["page word 3", "page word 4"]
    assert all(m.tags["time"] >= oldest_time for m in after)


def test_errors(server: RunningServer) -> None:
    alice = _user(server, "alice")
    for attributes, code, context in [
        ("", "NEED_MORE_PARAMS", None),
        ("limit=lots", "INVALID_PARAMS", "limit"),
        ("limit=0", "INVALID_PARAMS", "limit"),
        ("before=yesterday", "INVALID_PARAMS", "before"),
        ("after=2026-13-45T00:00:00.000Z", "INVALID_PARAMS", "after"),
        ("text=!!!\\s...", "INVALID_PARAMS", "text"),
        ("from=", "INVALID_PARAMS", "from"),
        ("in=#nowhere;text=x", "INVALID_PARAMS", "in"),
    ]:
        alice.send(f"SEARCH {attributes}".rstrip())
        fail = alice.expect("FAIL")
        assert fail.params[:2] == ["SEARCH", code], attributes
        if context is not None:
            assert fail.params[2] == context
    # Without the capability the command does not exist.
    plain = _user(server, "plain", caps=[])
    plain.send("SEARCH text=x")
    assert plain.expect("421").params[1] == "SEARCH"


def test_answered_in_order_and_labelled(server: RunningServer) -> None:
    alice = _user(server, "alice")
    room = f"#order{next(_names)}"
    _join(alice, room)
    _say(alice, room, "ordered words")
    alice.send(f"@label=s1 SEARCH in={room};text=ordered")
    alice.send("PING :after-search")
    lines = alice.lines_until("PONG")
    commands = [m.command for m in lines]
    assert commands.index("PONG") > max(i for i, c in enumerate(commands) if c == "BATCH")
    start = next(m for m in lines if m.command == "BATCH")
    assert start.tags.get("label") == "s1"
    assert [m.params[1] for m in lines if m.command == "PRIVMSG"] == ["ordered words"]


def test_without_batch_the_lines_alone(server: RunningServer) -> None:
    alice = _user(server, "alice", caps=["soju.im/search", "echo-message", "server-time"])
    room = f"#nobatch{next(_names)}"
    _join(alice, room)
    _say(alice, room, "unbatched result")
    alice.send(f"SEARCH in={room};text=unbatched")
    alice.send("PING :done")
    lines = alice.lines_until("PONG")
    assert [(m.command, m.params[1]) for m in lines if m.command != "PONG"] == [("PRIVMSG", "unbatched result")]


def test_limits(tmp_path: Path) -> None:
    running = start_server(tmp_path, "--autojoin", "", "--search-max-limit", "2", "--search-per-ip", "3")
    try:
        alice = _user(running, "alice")
        room = f"#limits{next(_names)}"
        _join(alice, room)
        for i in range(4):
            _say(alice, room, f"capped {i}")
        _, found = _search(alice, "text=capped;limit=50")
        assert [m.params[1] for m in found] == ["capped 2", "capped 3"]
        _search(alice, "text=capped")
        # The address's allowance: another connection from it shares it.
        other = _user(running, "other")
        _search(other, "text=capped")
        other.send("SEARCH text=capped")
        fail = other.expect("FAIL")
        assert fail.params[:2] == ["SEARCH", "TEMPORARILY_UNAVAILABLE"]
    finally:
        stop_server(running)


def test_search_off(tmp_path: Path) -> None:
    running = start_server(tmp_path, "--autojoin", "", "--no-search")
    try:
        client = running.client()
        client.send("CAP LS 302")
        caps = client.expect("CAP")
        assert "soju.im/search" not in caps.params[-1]
        client.send("CAP END")
        client.register("alice")
        client.send("SEARCH text=x")
        assert client.expect("421").params[1] == "SEARCH"
    finally:
        stop_server(running)


# -- turns (in memory, the reads stepped by hand) --------------------------------------------------


class _SteppedReader:
    """The history readers, answering only when the test says."""

    def __init__(self, data_dir: Path) -> None:
        from salotto.storage import open_storage

        self.storage = open_storage("sqlite", data_dir, readonly=True)
        self.waiting: list[Callable[[], None]] = []

    def read(self, fn: Callable[[Storage], Any], callback: Callable[[Outcome[Any]], None]) -> None:
        outcome = Outcome.of(fn, self.storage)
        self.waiting.append(lambda: callback(outcome))

    def answer_one(self) -> None:
        self.waiting.pop(0)()


def test_searches_take_turns_and_a_connection_gone_loses_its_turn(tmp_path: Path) -> None:
    from salotto.storage import open_storage
    from salotto.storage.store import Store
    from tests.server.harness import Harness

    h = Harness(autojoin=[], search_max_running=1)
    writer = open_storage("sqlite", tmp_path)
    reader = _SteppedReader(tmp_path)
    h.server.attach_history(Store(h.server.config, writer, reader, h.server.clock()))
    users = [h.user(name) for name in ("ann", "ben", "cy")]
    for user in users:
        user.send("CAP REQ :soju.im/search batch draft/chathistory")
        user.send("JOIN #turns")
    users[0].send("PRIVMSG #turns :turn taking")
    h.server.commit_pending()
    for user in users:
        user.lines()
        user.send("SEARCH text=turn")
        user.send("PING :next")
    assert len(reader.waiting) == 1  # one search runs; the others wait for their turn
    assert users[1].lines() == []  # its PING waits behind its SEARCH
    h.server.connection_lost(users[1].client, "Connection reset by peer")
    reader.answer_one()
    assert "turn taking" in " ".join(users[0].lines())
    assert len(reader.waiting) == 1  # ben left: cy's turn
    reader.answer_one()
    lines = users[2].lines()
    assert [line.split()[1] for line in lines if "BATCH" in line or "PONG" in line][-1] == "PONG"
    assert reader.waiting == []


def test_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    running = start_server(tmp_path, "--autojoin", "", "--storage-backend", "postgresql", "--storage-url", postgres_url)
    try:
        alice, mallory = _user(running, "alice"), _user(running, "mallory")
        room, secret = f"#pg{next(_names)}", f"#pgsecret{next(_names)}"
        _join(alice, room)
        _join(alice, secret)
        _join(mallory, room)
        said = _say(alice, room, "postgres finds words")
        _say(alice, secret, "postgres hides this one")
        _say(alice, room, "nothing else")
        _, found = _search(mallory, "text=POSTGRES")
        assert [(m.params, m.tags["msgid"]) for m in found] == [([room, "postgres finds words"], said)]
        _, found = _search(alice, f"text=postgres;from={alice.nick}")
        assert [m.params[1] for m in found] == ["postgres finds words", "postgres hides this one"]
        alice.send(f"REDACT {room} {said}")
        alice.expect("REDACT")
        _, found = _search(mallory, "text=postgres")
        assert found == []
    finally:
        stop_server(running)


def test_search_turned_on_by_a_reload_waits_for_the_restart_that_builds_the_index(tmp_path: Path) -> None:
    import signal

    from tests.e2e.helpers import wait_for_log

    running = start_server(tmp_path, "--autojoin", "", config_text="search = false\n")
    try:
        (tmp_path / "salotto.toml").write_text("search = true\n")
        running.process.send_signal(signal.SIGHUP)
        line = wait_for_log(running, "restart")[0]
        assert "search changed in the config: only a restart applies that" in line
        # The index was dropped at start and nothing indexes what is said now: offering SEARCH would find
        # nothing, silently.
        client = running.client()
        client.send("CAP LS 302")
        assert "soju.im/search" not in client.expect("CAP").params[-1]
    finally:
        stop_server(running)


def test_a_search_that_waited_past_the_timeout_for_its_turn_is_answered_without_running(tmp_path: Path) -> None:
    # Slow searches (one address's allowance is enough to keep the one turn busy) must not hold the
    # connections waiting behind them, whose every later command waits for the answer, for ever.
    from salotto.storage import open_storage
    from salotto.storage.store import Store
    from tests.server.harness import Harness

    h = Harness(autojoin=[], search_max_running=1, search_timeout_ms=2000)
    writer = open_storage("sqlite", tmp_path)
    reader = _SteppedReader(tmp_path)
    h.server.attach_history(Store(h.server.config, writer, reader, h.server.clock()))
    users = [h.user(name) for name in ("ann", "ben", "cy")]
    for user in users:
        user.send("CAP REQ :soju.im/search batch draft/chathistory")
        user.send("JOIN #slow")
    users[0].send("PRIVMSG #slow :slow search")
    h.server.commit_pending()
    for user in users:
        user.lines()
    users[0].send("SEARCH text=slow")
    users[1].send("SEARCH text=slow")
    users[1].send("PING :ben-next")
    h.clock.now += 1.0
    users[2].send("SEARCH text=slow")
    users[2].send("PING :cy-next")
    h.clock.now += 1.5  # ben has waited 2.5 s, cy 1.5 s
    reader.answer_one()
    assert "slow search" in " ".join(users[0].lines())
    lines = users[1].lines()
    assert [line for line in lines if "FAIL SEARCH TEMPORARILY_UNAVAILABLE" in line] != [], lines
    assert "PONG" in lines[-1] and "BATCH" not in " ".join(lines)
    assert len(reader.waiting) == 1  # cy's turn: it had not waited that long
    reader.answer_one()
    assert "slow search" in " ".join(users[2].lines())
