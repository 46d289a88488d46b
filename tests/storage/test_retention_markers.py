"""History retention (by age, by count per target) and draft/read-marker markers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from salotto.storage import Storage, TargetListing
from salotto.storage.sqlite import DB_FILENAME

from .conftest import message
from .test_history import dm


def test_prune_by_age(storage: Storage) -> None:
    storage.append_messages([message(i, time=float(i)) for i in range(100)])
    assert storage.prune_history(cutoff=50.0, max_per_target=None) == 50
    remaining = storage.latest("#chan", 1000)
    assert [m.time for m in remaining] == [float(i) for i in range(50, 100)]
    assert storage.prune_history(cutoff=50.0, max_per_target=None) == 0


def test_prune_by_age_forgets_the_conversations_it_empties(storage: Storage, backend: str, location: str) -> None:
    """Once retention took every message of a private conversation, who talked to whom goes too; a new
    message between the same two names brings the conversation back."""
    storage.append_messages([dm(0, "alice", "bob", 10.0), dm(1, "alice", "carol", 10.0), dm(2, "carol", "alice", 90.0)])
    assert storage.prune_history(cutoff=50.0, max_per_target=None) == 2
    assert [t.target for t in storage.targets([], "alice", 0.0, 100.0, 10)] == ["alice carol"]
    query = "SELECT party_cf, target FROM conversations ORDER BY party_cf"
    if backend == "sqlite":
        with sqlite3.connect(Path(location) / DB_FILENAME) as db:
            rows = db.execute(query).fetchall()
        db.close()
    else:
        import psycopg

        with psycopg.connect(location) as pg:
            rows = pg.execute(query).fetchall()
    assert rows == [("alice", "alice carol"), ("carol", "alice carol")]
    storage.append_messages([dm(3, "alice", "bob", 95.0)])  # the very names of the forgotten rows
    assert storage.targets([], "bob", 0.0, 100.0, 10) == [TargetListing("alice bob", "alice", 95.0)]


def test_prune_by_count_per_target(storage: Storage) -> None:
    storage.append_messages(
        [message(i, "#big", float(i)) for i in range(30)]
        + [message(i, "#small", float(i), msgid=f"s{i}") for i in range(10)]
    )
    assert storage.prune_history(cutoff=None, max_per_target=20) == 10
    assert [m.time for m in storage.latest("#big", 100)] == [float(i) for i in range(10, 30)]
    assert len(storage.latest("#small", 100)) == 10


def test_prune_both_rules(storage: Storage) -> None:
    storage.append_messages([message(i, time=float(i)) for i in range(100)])
    assert storage.prune_history(cutoff=10.0, max_per_target=50) == 50
    assert [m.time for m in storage.latest("#chan", 1000)] == [float(i) for i in range(50, 100)]


def test_prune_in_bounded_steps(storage: Storage) -> None:
    storage.append_messages(
        [message(i, "#a", float(i)) for i in range(40)] + [message(i, "#b", float(i), msgid=f"b{i}") for i in range(40)]
    )
    steps = []
    while True:
        deleted = storage.prune_history(cutoff=10.0, max_per_target=5, max_rows=7)
        steps.append(deleted)
        if deleted < 7:
            break
    assert sum(steps) == 70 and max(steps) == 7
    assert [m.time for m in storage.latest("#a", 100)] == [35.0, 36.0, 37.0, 38.0, 39.0]
    assert [m.time for m in storage.latest("#b", 100)] == [35.0, 36.0, 37.0, 38.0, 39.0]


def test_prune_by_age_goes_through_every_target_in_steps(storage: Storage) -> None:
    """Old messages of many targets, stored in any order, all go; the newer ones all stay, whatever the
    step size (a step may stop inside a target and the next one resumes there)."""
    batch = []
    for t in range(30):
        target = f"#t{t:02d}"
        # Newest first: age, not insertion order, decides what is old.
        batch += [message(100 + i, target, 100.0 + i, msgid=f"{target}-new{i}") for i in range(3)]
        batch += [message(i, target, float(i), msgid=f"{target}-old{i}") for i in range(t % 5)]
    storage.append_messages(batch)
    old = sum(t % 5 for t in range(30))
    for max_rows in (1, 4, 7, 1000):
        steps = []
        while True:
            deleted = storage.prune_history(cutoff=50.0, max_per_target=None, max_rows=max_rows)
            steps.append(deleted)
            if deleted < max_rows:
                break
        assert max(steps) <= max_rows
        assert sum(steps) == old
        old = 0  # the following rounds find nothing left to delete
        for t in range(30):
            assert [m.time for m in storage.latest(f"#t{t:02d}", 100)] == [100.0, 101.0, 102.0]


def test_prune_by_age_sees_targets_stored_after_a_partial_step(storage: Storage, backend: str) -> None:
    storage.append_messages([message(i, "#m", float(i), msgid=f"m{i}") for i in range(10)])
    assert storage.prune_history(cutoff=50.0, max_per_target=None, max_rows=4) == 4
    # A target before the one the step stopped in: this round missed it, the next one does not.
    storage.append_messages([message(i, "#a", float(i), msgid=f"a{i}") for i in range(3)])
    # SQLite goes target by target: the rest of #m (a short step ends the round), then a new round
    # finds #a. PostgreSQL takes any old messages, whatever their target, until none is left.
    expected = [4, 2, 3] if backend == "sqlite" else [4, 4, 1]
    assert [storage.prune_history(cutoff=50.0, max_per_target=None, max_rows=4) for _ in expected] == expected
    assert storage.latest("#a", 10) == storage.latest("#m", 10) == []


def test_read_markers_only_move_forward(storage: Storage) -> None:
    assert storage.get_read_marker("alice", "#chan") is None
    assert storage.set_read_marker("Alice", "#chan", 1700000000.123) == 1700000000.123
    assert storage.set_read_marker("alice", "#chan", 1600000000.0) == 1700000000.123
    assert storage.get_read_marker("ALICE", "#chan") == 1700000000.123
    assert storage.set_read_marker("alice", "#chan", 1700000005.5) == 1700000005.5
    storage.set_read_marker("alice", "alice bob", 3.0)
    storage.set_read_marker("bob", "#chan", 2.0)
    assert storage.read_markers("alice") == [("#chan", 1700000005.5), ("alice bob", 3.0)]
    assert storage.get_read_marker("bob", "#chan") == 2.0


def test_every_marker_is_listed_at_once_and_one_can_be_forgotten(storage: Storage) -> None:
    storage.set_read_marker("Alice", "#chan", 5.0)
    storage.set_read_marker("alice", "bob", 6.5)
    storage.set_read_marker("carol", "#chan", 7.0)
    assert storage.list_read_markers() == [("alice", "#chan", 5.0), ("alice", "bob", 6.5), ("carol", "#chan", 7.0)]
    assert storage.delete_read_marker("ALICE", "bob") is True
    assert storage.delete_read_marker("alice", "bob") is False
    assert storage.list_read_markers() == [("alice", "#chan", 5.0), ("carol", "#chan", 7.0)]
