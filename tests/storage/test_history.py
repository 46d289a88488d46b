"""draft/chathistory queries against a populated store (https://ircv3.net/specs/extensions/chathistory).

The fixture history of ``#chan``: 50 messages ``m0000``..``m0049``, two per second from t=1000 (so
``m0010`` and ``m0011`` share t=1005), interleaved with messages of ``#other`` at the same times.
Every selector is exclusive except AROUND's own message; results are ascending.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import pytest

from salotto.storage import AlreadyExists, HistoryMessage, Ref, Storage, TargetListing, conversation_key

from .conftest import message

N = 50
SERVER_PREFIX = "5a1077c0"  # msgids of the form salotto's server gives: PREFIX-COUNTER, in hex


@pytest.fixture
def history(storage: Storage) -> Storage:
    batch: list[HistoryMessage] = []
    for i in range(N):
        batch.append(message(i))
        batch.append(message(i, "#other", msgid=f"o{i:04d}"))
    storage.append_messages(batch)
    return storage


def ids(messages: list[HistoryMessage]) -> list[str]:
    return [m.msgid for m in messages]


def span(first: int, last: int) -> list[str]:
    return [f"m{i:04d}" for i in range(first, last + 1)]


def mid(i: int) -> Ref:
    return Ref.by_msgid(f"m{i:04d}")


def at(t: float) -> Ref:
    return Ref.by_time(t)


def test_round_trip_of_every_field(storage: Storage) -> None:
    stored = HistoryMessage(
        "abc-1", "#chan", 1700000000.123, "alice!a@host", "Alice", "TAGMSG", "",
        tags={"+typing": "active", "+draft/reply": "x;y z"},
    )
    storage.append_messages([stored, message(1, account="bob", command="NOTICE", text="ünïcode ✓")])
    got = storage.get_message("abc-1")
    assert got == stored
    notice = storage.get_message("m0001")
    assert notice is not None and (notice.account, notice.command, notice.text) == ("bob", "NOTICE", "ünïcode ✓")
    assert storage.get_message("nope") is None


def test_a_batch_of_every_shape_of_message_comes_back_whole(storage: Storage) -> None:
    # Server-form msgids or others, with or without an account, with or without client tags: every
    # combination in one batch, interleaved (the SQLite backend inserts each combination separately).
    sent = [
        HistoryMessage(
            f"5a1077c0-{i + 1:x}" if i & 1 else f"imported-{i}", "#chan", 1000.0 + i, f"nick{i}!u@h",
            f"acct{i}" if i & 2 else None, "PRIVMSG", f"line {i}", {"+draft/reply": f"r{i}"} if i & 4 else {},
        )
        for i in range(24)
    ]
    storage.append_messages(sent)
    assert storage.latest("#chan", 100) == sent
    assert storage.get_message("5a1077c0-18") == sent[23]
    assert storage.get_message("imported-22") == sent[22]


@pytest.mark.parametrize("first", [1, 0xFFF0, 0x3FFFFFF0])
def test_a_batch_of_the_servers_channel_messages_comes_back_whole(storage: Storage, first: int) -> None:
    """The common batch, a run's channel messages (the SQLite backend takes them column by column):
    with and without an account, PRIVMSG, NOTICE and TAGMSG interleaved, counters that grow a digit in
    the batch (or reach the last the stored form has), times of one millisecond and of the next."""
    sent = [
        HistoryMessage(
            f"{SERVER_PREFIX}-{first + i:x}", "#chan", 1700000000.5 + (i // 3) / 1000, f"nick{i}!u@h",
            f"acct{i}" if i % 3 == 1 else None, ("PRIVMSG", "PRIVMSG", "NOTICE", "TAGMSG")[i % 4],
            "" if i % 4 == 3 else f"line {i}",
        )
        for i in range(40 if first < 0x3FFFFFF0 else 15)
    ]
    storage.append_messages(sent)
    assert storage.latest("#chan", 100) == sent
    assert storage.get_message(sent[-1].msgid) == sent[-1]
    # A batch of two runs of the server, and one with a msgid that only looks like the server's.
    again = [message(100 + i, msgid=f"0000beef-{i + 1:x}") for i in range(3)] + [message(103, msgid="0000beef-04")]
    storage.append_messages([*again[:2], message(104, msgid=f"{SERVER_PREFIX}-{0x40000:x}")])
    storage.append_messages(again[2:])
    for m in again:
        assert storage.get_message(m.msgid) == m


def test_time_keeps_millisecond_precision(storage: Storage) -> None:
    storage.append_messages([message(0, time=1700000000.1234), message(1, time=1700000000.9999)])
    assert [m.time for m in storage.latest("#chan", 10)] == [1700000000.123, 1700000001.0]


def test_duplicate_msgid_stores_nothing_of_the_batch(storage: Storage) -> None:
    storage.append_messages([message(0)])
    with pytest.raises(AlreadyExists):
        storage.append_messages([message(1), message(0)])
    assert ids(storage.latest("#chan", 10)) == ["m0000"]


def test_batches_of_every_size_keep_their_order(storage: Storage) -> None:
    """A batch is stored whole and in order whatever its size (the SQLite backend splits it over several
    multi-row statements), messages of one millisecond included."""
    stored: list[str] = []
    i = 0
    for size in [*range(1, 70), 127, 128, 129, 300]:
        batch = [message(i + k, time=5.0, msgid=f"b{i + k}") for k in range(size)]
        storage.append_messages(batch)
        stored += ids(batch)
        i += size
    assert ids(storage.latest("#chan", 100)) == stored[-100:]
    assert ids(storage.after("#chan", Ref.by_msgid(stored[40]), 100)) == stored[41:141]


def test_duplicate_msgid_late_in_a_large_batch_stores_nothing(storage: Storage) -> None:
    storage.append_messages([message(0)])
    batch = [message(i) for i in range(1, 100)] + [message(0, msgid="m0000")]
    with pytest.raises(AlreadyExists):
        storage.append_messages(batch)
    assert ids(storage.latest("#chan", 200)) == ["m0000"]


def test_server_msgids_and_other_msgids_live_side_by_side(storage: Storage) -> None:
    """The server's msgids (stored as the row's id) and any other msgid (stored as text), among them
    strings that only look like the server's, are kept apart and come back exactly as given."""
    lookalikes = ["5A1077C0-1", "5a1077c0-01", "5a1077c0-0", "5a1077c0-40000000", "5a1077c-1", "5a1077c0-1-1"]
    first = [message(i, time=5.0, msgid=f"{SERVER_PREFIX}-{i + 1:x}") for i in range(3)]
    others = [message(10 + i, time=5.0, msgid=msgid) for i, msgid in enumerate(lookalikes)]
    rerun = [message(20 + i, time=5.0, msgid=f"0000beef-{i + 1:x}") for i in range(2)]
    storage.append_messages(first + others)
    storage.append_messages(rerun)
    everything = first + others + rerun
    for m in everything:
        assert storage.get_message(m.msgid) == m
    assert storage.get_message(f"{SERVER_PREFIX}-4") is None and storage.get_message("0000beef-0") is None
    page = storage.latest("#chan", 100)
    assert sorted(ids(page)) == sorted(ids(everything))
    # One consistent order: paging from any message never skips nor repeats one.
    for k, m in enumerate(page):
        assert ids(storage.before("#chan", Ref.by_msgid(m.msgid), 100)) == ids(page[:k])
        assert ids(storage.after("#chan", Ref.by_msgid(m.msgid), 100)) == ids(page[k + 1:])
    # Within one run of the server, and among the other msgids, the order is that of insertion.
    assert [i for i in ids(page) if i in ids(first)] == ids(first)
    assert [i for i in ids(page) if i in lookalikes] == lookalikes


