"""Full-text search (soju.im/search) on every backend: what is found, and what never is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from salotto.storage import HistoryMessage, Storage, conversation_key, open_storage
from salotto.storage.migrations import MIGRATIONS
from salotto.storage.search import SearchQuery, SearchTimeout, words
from salotto.storage.sqlite import DB_FILENAME, migrate

from .conftest import Reopen, message


def _texts(found: list[HistoryMessage]) -> list[str]:
    return [m.text for m in found]


def test_words_are_matched_whole_newest_first_returned_oldest_first(storage: Storage) -> None:
    storage.append_messages([
        message(1, text="the quick brown fox"),
        message(2, text="a quick lunch"),
        message(3, text="quickly now"),  # another word
        message(4, text="Quick, BROWN paint"),
        message(5, text="nothing here"),
    ])
    found = storage.search(SearchQuery({"#chan": 0.0}, words("quick brown")))
    assert _texts(found) == ["the quick brown fox", "Quick, BROWN paint"]
    assert _texts(storage.search(SearchQuery({"#chan": 0.0}, words("QUICK"), limit=2))) == [
        "a quick lunch", "Quick, BROWN paint"]


def test_only_the_targets_asked_for_each_from_its_own_time(storage: Storage) -> None:
    storage.append_messages([
        message(1, "#open", time=100.0, text="secret plans"),
        message(2, "#hidden", time=101.0, text="secret plans"),
        message(3, "#late", time=102.0, text="secret plans from before"),
        message(4, "#late", time=300.0, text="secret plans from after"),
    ])
    found = storage.search(SearchQuery({"#open": 0.0, "#late": 200.0}, words("secret")))
    assert [(m.target, m.text) for m in found] == [("#open", "secret plans"), ("#late", "secret plans from after")]
    assert storage.search(SearchQuery({}, words("secret"))) == []


def test_private_conversations_of_the_party_only(storage: Storage) -> None:
    ab, ac, bc = conversation_key("alice", "bob"), conversation_key("alice", "carol"), conversation_key("bob", "carol")
    storage.append_messages([
        message(1, ab, sender="alice!u@h", text="lunch today", parties=("alice", "bob")),
        message(2, ac, sender="carol!u@h", text="lunch tomorrow", parties=("carol", "alice")),
        message(3, bc, sender="bob!u@h", text="lunch without alice", parties=("bob", "carol")),
    ])
    found = storage.search(SearchQuery({}, words("lunch"), party="Alice"))
    assert _texts(found) == ["lunch today", "lunch tomorrow"]
    assert _texts(storage.search(SearchQuery({}, words("lunch"), party="alice", party_since=1000.6))) == [
        "lunch tomorrow"]


def test_sender_and_time_bounds(storage: Storage) -> None:
    storage.append_messages([
        message(1, time=10.0, sender="Nick[1]!u@h", text="one"),
        message(2, time=20.0, sender="other!u@h", text="two"),
        message(3, time=30.0, sender="nick{1}!x@y", text="three"),
        message(4, time=40.0, sender="nick[1]!u@h", command="NOTICE", text="four"),
        message(5, time=50.0, sender="nick[1]!u@h", command="TAGMSG", text=""),
    ])
    everything = {"#chan": 0.0}
    assert _texts(storage.search(SearchQuery(everything, sender="nick{1}"))) == ["one", "three", "four"]
    assert _texts(storage.search(SearchQuery(everything, sender="nick{1}", after=30.0, before=40.0))) == [
        "three", "four"]
    # Neither words nor sender: the newest messages of the targets, in the window.
    assert _texts(storage.search(SearchQuery(everything, before=30.0, limit=2))) == ["two", "three"]
    assert _texts(storage.search(SearchQuery(everything, after=20.0))) == ["two", "three", "four"]


def test_redacted_and_expired_messages_are_not_found(storage: Storage) -> None:
    storage.append_messages([message(i, time=100.0 + i, text=f"findme {i}") for i in range(1, 6)])
    assert storage.redact_message("#chan", "m0002")
    storage.prune_history(102.5, None)  # 1 and 2 are older
    assert _texts(storage.search(SearchQuery({"#chan": 0.0}, words("findme")))) == [
        "findme 3", "findme 4", "findme 5"]
    assert storage.redact_message("#chan", "m0004")
    assert _texts(storage.search(SearchQuery({"#chan": 0.0}, words("findme")))) == ["findme 3", "findme 5"]


@pytest.mark.parametrize("text", [
    '"quote', 'a" OR "b', "tgt : x", "NEAR(a b)", "a* OR b*", "body:(x", "^start", "x AND NOT y", "'; DROP TABLE x",
    "who : n00", "{tgt}: t", "\\", "(((",
])
def test_user_text_is_never_query_syntax(storage: Storage, text: str) -> None:
    storage.append_messages([
        message(1, "#mine", text=text),
        message(2, "#other", text="x y a b start quote tgt who body drop table"),
    ])
    tokens = words(text)
    if not tokens:  # nothing but punctuation: SEARCH refuses it (tests/server/test_search.py)
        return
    found = storage.search(SearchQuery({"#mine": 0.0}, tokens))
    assert [m.target for m in found] == ["#mine"]


def test_paging_past_messages_the_caller_may_not_read(storage: Storage) -> None:
    # Many matches in a target read only from later on: dropped page after page, then the old ones found.
    storage.append_messages([message(i, "#old", time=10.0, text="word") for i in range(1, 4)]
                            + [message(i, "#new", time=1000.0 + i, text="word") for i in range(4, 200)])
    found = storage.search(SearchQuery({"#old": 0.0, "#new": 5000.0}, words("word"), limit=5))
    assert [m.msgid for m in found] == ["m0001", "m0002", "m0003"]


def test_readonly_connections_search(storage: Storage, reopen: Reopen) -> None:
    storage.append_messages([message(1, text="hello reader")])
    reader = reopen(readonly=True)
    assert _texts(reader.search(SearchQuery({"#chan": 0.0}, words("reader")))) == ["hello reader"]


# -- SQLite specifics ----------------------------------------------------------------------------


def test_sqlite_migration_indexes_what_is_stored(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    db = sqlite3.connect(path, isolation_level=None)
    before = MIGRATIONS[:-1]
    migrate(db, before)
    db.executemany(
        "INSERT INTO messages (id, msgid, target, time_ms, sender, command, text) VALUES (?,?,?,?,?,?,?)",
        [(i, f"m{i}", "#chan", 1000 + i // 3, "n!u@h", "PRIVMSG", f"old message {i}") for i in range(1, 31)],
    )
    db.close()
    storage = open_storage("sqlite", tmp_path)
    try:
        found = storage.search(SearchQuery({"#chan": 0.0}, words("old message"), limit=100))
        assert [m.msgid for m in found] == [f"m{i}" for i in range(1, 31)]
    finally:
        storage.close()


def test_sqlite_search_off_drops_the_index_and_on_rebuilds_it(tmp_path: Path) -> None:
    storage = open_storage("sqlite", tmp_path)
    storage.append_messages([message(1, text="before off")])
    storage.close()
    off = open_storage("sqlite", tmp_path, search=False)
    off.append_messages([message(2, text="while off")])
    assert off.search(SearchQuery({"#chan": 0.0}, words("off"))) == []
    off.redact_message("#chan", "m0001")  # a delete with no index to update
    off.close()
    on = open_storage("sqlite", tmp_path, search=True)
    try:
        assert _texts(on.search(SearchQuery({"#chan": 0.0}, words("off")))) == ["while off"]
    finally:
        on.close()


def test_sqlite_a_search_past_its_time_is_stopped(tmp_path: Path) -> None:
    storage = open_storage("sqlite", tmp_path)
    try:
        storage.append_messages([message(i, "#new", time=1000.0 + i, text="word") for i in range(1, 3000)])
        with pytest.raises(SearchTimeout):
            # Every match is older than the caller may read: the search pages through them all.
            storage.search(SearchQuery({"#new": 1e9, "#old": 0.0}, words("word"), timeout_s=0.0))
        assert len(storage.search(SearchQuery({"#new": 0.0}, words("word")))) == 50  # the connection goes on
    finally:
        storage.close()


def test_words_are_letters_and_digits() -> None:
    assert words("Hello, world! hello again: l'été 2026 x_y") == ("Hello", "world", "hello", "again", "l", "été",
                                                                   "2026", "x", "y")
    assert words("!!! ... ???") == ()
    assert words('"a" OR b*') == ("a", "OR", "b")


def test_time_bounds_far_in_the_future_or_the_past(storage: Storage) -> None:
    # Valid server-time timestamps (year 9999, year 1): a bound, never an error.
    storage.append_messages([message(1, time=100.0, text="bounded word")])
    everything = {"#chan": 0.0}
    far, early = 253402300799.0, -62135596800.0
    assert _texts(storage.search(SearchQuery(everything, words("word"), before=far))) == ["bounded word"]
    assert _texts(storage.search(SearchQuery(everything, words("word"), after=early, before=far))) == ["bounded word"]
    assert storage.search(SearchQuery(everything, words("word"), after=far, before=far)) == []
    assert storage.search(SearchQuery(everything, words("word"), before=early)) == []
    assert _texts(storage.search(SearchQuery(everything, sender="nick1", before=far))) == ["bounded word"]


def test_the_words_of_links_and_addresses_are_found(storage: Storage) -> None:
    storage.append_messages([
        message(1, text="the notes are at https://example.com/docs/setup.html now"),
        message(2, text="mail bob@mail.example.org or see www.example.net"),
        message(3, text="version 1.2.3 is out"),
    ])
    everything = {"#chan": 0.0}
    assert _texts(storage.search(SearchQuery(everything, words("example")))) == [
        "the notes are at https://example.com/docs/setup.html now", "mail bob@mail.example.org or see www.example.net"]
    assert len(storage.search(SearchQuery(everything, words("setup docs")))) == 1
    assert len(storage.search(SearchQuery(everything, words("bob")))) == 1
    assert len(storage.search(SearchQuery(everything, words("example.com")))) == 1
    assert len(storage.search(SearchQuery(everything, words("version 2")))) == 1


def test_a_search_past_its_time_is_stopped_even_when_each_page_is_quick(storage: Storage) -> None:
    # Every match is older than the caller may read: page after page is dropped. The time is the whole
    # search's, not each page's.
    storage.append_messages([message(i, "#new", time=1000.0 + i, text="word") for i in range(1, 10000)])
    with pytest.raises(SearchTimeout):
        storage.search(SearchQuery({"#new": 1e9, "#old": 0.0}, words("word"), limit=1, timeout_s=0.02))
    assert len(storage.search(SearchQuery({"#new": 0.0}, words("word")))) == 50  # the connection goes on
