"""Always-on (several devices on one nick): an account's setting and the always-on users kept across a
restart, on every backend."""

from __future__ import annotations

from salotto.storage import Storage
from salotto.storage.base import AlwaysOnUser

from .conftest import Reopen


def test_an_account_says_always_on_or_leaves_it_to_the_server(storage: Storage) -> None:
    storage.create_account("Alice", "h", 1.0)
    account = storage.get_account("alice")
    assert account is not None and account.always_on is None  # the server's always_on_default
    assert storage.set_always_on("ALICE", True)
    assert [a.always_on for a in storage.list_accounts()] == [True]
    assert storage.set_always_on("alice", False)
    account = storage.get_account("alice")
    assert account is not None and account.always_on is False
    assert storage.set_always_on("alice", None)
    account = storage.get_account("alice")
    assert account is not None and account.always_on is None
    assert not storage.set_always_on("nobody", True)


def test_always_on_users_are_replaced_as_a_whole_and_survive_reopening(storage: Storage, reopen: Reopen) -> None:
    storage.create_account("Alice", "h", 1.0)
    storage.create_account("bob", "h", 1.0)
    alice = AlwaysOnUser("Alice", "ali", "~alice", "Alice A", ("#lobby", "#Dev"), "Not here", 1700000000.25)
    bob = AlwaysOnUser("bob", "bob", "~bob", "Bob", (), None, 0.0)
    ghost = AlwaysOnUser("ghost", "ghost", "~g", "G", ("#x",), None, 1.0)  # no such account: not kept
    storage.save_always_on_users([alice, bob, ghost])
    assert reopen().list_always_on_users() == [alice, bob]
    storage.save_always_on_users([bob])
    assert storage.list_always_on_users() == [bob]
    storage.delete_account("bob")  # its user goes with it
    assert storage.list_always_on_users() == []


def test_always_on_users_are_kept_and_forgotten_one_by_one(storage: Storage) -> None:
    storage.create_account("Alice", "h", 1.0)
    storage.create_account("bob", "h", 1.0)
    alice = AlwaysOnUser("Alice", "ali", "~alice", "Alice A", ("#lobby",), None, 5.0)
    bob = AlwaysOnUser("bob", "bob", "~bob", "Bob", ("#a", "#b"), "away", 6.0)
    storage.update_always_on_users([alice, bob], [])
    moved = AlwaysOnUser("Alice", "ali", "~alice", "Alice A", ("#lobby", "#new"), None, 0.0)
    storage.update_always_on_users([moved], ["BOB"])
    assert storage.list_always_on_users() == [moved]
    storage.update_always_on_users([], ["alice", "nobody"])
    assert storage.list_always_on_users() == []