def test_duplicate_server_msgid_stores_nothing_of_the_batch(storage: Storage) -> None:
    storage.append_messages([message(0, msgid=f"{SERVER_PREFIX}-1")])
    with pytest.raises(AlreadyExists):
        storage.append_messages([message(1, msgid=f"{SERVER_PREFIX}-2"), message(2, msgid=f"{SERVER_PREFIX}-1")])
    with pytest.raises(AlreadyExists):
        storage.append_messages([message(3, msgid=f"{SERVER_PREFIX}-3"), message(4, msgid=f"{SERVER_PREFIX}-3")])
    assert ids(storage.latest("#chan", 10)) == [f"{SERVER_PREFIX}-1"]


def test_duplicate_msgid_inside_a_callers_transaction_undoes_only_its_batch(storage: Storage) -> None:
    with storage.transaction():
        storage.append_messages([message(0)])
        with pytest.raises(AlreadyExists):
            storage.append_messages([message(1), message(2, "#other"), message(0)])
        with pytest.raises(AlreadyExists):
            storage.append_messages([message(4, msgid=f"{SERVER_PREFIX}-1"), message(5, msgid=f"{SERVER_PREFIX}-1")])
        storage.append_messages([message(3)])
    assert ids(storage.latest("#chan", 10)) == ["m0000", "m0003"]
    assert storage.latest("#other", 10) == []


