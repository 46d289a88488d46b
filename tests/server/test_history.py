"""History: what is said is stored, CHATHISTORY gives it back, clients without it get a replay."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from salotto.proto import parse
from salotto.proto.message import Message
from salotto.storage import Storage, open_storage
from salotto.storage.base import HistoryMessage
from salotto.storage.journal import JOURNAL_FILENAMES, Journal, JournalError, read_journal
from salotto.storage.outcome import Outcome
from salotto.storage.store import STORE_RETRY_INTERVAL_S, Store
from tests.server.harness import Harness, User

T = TypeVar("T")


class ImmediateReader:
    """Runs a read at once on a read-only connection: the server's reader pool without its threads."""

    def __init__(self, data_dir: Path) -> None:
        self.storage = open_storage("sqlite", data_dir, readonly=True)

    def read(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
        callback(Outcome(value=fn(self.storage)))


@pytest.fixture(params=["journal", "no journal"])
def h(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    yield _harness(tmp_path, journal=request.param == "journal")


def _harness(tmp_path: Path, *, journal: bool = True, **overrides: Any) -> Harness:
    harness = Harness(**overrides)
    writer = open_storage("sqlite", tmp_path)
    server = harness.server
    history = Store(server.config, writer, ImmediateReader(tmp_path), server.clock(),
                      _journals(tmp_path) if journal else None)
    server.attach_history(history)
    return harness


def _journals(data_dir: Path) -> tuple[Journal, Journal]:
    return Journal(data_dir / JOURNAL_FILENAMES[0]), Journal(data_dir / JOURNAL_FILENAMES[1])


def _journaled(data_dir: Path) -> list[str]:
    """The texts of the messages in the journal files, oldest first."""
    messages = [m for name in JOURNAL_FILENAMES for m in read_journal(data_dir / name)]
    return [m.text for m in sorted(messages, key=lambda m: m.time)]


def _say(h: Harness, user: User, line: str) -> None:
    user.send(line)
    h.server.commit_pending()  # what the transport does before writing to a socket
    h.wall[0] += 1.0


def _batch(user: User) -> tuple[Message, list[Message]]:
    messages = user.messages()
    start = next(m for m in messages if m.command == "BATCH" and m.params[0].startswith("+"))
    ref = start.params[0][1:]
    inner = [m for m in messages if m.tags.get("batch") == ref]
    assert messages[-1].command == "BATCH" and messages[-1].params == ["-" + ref]
    return start, inner


def test_cap_and_isupport_advertise_chathistory(h: Harness) -> None:
    user = h.connect()
    user.send("CAP LS 302")
    assert "draft/chathistory" in " ".join(user.lines())
    alice = h.user("alice")
    alice.send("VERSION")
    tokens = " ".join(alice.lines())
    assert "CHATHISTORY=100" in tokens and "MSGREFTYPES=timestamp,msgid" in tokens


def test_latest_returns_what_was_said_with_its_msgid_and_time(h: Harness) -> None:
    caps = ["draft/chathistory", "batch", "server-time", "message-tags"]
    alice = h.user("alice", caps=caps)
    bob = h.user("bob", caps=caps)
    alice.lines()
    for i in range(3):
        _say(h, bob, f"PRIVMSG #lobby :message {i}")
    live = [m for m in alice.messages() if m.command == "PRIVMSG"]
    alice.send("CHATHISTORY LATEST #lobby * 10")
    start, inner = _batch(alice)
    assert start.params[1:] == ["chathistory", "#lobby"]
    assert [m.params for m in inner] == [["#lobby", f"message {i}"] for i in range(3)]
    assert [(m.tags["msgid"], m.tags["time"]) for m in inner] == [(m.tags["msgid"], m.tags["time"]) for m in live]
    assert all(m.source.startswith("bob!") for m in inner)


def test_without_batch_the_history_comes_as_plain_lines(h: Harness) -> None:
    """A client that did not ask for batch gets no BATCH and no batch tags (as Ergo does)."""
    alice = h.user("alice", caps=["draft/chathistory", "server-time"])
    bob = h.user("bob")
    alice.lines()
    for i in range(2):
        _say(h, bob, f"PRIVMSG #lobby :message {i}")
    _say(h, bob, "PRIVMSG alice :psst")
    alice.lines()
    alice.send("CHATHISTORY LATEST #lobby * 10")
    replies = alice.messages()
    assert [(m.command, m.params) for m in replies] == [("PRIVMSG", ["#lobby", f"message {i}"]) for i in range(2)]
    assert all("batch" not in m.tags and "time" in m.tags for m in replies)
    alice.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
    replies = alice.messages()
    assert sorted(m.params[1] for m in replies) == ["#lobby", "bob"]
    assert all(m.command == "CHATHISTORY" and "batch" not in m.tags for m in replies)


def test_labeled_response_without_batch_labels_nothing(h: Harness) -> None:
    """Labels need batch (a reply of several lines is one): without it a label is ignored, and the
    reply is what an unlabelled command gets, never a BATCH or half the lines labelled."""
    alice = h.user("alice", caps=["draft/chathistory", "labeled-response"])
    bob = h.user("bob")
    for i in range(2):
        _say(h, bob, f"PRIVMSG #lobby :message {i}")
    alice.lines()
    alice.send("@label=L1 CHATHISTORY LATEST #lobby * 10")
    alice.send("@label=L2 PING :x")
    replies = alice.messages()
    assert [m.command for m in replies] == ["PRIVMSG", "PRIVMSG", "PONG"]
    assert not any("label" in m.tags for m in replies)


def test_before_after_around_between(h: Harness) -> None:
    alice = h.user("alice", caps=["draft/chathistory", "batch", "server-time", "message-tags"])
    for i in range(10):
        _say(h, alice, f"PRIVMSG #lobby :m{i}")
    alice.send("CHATHISTORY LATEST #lobby * 100")
    _, inner = _batch(alice)
    ids = [m.tags["msgid"] for m in inner]
    times = [m.tags["time"] for m in inner]

    def texts(command: str) -> list[str]:
        alice.send(command)
        return [m.params[1] for m in _batch(alice)[1]]

    assert texts(f"CHATHISTORY BEFORE #lobby msgid={ids[5]} 2") == ["m3", "m4"]
    assert texts(f"CHATHISTORY AFTER #lobby msgid={ids[5]} 2") == ["m6", "m7"]
    assert texts(f"CHATHISTORY AFTER #lobby timestamp={times[7]} 10") == ["m8", "m9"]
    assert texts(f"CHATHISTORY AROUND #lobby msgid={ids[5]} 3") == ["m4", "m5", "m6"]
    assert texts(f"CHATHISTORY BETWEEN #lobby msgid={ids[1]} msgid={ids[4]} 10") == ["m2", "m3"]
    assert texts(f"CHATHISTORY LATEST #lobby msgid={ids[7]} 10") == ["m8", "m9"]
    assert texts("CHATHISTORY BEFORE #lobby msgid=unknown 10") == []


def test_limit_is_capped(tmp_path: Path) -> None:
    h = _harness(tmp_path, chathistory_max_lines=3)
    alice = h.user("alice", caps=["draft/chathistory", "batch"])
    for i in range(6):
        _say(h, alice, f"PRIVMSG #lobby :m{i}")
    alice.send("CHATHISTORY LATEST #lobby * 50")
    assert len(_batch(alice)[1]) == 3


def test_private_conversation_from_both_sides(h: Harness) -> None:
    alice = h.user("alice", caps=["draft/chathistory", "batch", "server-time"])
    bob = h.user("bob", caps=["draft/chathistory", "batch", "server-time"])
    _say(h, alice, "PRIVMSG bob :hi bob")
    _say(h, bob, "PRIVMSG alice :hi alice")
    alice.lines()
    bob.lines()
    alice.send("CHATHISTORY LATEST bob * 10")
    seen_by_alice = [(m.source.split("!")[0], m.params) for m in _batch(alice)[1]]
    assert seen_by_alice == [("alice", ["bob", "hi bob"]), ("bob", ["alice", "hi alice"])]
    bob.send("CHATHISTORY LATEST alice * 10")
    seen_by_bob = [(m.source.split("!")[0], m.params) for m in _batch(bob)[1]]
    assert seen_by_bob == [("alice", ["bob", "hi bob"]), ("bob", ["alice", "hi alice"])]
    carol = h.user("carol", caps=["draft/chathistory", "batch"])
    carol.send("CHATHISTORY LATEST bob * 10")
    assert _batch(carol)[1] == [], "a third party has no conversation with bob"


def test_channel_history_needs_membership_and_bad_requests_fail(h: Harness) -> None:
    alice = h.user("alice")
    alice.send("JOIN #secret")
    _say(h, alice, "PRIVMSG #secret :hidden")
    bob = h.user("bob")
    bob.send("CHATHISTORY LATEST #secret * 10")
    bob.send("CHATHISTORY LATEST #lobby * many")
    bob.send("CHATHISTORY SOMETIME #lobby * 10")
    bob.send("CHATHISTORY BEFORE #lobby")
    bob.send("CHATHISTORY BEFORE #lobby timestamp=yesterday 10")
    codes = [(m.command, m.params[1]) for m in bob.messages()]
    assert codes == [("FAIL", "INVALID_TARGET"), ("FAIL", "INVALID_PARAMS"), ("FAIL", "INVALID_PARAMS"),
                     ("FAIL", "NEED_MORE_PARAMS"), ("FAIL", "INVALID_PARAMS")]


def test_labeled_chathistory_puts_the_label_on_the_batch(h: Harness) -> None:
    alice = h.user("alice", caps=["draft/chathistory", "batch", "labeled-response"])
    _say(h, alice, "PRIVMSG #lobby :x")
    alice.send("@label=q1 CHATHISTORY LATEST #lobby * 5")
    start, inner = _batch(alice)
    assert start.tags == {"label": "q1"} and len(inner) == 1


def test_typing_notices_are_not_stored_but_other_tagmsgs_are(h: Harness) -> None:
    alice = h.user("alice", caps=["draft/chathistory", "batch", "message-tags"])
    _say(h, alice, "@+typing=active TAGMSG #lobby")
    _say(h, alice, "@+draft/react=👍 TAGMSG #lobby")
    alice.send("CHATHISTORY LATEST #lobby * 5")
    inner = _batch(alice)[1]
    assert [(m.command, m.tags.get("+draft/react")) for m in inner] == [("TAGMSG", "👍")]


def test_replay_on_join_for_clients_without_chathistory(tmp_path: Path) -> None:
    h = _harness(tmp_path, history_replay_lines=2)
    alice = h.user("alice")
    for i in range(3):
        _say(h, alice, f"PRIVMSG #lobby :m{i}")
    plain = h.user("plain")
    replayed = [m for m in (parse(line) for line in plain.conn.data.decode().split("\r\n") if line)
                if m.command == "PRIVMSG"]
    assert [m.params[1][-2:] for m in replayed] == ["m1", "m2"]
    assert replayed[0].params[1].startswith("[20"), "without server-time the text says when it was said"
    timed = h.user("timed", caps=["server-time", "batch"])
    lines = [parse(line) for line in timed.conn.data.decode().split("\r\n") if line]
    batch = [m for m in lines if m.command == "PRIVMSG"]
    assert [m.params[1] for m in batch] == ["m1", "m2"] and all("time" in m.tags for m in batch)
    modern = h.user("modern", caps=["draft/chathistory", "batch"])
    received = [parse(line).command for line in modern.conn.data.decode().split("\r\n") if line]
    assert "PRIVMSG" not in received, "chathistory clients ask for what they want"


def test_retention_keeps_the_newest_per_target(tmp_path: Path) -> None:
    h = _harness(tmp_path, history_max_per_target=2, history_max_age_s=0)
    alice = h.user("alice", caps=["draft/chathistory", "batch", "server-time"])
    for i in range(5):
        _say(h, alice, f"PRIVMSG #lobby :m{i}")
    h.server.tick()
    alice.send("CHATHISTORY LATEST #lobby * 10")
    assert [m.params[1] for m in _batch(alice)[1]] == ["m3", "m4"]


def test_nothing_is_stored_when_history_is_off(tmp_path: Path) -> None:
    h = Harness(history_enabled=False)
    alice = h.user("alice")
    alice.send("CHATHISTORY LATEST #lobby * 5")
    assert [(m.command, m.params[1]) for m in alice.messages()] == [("FAIL", "MESSAGE_ERROR")]
    user = h.connect()
    user.send("CAP LS 302")
    assert "chathistory" not in " ".join(user.lines())


def test_a_new_holder_of_a_nick_cannot_read_the_old_ones_private_history(h: Harness) -> None:
    alice = h.user("alice", caps=["draft/chathistory", "batch", "server-time"])
    h.user("bob")
    _say(h, alice, "PRIVMSG bob :my password is hunter2")
    alice.send("QUIT")
    h.wall[0] += 10
    impostor = h.user("alice", caps=["draft/chathistory", "batch", "server-time"])
    impostor.send("CHATHISTORY LATEST bob * 10")
    assert _batch(impostor)[1] == []
    impostor.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
    assert [m for m in impostor.messages() if m.command == "CHATHISTORY"] == []


def test_a_recreated_channel_does_not_show_the_old_ones_history(h: Harness) -> None:
    alice = h.user("alice")
    alice.send("JOIN #secret")
    _say(h, alice, "PRIVMSG #secret :launch codes")
    alice.send("PART #secret")
    h.wall[0] += 10
    mallory = h.user("mallory", caps=["draft/chathistory", "batch", "server-time"])
    mallory.send("JOIN #secret")
    mallory.lines()
    mallory.send("CHATHISTORY LATEST #secret * 10")
    assert _batch(mallory)[1] == []
    plain = h.user("plain")
    plain.send("JOIN #secret")
    assert "launch codes" not in " ".join(plain.lines()), "no replay of the old channel either"


def test_the_lobby_keeps_its_history_for_newcomers(h: Harness) -> None:
    alice = h.user("alice")
    _say(h, alice, "PRIVMSG #lobby :welcome")
    h.wall[0] += 10
    later = h.user("later", caps=["draft/chathistory", "batch", "server-time"])
    later.send("CHATHISTORY LATEST #lobby * 10")
    assert [m.params[1] for m in _batch(later)[1]] == ["welcome"]


def test_a_label_with_line_breaks_cannot_inject_lines(h: Harness) -> None:
    alice = h.user("alice", caps=["draft/chathistory", "batch", "labeled-response"])
    alice.send("@label=a\\sb\\r\\nPRIVMSG\\sx CHATHISTORY LATEST #lobby * 5")
    lines = alice.lines()
    assert lines[0].startswith("@label=a\\sb\\r\\nPRIVMSG\\sx :salotto.local BATCH +")
    assert all(parse(line).command in ("BATCH",) for line in lines)


def test_a_replayed_action_stays_an_action(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = h.user("alice")
    _say(h, alice, "PRIVMSG #lobby :\x01ACTION waves\x01")
    plain = h.user("plain")
    replayed = [parse(line) for line in plain.conn.data.decode().split("\r\n") if "ACTION" in line]
    assert replayed[0].params[1].startswith("\x01ACTION [20") and replayed[0].params[1].endswith("waves\x01")


# -- the journal: durable at once, in the database in batches -------------------------------------


def _stored(tmp_path: Path) -> list[str]:
    """The texts of #lobby's messages in the database itself (not the journal), oldest first."""
    storage = open_storage("sqlite", tmp_path, readonly=True)
    try:
        return [m.text for m in storage.latest("#lobby", 100)]
    finally:
        storage.close()


def test_messages_wait_in_the_journal_until_the_store_interval(tmp_path: Path) -> None:
    h = _harness(tmp_path, history_store_interval_s=5.0)
    history = h.server.history
    assert history is not None
    alice = h.user("alice")
    _say(h, alice, "PRIVMSG #lobby :first")
    history.store_if_due(h.clock.now)  # what the flusher does after each pass: the first store is due
    assert _stored(tmp_path) == ["first"]
    _say(h, alice, "PRIVMSG #lobby :second")
    _say(h, alice, "PRIVMSG #lobby :third")
    assert _journaled(tmp_path) == ["second", "third"]
    h.clock.now += 4.0
    history.store_if_due(h.clock.now)
    assert _stored(tmp_path) == ["first"]
    h.clock.now += 1.5
    h.server.tick()  # the timer stores too: the journal never keeps messages long when traffic stops
    assert _stored(tmp_path) == ["first", "second", "third"]
    assert _journaled(tmp_path) == []
    assert [(tmp_path / name).stat().st_size for name in JOURNAL_FILENAMES] == [0, 0]


def test_history_store_max_messages_stores_before_the_interval(tmp_path: Path) -> None:
    h = _harness(tmp_path, history_store_interval_s=3600.0, history_store_max_messages=3)
    history = h.server.history
    assert history is not None
    alice = h.user("alice")
    for i in range(3):
        _say(h, alice, f"PRIVMSG #lobby :m{i}")
        history.store_if_due(h.clock.now)
    assert _stored(tmp_path) == ["m0"]
    _say(h, alice, "PRIVMSG #lobby :m3")
    history.store_if_due(h.clock.now)
    assert _stored(tmp_path) == ["m0", "m1", "m2", "m3"]


def test_a_read_sees_what_still_waits_in_the_journal(tmp_path: Path) -> None:
    h = _harness(tmp_path, history_store_interval_s=3600.0)
    alice = h.user("alice", caps=["draft/chathistory", "batch", "server-time"])
    _say(h, alice, "PRIVMSG #lobby :not stored yet")
    assert _stored(tmp_path) == []
    alice.lines()
    alice.send("CHATHISTORY LATEST #lobby * 10")
    assert [m.params[1] for m in _batch(alice)[1]] == ["not stored yet"]


def test_recover_stores_what_a_crash_left_in_the_journal_once(tmp_path: Path) -> None:
    messages = [HistoryMessage(f"0badcafe-{n:x}", "#lobby", 1_700_000_000.0 + n, "a!u@h", None, "PRIVMSG", f"m{n}")
                for n in range(1, 6)]  # fmt: skip
    writer = open_storage("sqlite", tmp_path)
    journals = _journals(tmp_path)
    journals[0].append(messages[:3])  # the batch being stored when the process died...
    journals[1].append(messages[3:])  # ...and what came after it
    writer.append_messages(messages[:2])  # stored before the crash, but the journal was not emptied yet
    harness = Harness()
    history = Store(harness.server.config, writer, ImmediateReader(tmp_path), 0.0, journals)
    assert history.recover() == 3
    assert _stored(tmp_path) == ["m1", "m2", "m3", "m4", "m5"]
    assert _journaled(tmp_path) == []
    assert history.recover() == 0


def test_a_journal_that_cannot_be_written_stores_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full to fill")
    harness = Harness(history_store_interval_s=3600.0)
    server = harness.server
    writer = open_storage("sqlite", tmp_path)
    server.attach_history(Store(server.config, writer, ImmediateReader(tmp_path), server.clock(),
                                  (Journal(Path("/dev/full")), Journal(tmp_path / "spare"))))  # a full disk
    alice = harness.user("alice")
    _say(harness, alice, "PRIVMSG #lobby :kept anyway")
    assert _stored(tmp_path) == ["kept anyway"]
    assert "history journal: cannot write /dev/full" in caplog.text
    server.history.close()


def test_a_storer_thread_stores_in_order_and_a_read_waits_for_it(tmp_path: Path) -> None:
    """As in the server: the database work runs on a thread of its own while passes go on."""
    harness = Harness(history_store_interval_s=0.0)
    server = harness.server
    storer = ThreadPoolExecutor(1)
    writer = open_storage("sqlite", tmp_path)
    history = Store(server.config, writer, ImmediateReader(tmp_path), server.clock(), _journals(tmp_path),
                      storer)
    server.attach_history(history)
    alice = harness.user("alice", caps=["draft/chathistory", "batch", "server-time"])
    for i in range(200):
        _say(harness, alice, f"PRIVMSG #lobby :m{i}")
        history.store_if_due(harness.clock.now)  # hands a batch over whenever the last one is done
    alice.lines()
    alice.send("CHATHISTORY LATEST #lobby * 100")  # the read is the storer's job after the last batch
    history.close()  # waits for the storer's jobs
    assert [m.params[1] for m in _batch(alice)[1]] == [f"m{i}" for i in range(100, 200)]
    assert _stored(tmp_path)[-1] == "m199" and len(_stored(tmp_path)) == 100
    assert _journaled(tmp_path) == []
    assert history.written == 200


class StepStorer:
    """A storer that runs its jobs when the test says so: the server's thread runs them whenever."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[[], Any], Future[Any]]] = []
        self.holding = True  # False: run each job at once

    def submit(self, fn: Callable[[], T], /) -> Future[T]:
        future: Future[T] = Future()
        self.jobs.append((fn, future))
        if not self.holding:
            self.run()
        return future

    def run(self) -> None:
        while self.jobs:
            fn, future = self.jobs.pop(0)
            future.set_result(fn())

    def shutdown(self, wait: bool = True) -> None:
        self.run()


def test_the_tick_never_hands_over_what_this_pass_has_not_journaled(tmp_path: Path) -> None:
    """Timers can run between a pass's handlers and its flush: what the pass recorded must still reach
    the journal before the pass's output leaves, whatever the storer is doing."""
    harness = Harness(history_store_interval_s=0.0)
    server = harness.server
    storer = StepStorer()
    history = Store(server.config, open_storage("sqlite", tmp_path), ImmediateReader(tmp_path), server.clock(),
                      _journals(tmp_path), storer)
    server.attach_history(history)
    # With chathistory, no replay on join: a read the held storer would keep alice's next lines waiting for.
    alice = harness.user("alice", caps=["draft/chathistory"])
    _say(harness, alice, "PRIVMSG #lobby :journaled")
    alice.send("PRIVMSG #lobby :recorded in this pass")  # no commit_pending yet: the pass goes on
    server.tick()  # hands "journaled" to the storer, which has not run yet
    server.commit_pending()  # what the transport does before this pass's output leaves
    assert _journaled(tmp_path) == ["journaled", "recorded in this pass"]
    storer.holding = False
    storer.run()
    history.close()
    assert _stored(tmp_path) == ["journaled", "recorded in this pass"]


def test_one_bad_message_does_not_take_its_batch_with_it(tmp_path: Path) -> None:
    harness = Harness()
    writer = open_storage("sqlite", tmp_path)
    history = Store(harness.server.config, writer, ImmediateReader(tmp_path), 0.0, _journals(tmp_path))
    good = [HistoryMessage(f"0badcafe-{n:x}", "#lobby", 1_700_000_000.0 + n, "a!u@h", None, "PRIVMSG", f"m{n}")
            for n in (1, 2)]  # fmt: skip
    bad = HistoryMessage("0badcafe-9", "#lobby", 1_700_000_000.5, "a!u@h", None, "PRIVMSG", "?", parties=("a", "b"))
    for message in (good[0], bad, good[1]):  # a private message whose target is not its conversation's
        history.record(message)
    history.commit()
    history.store_if_due(0.0)
    assert _stored(tmp_path) == ["m1", "m2"]
    assert (history.written, history.failed_writes) == (2, 1)
    assert _journaled(tmp_path) == []


def test_a_database_that_refuses_writes_gets_the_batch_again_then_it_is_given_up(tmp_path: Path) -> None:
    """Offered again every STORE_RETRY_INTERVAL_S (not every pass), for history_store_retry_s."""
    open_storage("sqlite", tmp_path).close()  # the schema
    refusing = open_storage("sqlite", tmp_path, readonly=True)  # "attempt to write a readonly database"
    harness = Harness(history_store_interval_s=0.0, history_store_retry_s=10.0)
    history = Store(harness.server.config, refusing, ImmediateReader(tmp_path), 0.0, _journals(tmp_path))
    attempts = 0
    real = refusing.append_messages

    def counted(batch: Any) -> None:
        nonlocal attempts
        attempts += 1
        real(batch)

    refusing.append_messages = counted  # type: ignore[method-assign]
    history.record(HistoryMessage("0badcafe-1", "#lobby", 1_700_000_000.0, "a!u@h", None, "PRIVMSG", "kept"))
    history.commit()
    now = 0.0
    while now < 9.99:  # a pass every 10 ms for almost 10 s
        history.store_if_due(now)
        assert history.failed_writes == 0
        now += 0.01
    assert _journaled(tmp_path) == ["kept"]  # the journal keeps it for a restart meanwhile
    assert 10 <= attempts <= 11 == int(10 / STORE_RETRY_INTERVAL_S) + 1  # about one a second, of 999 passes
    history.store_if_due(11.0)  # the next attempt after history_store_retry_s...
    history.store_if_due(11.01)  # ...its outcome seen: given up
    assert history.failed_writes == 1


def test_recover_keeps_the_journals_when_the_database_refuses_them(tmp_path: Path) -> None:
    open_storage("sqlite", tmp_path).close()
    journals = _journals(tmp_path)
    journals[0].append([HistoryMessage("0badcafe-1", "#lobby", 1_700_000_000.0, "a!u@h", None, "PRIVMSG", "m1")])
    history = Store(Harness().server.config, open_storage("sqlite", tmp_path, readonly=True),
                      ImmediateReader(tmp_path), 0.0, journals)
    with pytest.raises(JournalError, match=r"cannot store the 1 messages of .*history-0\.journal"):
        history.recover()
    assert _journaled(tmp_path) == ["m1"]


def test_a_second_server_cannot_take_the_journals(tmp_path: Path) -> None:
    first = _journals(tmp_path)
    with pytest.raises(JournalError, match="in use by another salotto process"):
        Journal(tmp_path / JOURNAL_FILENAMES[0])
    for journal in first:
        journal.close()
    Journal(tmp_path / JOURNAL_FILENAMES[0]).close()  # free again once the first closed it


def test_a_read_sees_what_the_same_pass_recorded(h: Harness) -> None:
    alice = h.user("alice", caps=["draft/chathistory", "batch", "server-time"])
    alice.lines()
    alice.send("PRIVMSG #lobby :said just now")  # no flush between the two lines: one loop pass
    alice.send("CHATHISTORY LATEST #lobby * 10")
    assert [m.params[1] for m in _batch(alice)[1]] == ["said just now"]


# -- private conversations: whose they are, and the names that lead to them -------------------------

_ALL_TIME = "timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z"
_CAPS = ["draft/chathistory", "batch", "server-time"]


def _texts(user: User) -> list[tuple[str, str, str]]:
    """(sender nick, target, text) of the history batch ``user`` got."""
    return [(m.source.split("!")[0], m.params[0], m.params[1]) for m in _batch(user)[1]]  # type: ignore[union-attr]


def _targets(user: User) -> list[tuple[str, str]]:
    user.send(f"CHATHISTORY TARGETS {_ALL_TIME} 50")
    return [(m.params[1], m.params[2]) for m in _batch(user)[1]]


def test_the_next_holder_of_a_guests_nick_reads_nothing_of_its_conversations(h: Harness) -> None:
    """Neither logged in: alice and bob's conversation belongs to their connections. eve, connected before
    it started, takes bob's nick once bob left: she reads none of it, and sees no such conversation."""
    eve = h.user("eve", caps=_CAPS)
    alice = h.user("alice", caps=_CAPS)
    bob = h.user("bob", caps=_CAPS)
    _say(h, alice, "PRIVMSG bob :my password is hunter2")
    _say(h, bob, "PRIVMSG alice :mine is swordfish")
    bob.send("QUIT")
    alice.lines()
    alice.send("CHATHISTORY LATEST bob * 10")  # bob left: his nick still leads alice to their conversation
    assert [text for _, _, text in _texts(alice)] == ["my password is hunter2", "mine is swordfish"]
    assert [name for name, _ in _targets(alice)] == ["bob"]
    eve.send("NICK bob")
    eve.lines()
    eve.send("CHATHISTORY LATEST alice * 10")
    assert _texts(eve) == []
    assert _targets(eve) == []
    alice.send("CHATHISTORY LATEST bob * 10")  # "bob" is eve now: a conversation that has not started
    assert _texts(alice) == []
    assert _targets(alice) == []  # and the old one is listed under no name that would mislead


def test_a_guest_who_renames_keeps_the_conversation(h: Harness) -> None:
    alice = h.user("alice", caps=_CAPS)
    bob = h.user("bob", caps=_CAPS)
    _say(h, alice, "PRIVMSG bob :one")
    bob.send("NICK bobby")
    _say(h, bob, "PRIVMSG alice :two")
    alice.lines()
    bob.lines()
    alice.send("CHATHISTORY LATEST bobby * 10")
    assert [text for _, _, text in _texts(alice)] == ["one", "two"]
    bob.send("CHATHISTORY LATEST alice * 10")
    assert [text for _, _, text in _texts(bob)] == ["one", "two"]
    assert [name for name, _ in _targets(alice)] == ["bobby"]


def _account(h: Harness, nick: str, account: str) -> User:
    """A client logged in to ``account`` (registered now, under that nick), then renamed to ``nick``."""
    user = h.user(account, caps=_CAPS)
    user.send(f"REGISTER {account} * :a-long-password")
    assert any(" 900 " in line for line in user.lines())
    if nick != account:
        user.send(f"NICK {nick}")
    user.lines()
    return user


def test_private_history_is_the_conversation_of_the_two_accounts_whatever_their_nicks(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    h.attach_store(tmp_path / "accounts")
    alice = _account(h, "ali", "alice")
    bob = _account(h, "bobby", "bob")
    _say(h, alice, "PRIVMSG bobby :hello bob")
    _say(h, bob, "PRIVMSG ali :hello alice")
    _say(h, alice, "PRIVMSG ali :a note to myself")
    alice.lines()
    bob.lines()
    # Either side, both directions, in order; each line addressed as the asker sees it.
    alice.send("CHATHISTORY LATEST bobby * 10")
    assert _texts(alice) == [("ali", "bobby", "hello bob"), ("bobby", "ali", "hello alice")]
    bob.send("CHATHISTORY LATEST ali * 10")
    assert _texts(bob) == [("ali", "bobby", "hello bob"), ("bobby", "ali", "hello alice")]
    alice.send("CHATHISTORY LATEST ali * 10")  # messages to oneself, once each
    assert _texts(alice) == [("ali", "ali", "a note to myself")]
    # bob leaves: his account's name leads to the conversation, and TARGETS lists that name, newest last,
    # with the bare time of the latest message (draft/chathistory), and the lobby among them.
    bob.send("QUIT")
    alice.send("CHATHISTORY LATEST bob * 10")
    assert [text for _, _, text in _texts(alice)] == ["hello bob", "hello alice"]
    targets = _targets(alice)
    assert [name for name, _ in targets] == ["bob", "alice"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp) for _, stamp in targets)
    assert targets[0][1] < targets[1][1]
    # Back on another connection, under yet another nick: the account's conversations are still there.
    again = h.user("alice3", caps=_CAPS)
    again.send("PRIVMSG NickServ :IDENTIFY alice a-long-password")
    again.lines()
    again.send("CHATHISTORY LATEST bob * 10")
    assert [text for _, _, text in _texts(again)] == ["hello bob", "hello alice"]


def test_a_guest_holding_a_registered_nick_reads_nothing_under_it(tmp_path: Path) -> None:
    h = _harness(tmp_path, nick_protection_grace_s=60)
    h.attach_store(tmp_path / "accounts")
    bob = _account(h, "bob", "bob")
    carol = h.user("carol", caps=_CAPS)
    _say(h, carol, "PRIVMSG bob :for bob only")
    bob.send("QUIT")
    impostor = h.user("bob", caps=_CAPS)  # not logged in: the grace period runs
    impostor.lines()
    impostor.send("CHATHISTORY LATEST carol * 10")
    assert [m.command for m in impostor.messages()] == ["FAIL"]


def test_departed_guests_are_remembered_as_long_as_whowas_remembers_nicks(tmp_path: Path) -> None:
    """The server keeps a departed guest's nick only for the last whowas_max_entries departures: memory
    stays bounded whoever comes and goes, and the older conversations are no longer reachable by name."""
    h = _harness(tmp_path, whowas_max_entries=2)
    alice = h.user("alice", caps=_CAPS)
    for i in range(5):
        guest = h.user(f"guest{i}")
        _say(h, guest, f"PRIVMSG alice :from guest {i}")
        guest.send("QUIT")
    assert len(h.server.parties) == 3  # alice, connected, and the last two who left
    assert list(h.server.parties.known) == [alice.client]  # the departed guests' connections are not held
    alice.lines()
    alice.send("CHATHISTORY LATEST guest4 * 10")
    assert [text for _, _, text in _texts(alice)] == ["from guest 4"]
    alice.send("CHATHISTORY LATEST guest0 * 10")
    assert _texts(alice) == []
    assert [name for name, _ in _targets(alice)] == ["guest3", "guest4"]


# -- draft/multiline: one stored message, given back as it was sent -------------------------------

MULTILINE_CAPS = ["draft/multiline", "batch", "message-tags"]


def _say_multiline(h: Harness, user: User, target: str, lines: list[str]) -> None:
    """A multiline batch from ``user``: a line starting with "+" continues the one before."""
    user.send(f"@+draft/reply=m0 BATCH +ml draft/multiline {target}")
    for line in lines:
        concat = ";draft/multiline-concat" if line.startswith("+") else ""
        user.send(f"@batch=ml{concat} PRIVMSG {target} :{line.removeprefix('+')}")
    user.send("BATCH -ml")
    h.server.commit_pending()
    h.wall[0] += 1.0


def test_a_multiline_message_is_stored_once_and_replayed_as_one_batch(h: Harness) -> None:
    alice = h.user("alice", caps=MULTILINE_CAPS)
    modern = h.user("modern", caps=["draft/chathistory", "server-time", *MULTILINE_CAPS])
    _say(h, alice, "PRIVMSG #lobby :before")
    _say_multiline(h, alice, "#lobby", ["hello", "", "how is ", "+everyone?"])
    _say(h, alice, "PRIVMSG #lobby :after")
    live_msgid = next(m for m in modern.messages() if m.command == "BATCH" and "msgid" in m.tags).tags["msgid"]
    modern.send("CHATHISTORY LATEST #lobby * 2")  # two messages: the batch counts as one
    messages = modern.messages()
    outer = messages[0]
    outer_ref = outer.params[0][1:]
    assert outer.params[1:] == ["chathistory", "#lobby"]
    in_outer = [m for m in messages if m.tags.get("batch") == outer_ref]
    assert [m.command for m in in_outer] == ["BATCH", "BATCH", "PRIVMSG"], "the multiline batch nests in it"
    opening, closing = in_outer[0], in_outer[1]
    assert opening.params[1:] == ["draft/multiline", "#lobby"] and closing.params == ["-" + opening.params[0][1:]]
    assert opening.tags["msgid"] == live_msgid and opening.tags["+draft/reply"] == "m0" and "time" in opening.tags
    assert "salotto/multiline-concat" not in opening.tags, "how it is stored stays the server's"
    inner = [m for m in messages if m.tags.get("batch") == opening.params[0][1:]]
    assert [(m.params[1], "draft/multiline-concat" in m.tags) for m in inner] == [
        ("hello", False), ("", False), ("how is ", False), ("everyone?", True)]
    assert in_outer[2].params[1] == "after"


def test_a_multiline_message_in_history_comes_as_lines_without_the_cap(h: Harness) -> None:
    alice = h.user("alice", caps=MULTILINE_CAPS)
    reader = h.user("reader", caps=["draft/chathistory", "batch", "message-tags", "server-time"])
    _say_multiline(h, alice, "#lobby", ["hello", "", "how is ", "+everyone?"])
    reader.lines()
    reader.send("CHATHISTORY LATEST #lobby * 10")
    inner = _batch(reader)[1]
    assert [m.params[1] for m in inner] == ["hello", "how is ", "everyone?"], "no blank line, concat as sent"
    assert ["msgid" in m.tags for m in inner] == [True, False, False]
    assert [m.tags.get("+draft/reply") for m in inner] == ["m0", None, None]


def test_a_private_multiline_message_is_in_both_sides_history(h: Harness) -> None:
    alice = h.user("alice", caps=["draft/chathistory", *MULTILINE_CAPS])
    bob = h.user("bob", caps=["draft/chathistory", "batch", "server-time"])
    _say_multiline(h, alice, "bob", ["one", "two"])
    bob.lines()
    bob.send("CHATHISTORY LATEST alice * 10")
    assert [(m.command, m.params) for m in _batch(bob)[1]] == [("PRIVMSG", ["bob", "one"]), ("PRIVMSG", ["bob", "two"])]
    alice.lines()
    alice.send("CHATHISTORY LATEST bob * 10")
    in_outer = _batch(alice)[1]
    assert [m.command for m in in_outer] == ["BATCH", "BATCH"] and in_outer[0].params[1:] == ["draft/multiline", "bob"]


def test_the_replay_on_join_gives_a_multiline_message_as_lines(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = h.user("alice", caps=MULTILINE_CAPS)
    _say_multiline(h, alice, "#lobby", ["first line", "second ", "+line"])
    plain = h.user("plain")
    replayed = [parse(line) for line in plain.conn.data.decode().split("\r\n") if " PRIVMSG " in line]
    texts = [m.params[1] for m in replayed]
    assert texts[0].startswith("[20") and texts[0].endswith("] first line"), "when it was said, once"
    assert texts[1:] == ["second ", "line"]
    capable = h.user("capable", caps=[*MULTILINE_CAPS, "server-time"])
    lines = [parse(line) for line in capable.conn.data.decode().split("\r\n") if line]
    opening = next(m for m in lines if m.command == "BATCH" and m.params[1:2] == ["draft/multiline"])
    inner = [m for m in lines if m.tags.get("batch") == opening.params[0][1:]]
    assert [m.params[1] for m in inner] == ["first line", "second ", "line"]
    assert opening.tags.get("batch"), "inside the replay's chathistory batch"


def test_a_multiline_message_is_one_row_in_the_database(tmp_path: Path) -> None:
    h = _harness(tmp_path, history_store_interval_s=0)
    alice = h.user("alice", caps=MULTILINE_CAPS)
    _say_multiline(h, alice, "#lobby", ["hello", "", "how is ", "+everyone?"])
    h.clock.now += 1
    h.server.tick()
    storage = open_storage("sqlite", tmp_path, readonly=True)
    try:
        stored = storage.latest("#lobby", 10)
    finally:
        storage.close()
    assert [(m.text, dict(m.tags)) for m in stored] == [
        ("hello\n\nhow is everyone?", {"+draft/reply": "m0", "salotto/multiline-concat": "14"})]


def test_a_history_answer_stays_within_half_the_send_queue(tmp_path: Path) -> None:
    """Multiline messages make a hundred messages far larger than a hundred lines: an answer that would fill
    the reader's send queue (and have it disconnected) holds fewer, and the reader pages on."""
    h = _harness(tmp_path, max_sendq_bytes=8192)
    alice = h.user("alice", caps=MULTILINE_CAPS)
    for n in range(4):
        _say_multiline(h, alice, "#lobby", [f"message {n}", "x" * 400, "y" * 400, "z" * 400])
    reader = h.user("reader", caps=["draft/chathistory", "batch", "message-tags", "server-time"])
    reader.send("CHATHISTORY LATEST #lobby * 10")
    newest = _batch(reader)[1]
    firsts = [m for m in newest if m.params[1].startswith("message")]
    assert [m.params[1] for m in firsts] == ["message 2", "message 3"], "the newest that fit in 4096 bytes"
    reader.send(f"CHATHISTORY BEFORE #lobby msgid={firsts[0].tags['msgid']} 10")
    older = [m.params[1] for m in _batch(reader)[1] if m.params[1].startswith("message")]
    assert older == ["message 0", "message 1"]
    reader.send(f"CHATHISTORY AFTER #lobby msgid={newest[0].tags['msgid']} 10")
    after = [m.params[1] for m in _batch(reader)[1] if m.params[1].startswith("message")]
    assert after == ["message 3"]
    reader.send("CHATHISTORY AFTER #lobby timestamp=2000-01-01T00:00:00.000Z 10")
    oldest = [m.params[1] for m in _batch(reader)[1] if m.params[1].startswith("message")]
    assert oldest == ["message 0", "message 1"], "AFTER keeps the oldest"


def test_an_answer_cut_to_size_keeps_the_end_nearest_the_first_reference_of_between(tmp_path: Path) -> None:
    h = _harness(tmp_path, max_sendq_bytes=1024)
    alice = h.user("alice", caps=["batch", "message-tags", "server-time", "draft/chathistory"])
    for i in range(10):
        _say(h, alice, f"PRIVMSG #lobby :{i:02d} " + "x" * 80)
    alice.lines()
    early, late = "timestamp=2000-01-01T00:00:00.000Z", "timestamp=2100-01-01T00:00:00.000Z"
    alice.send(f"CHATHISTORY BETWEEN #lobby {early} {late} 100")  # paging forward: the oldest first
    forward = [m.params[1][:2] for m in alice.messages() if m.command == "PRIVMSG"]
    alice.send(f"CHATHISTORY BETWEEN #lobby {late} {early} 100")  # paging back: the newest
    back = [m.params[1][:2] for m in alice.messages() if m.command == "PRIVMSG"]
    assert 1 < len(forward) < 10 and forward[0] == "00" and forward == sorted(forward)
    assert 1 < len(back) < 10 and back[-1] == "09" and back == sorted(back)