def test_the_servers_msgids_are_of_the_stored_form() -> None:
    """Guards the pairing above: if the server's msgids change form, history still works (they are stored
    as text) but each costs an index again; this test says so first."""
    from salotto.config import load_config
    from salotto.server.state import Server
    from salotto.storage.sqlite_history import _msgid_id, _msgid_text

    server = Server(load_config())
    for _ in range(3):
        msgid = server.new_msgid()
        key = _msgid_id(msgid)
        assert key is not None and _msgid_text(key) == msgid


def test_latest(history: Storage) -> None:
    assert ids(history.latest("#chan", 5)) == span(45, 49)
    assert ids(history.latest("#chan", 1000)) == span(0, 49)
    assert ids(history.latest("#chan", 100, after=mid(44))) == span(45, 49)
    assert ids(history.latest("#chan", 2, after=mid(40))) == span(48, 49)
    # Strictly after the timestamp: t=1022 holds m0044 and m0045, both excluded.
    assert ids(history.latest("#chan", 100, after=at(1022))) == span(46, 49)
    assert history.latest("#chan", 5, after=mid(49)) == []
    assert history.latest("#nothing", 5) == []


def test_before(history: Storage) -> None:
    assert ids(history.before("#chan", mid(10), 3)) == span(7, 9)
    # Same millisecond: insertion order breaks the tie, so paging by msgid never skips one.
    assert ids(history.before("#chan", mid(11), 1)) == ["m0010"]
    # t=1005 holds m0010 and m0011; strictly before it ends at m0009.
    assert ids(history.before("#chan", at(1005), 3)) == span(7, 9)
    assert ids(history.before("#chan", mid(2), 100)) == span(0, 1)
    assert history.before("#chan", mid(0), 10) == []
    assert ids(history.before("#chan", at(5000), 2)) == span(48, 49)


def test_after(history: Storage) -> None:
    assert ids(history.after("#chan", mid(10), 3)) == span(11, 13)
    assert ids(history.after("#chan", mid(10), 1)) == ["m0011"]
    assert ids(history.after("#chan", at(1005), 3)) == span(12, 14)
    assert ids(history.after("#chan", mid(47), 100)) == span(48, 49)
    assert history.after("#chan", mid(49), 10) == []
    assert ids(history.after("#chan", at(0), 2)) == span(0, 1)


def test_around(history: Storage) -> None:
    assert ids(history.around("#chan", mid(20), 5)) == span(18, 22)
    assert ids(history.around("#chan", mid(20), 1)) == ["m0020"]
    # A timestamp: half strictly before, the rest at or after (m0020 and m0021 are at t=1010).
    assert ids(history.around("#chan", at(1010), 4)) == span(18, 21)
    # Near either end, the short side's share goes to the other: still ``limit`` messages.
    assert ids(history.around("#chan", mid(1), 5)) == span(0, 4)
    assert ids(history.around("#chan", mid(48), 5)) == span(45, 49)
    assert ids(history.around("#chan", mid(20), 1000)) == span(0, 49)


def test_between(history: Storage) -> None:
    assert ids(history.between("#chan", mid(10), mid(20), 100)) == span(11, 19)
    assert ids(history.between("#chan", mid(10), mid(20), 3)) == span(11, 13)
    # Backwards in time: the messages closest to the first selector are kept.
    assert ids(history.between("#chan", mid(20), mid(10), 3)) == span(17, 19)
    assert ids(history.between("#chan", mid(20), mid(10), 100)) == span(11, 19)
    assert ids(history.between("#chan", at(1005), at(1010), 100)) == span(12, 19)
    assert ids(history.between("#chan", at(1010), mid(25), 100)) == span(22, 24)
    assert ids(history.between("#chan", mid(10), mid(11), 100)) == []
    assert history.between("#chan", mid(10), mid(10), 100) == []


@pytest.mark.parametrize("query", ["before", "after", "around", "latest", "between1", "between2"])
def test_unknown_msgid_matches_nothing(history: Storage, query: str) -> None:
    for ref in (Ref.by_msgid("no-such-id"), Ref.by_msgid("o0010")):  # o0010 is #other's
        match query:
            case "latest":
                result = history.latest("#chan", 10, after=ref)
            case "between1":
                result = history.between("#chan", ref, mid(20), 10)
            case "between2":
                result = history.between("#chan", mid(5), ref, 10)
            case _:
                result = getattr(history, query)("#chan", ref, 10)
        assert result == []


def test_limit_zero(history: Storage) -> None:
    assert history.latest("#chan", 0) == []
    assert history.before("#chan", mid(10), 0) == []
    assert history.after("#chan", mid(10), 0) == []
    assert history.around("#chan", mid(10), 0) == []
    assert history.between("#chan", mid(10), mid(20), 0) == []


def test_targets_are_isolated(history: Storage) -> None:
    assert all(m.target == "#other" for m in history.latest("#other", 100))
    assert ids(history.latest("#other", 2)) == ["o0048", "o0049"]


def test_ref_needs_exactly_one_selector() -> None:
    with pytest.raises(ValueError):
        Ref()
    with pytest.raises(ValueError):
        Ref(msgid="x", time=1.0)


# -- a bigger history, checked against a model ---------------------------------------------------


@pytest.mark.parametrize("msgid", [lambda i: f"m{i:05d}", lambda i: f"{SERVER_PREFIX}-{i + 1:x}"],
                         ids=["any-msgid", "server-msgid"])
def test_paging_and_random_queries_match_a_model(storage: Storage, msgid: Callable[[int], str]) -> None:
    """20,000 messages with many shared milliseconds: paging through all of it with BEFORE and with
    AFTER by msgid returns each message exactly once, and random queries agree with a list model."""
    rng = random.Random(4)
    t = 1_700_000_000.0
    model: list[HistoryMessage] = []
    batch: list[HistoryMessage] = []
    for i in range(20_000):
        t += rng.choice((0.0, 0.0, 0.001, 0.5))
        m = message(i, "#big" if i % 10 else "#small", t, msgid=msgid(i))
        batch.append(m)
        if m.target == "#big":
            model.append(m)
        if len(batch) == 1000:
            storage.append_messages(batch)
            batch = []
    all_ids = ids(model)

    backwards: list[str] = []
    page = storage.latest("#big", 500)
    while page:
        backwards[:0] = ids(page)
        page = storage.before("#big", Ref.by_msgid(page[0].msgid), 500)
    assert backwards == all_ids

    forwards: list[str] = []
    page = storage.after("#big", Ref.by_time(0), 700)
    while page:
        forwards += ids(page)
        page = storage.after("#big", Ref.by_msgid(page[-1].msgid), 700)
    assert forwards == all_ids

    times = [round(m.time * 1000) for m in model]
    for _ in range(200):
        k = rng.randrange(len(model))
        limit = rng.randint(1, 120)
        ref = Ref.by_msgid(model[k].msgid)
        assert ids(storage.before("#big", ref, limit)) == all_ids[max(0, k - limit):k]
        assert ids(storage.after("#big", ref, limit)) == all_ids[k + 1:k + 1 + limit]
        ms = times[k]
        first_at = times.index(ms)
        last_at = len(times) - times[::-1].index(ms)  # one past the last message at ms
        tref = Ref.by_time(ms / 1000)
        assert ids(storage.before("#big", tref, limit)) == all_ids[max(0, first_at - limit):first_at]
        assert ids(storage.after("#big", tref, limit)) == all_ids[last_at:last_at + limit]
        j = rng.randrange(len(model))
        lo, hi = sorted((k, j))
        inside = all_ids[lo + 1:hi]
        expected = inside[:limit] if k <= j else inside[-limit:] if inside else []
        assert ids(storage.between("#big", ref, Ref.by_msgid(model[j].msgid), limit)) == expected

    # A loose speed check (bench/history_bench.py measures 1,000,000 messages): LATEST 100 is an index
    # walk, its median far below the 10 ms p99 the issue asks for, even on a busy test machine.
    samples = []
    for _ in range(50):
        started = time.perf_counter()
        storage.latest("#big", 100)
        samples.append(time.perf_counter() - started)
    assert statistics.median(samples) < 0.010


# -- TARGETS -------------------------------------------------------------------------------------


def dm(i: int, a: str, b: str, time: float) -> HistoryMessage:
    return message(i, conversation_key(a, b), time, msgid=f"d{i}", sender=f"{a}!u@h", parties=(a, b))


def test_conversation_key() -> None:
    assert conversation_key("Bob", "alice") == conversation_key("ALICE", "bob") == "alice bob"
    assert conversation_key("[x]", "{X}") == "{x} {x}"


def test_parties_must_match_the_target(storage: Storage) -> None:
    bad = message(0, "alice carol", parties=("alice", "bob"))
    with pytest.raises(ValueError):
        storage.append_messages([bad])


def test_targets(storage: Storage) -> None:
    storage.append_messages([
        message(0, "#a", 10.0),
        message(1, "#a", 50.0),
        message(2, "#b", 20.0),
        message(3, "#hidden", 30.0),  # alice is not in it: not listed
        dm(4, "Alice", "Bob", 15.0),
        dm(5, "carol", "alice", 40.0),
        dm(6, "bob", "carol", 35.0),  # not alice's
    ])
    listed = storage.targets(["#a", "#b"], "ALICE", 0.0, 100.0, 10)
    assert listed == [
        TargetListing("alice bob", "Bob", 15.0),
        TargetListing("#b", "#b", 20.0),
        TargetListing("alice carol", "carol", 40.0),
        TargetListing("#a", "#a", 50.0),
    ]
    # Latest message inside the window; the bounds are exclusive.
    assert [(t.target, t.latest) for t in storage.targets(["#a", "#b"], "alice", 0.0, 50.0, 10)] == [
        ("#a", 10.0), ("alice bob", 15.0), ("#b", 20.0), ("alice carol", 40.0)]
    assert [t.target for t in storage.targets(["#a"], "alice", 0.0, 50.0, 10)] == ["#a", "alice bob", "alice carol"]
    assert storage.targets(["#a"], None, 15.0, 40.0, 10) == []
    # The limit keeps those closest to the start: forwards the oldest, backwards the newest.
    assert [t.name for t in storage.targets(["#a", "#b"], "alice", 0.0, 100.0, 2)] == ["Bob", "#b"]
    assert [t.name for t in storage.targets(["#a", "#b"], "alice", 100.0, 0.0, 2)] == ["carol", "#a"]
    assert storage.targets(["#a"], "bob", 0, 100, 0) == []
    # The peer's name follows the latest message.
    storage.append_messages([dm(7, "ALICE", "BOB", 60.0)])
    assert storage.targets([], "bob", 0.0, 100.0, 10)[-1] == TargetListing("alice bob", "ALICE", 60.0)


def test_the_listed_name_follows_the_latest_message_when_spellings_come_back(storage: Storage) -> None:
    def names() -> tuple[str, str]:
        return storage.targets([], "bob", 0.0, 100.0, 10)[0].name, storage.targets([], "alice", 0.0, 100.0, 10)[0].name

    storage.append_messages([dm(0, "alice", "bob", 10.0)])
    storage.append_messages([dm(1, "Alice", "bob", 11.0)])
    storage.append_messages([dm(2, "alice", "bob", 12.0)])  # back to the first spelling
    assert names() == ("alice", "bob")
    storage.append_messages([dm(3, "ALICE", "bob", 13.0), dm(4, "alice", "bob", 14.0)])  # within one batch
    assert names() == ("alice", "bob")
    storage.append_messages([dm(5, "BOB", "alice", 15.0)])  # from the other side
    assert names() == ("alice", "BOB")
    # A batch that fails changes no name, and the next message with the stored names still counts.
    with pytest.raises(AlreadyExists):
        storage.append_messages([dm(6, "Alice", "bob", 16.0), dm(0, "alice", "bob", 16.0)])
    assert names() == ("alice", "BOB")
    storage.append_messages([dm(7, "alice", "bob", 17.0)])
    assert names() == ("alice", "bob")
    # Inside a caller's transaction: each message still counts, and so does the next one after it.
    with storage.transaction():
        storage.append_messages([dm(8, "Alice", "bob", 18.0)])
        storage.append_messages([dm(9, "alice", "bob", 19.0)])
    assert names() == ("alice", "bob")
    with storage.transaction():
        storage.append_messages([dm(10, "ALICE", "bob", 20.0)])
    storage.append_messages([dm(11, "alice", "bob", 21.0)])
    assert names() == ("alice", "bob")
