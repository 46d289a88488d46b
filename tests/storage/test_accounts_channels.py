"""Accounts, certificate fingerprints, registered channels and their access lists."""

from __future__ import annotations

import pytest

from salotto.storage import AlreadyExists, Storage, StoredAccount, UnknownChannel

from .conftest import Reopen

# -- accounts ------------------------------------------------------------------------------------


def test_create_and_get_account(storage: Storage) -> None:
    created = storage.create_account("Alice", "scrypt$hash", 1700000000.5, email="a@example.org")
    assert created.name == "Alice"
    got = storage.get_account("alice")
    assert got == created
    assert got is not None and got.verified and got.email == "a@example.org"
    assert storage.get_account("bob") is None


def test_account_names_are_unique_under_casemapping(storage: Storage) -> None:
    storage.create_account("Al[ice]", "h1", 1.0)
    # rfc1459 casemapping: [ ] are the upper case of { }.
    for clash in ("al[ice]", "AL{ICE}", "al{ice}"):
        with pytest.raises(AlreadyExists):
            storage.create_account(clash, "h2", 2.0)
    got = storage.get_account("AL{ICE}")
    assert got is not None and got.name == "Al[ice]" and got.password_hash == "h1"


def test_unverified_account_then_verify(storage: Storage) -> None:
    storage.create_account("carol", "h", 1.0, verified=False)
    account = storage.get_account("carol")
    assert account is not None and not account.verified
    assert storage.set_verified("CAROL", True)
    account = storage.get_account("carol")
    assert account is not None and account.verified
    assert not storage.set_verified("nobody", True)


def test_set_password_hash(storage: Storage) -> None:
    storage.create_account("alice", "old", 1.0)
    assert storage.set_password_hash("ALICE", "new")
    account = storage.get_account("alice")
    assert account is not None and account.password_hash == "new"
    assert not storage.set_password_hash("bob", "x")


def test_delete_account_takes_its_data_along(storage: Storage) -> None:
    storage.create_account("alice", "h", 1.0)
    storage.set_read_marker("alice", "#chan", 5.0)
    storage.register_channel("#chan", "bob", 1.0)
    storage.set_access("#chan", "alice", "op")
    assert storage.delete_account("Alice")
    assert storage.get_account("alice") is None
    assert storage.get_read_marker("alice", "#chan") is None
    channel = storage.get_channel("#chan")
    assert channel is not None and "alice" not in channel.access
    assert not storage.delete_account("alice")
    # The name is free again.
    storage.create_account("ALICE", "h2", 2.0)


def login_addresses(storage: Storage, name: str) -> list[tuple[str, float]]:
    """One account's addresses, from the listing of all."""
    return [(address, seen) for account, address, seen in storage.list_login_addresses() if account == name]


def test_login_addresses_keep_the_newest_few_per_account(storage: Storage) -> None:
    storage.create_account("Alice", "h", 1.0)
    storage.create_account("bob", "h", 1.0)
    assert login_addresses(storage, "alice") == []
    assert storage.add_login_address("ALICE", "192.0.2.1", 10.0, keep=3)
    assert storage.add_login_address("alice", "2001:db8::/64", 20.0, keep=3)
    assert storage.add_login_address("bob", "192.0.2.1", 15.0, keep=3)
    assert login_addresses(storage, "alice") == [("192.0.2.1", 10.0), ("2001:db8::/64", 20.0)]
    # Seen again: its time moves forward (never back), and it is the newest.
    assert storage.add_login_address("alice", "192.0.2.1", 30.0, keep=3)
    assert storage.add_login_address("alice", "192.0.2.1", 5.0, keep=3)
    assert login_addresses(storage, "alice") == [("2001:db8::/64", 20.0), ("192.0.2.1", 30.0)]
    # Past ``keep``, the oldest go.
    assert storage.add_login_address("alice", "198.51.100.1", 40.0, keep=3)
    assert storage.add_login_address("alice", "198.51.100.2", 50.0, keep=3)
    assert login_addresses(storage, "alice") == [("192.0.2.1", 30.0), ("198.51.100.1", 40.0), ("198.51.100.2", 50.0)]
    # Another account's are its own.
    assert login_addresses(storage, "bob") == [("192.0.2.1", 15.0)]
    assert not storage.add_login_address("nobody", "192.0.2.1", 1.0, keep=3)
    assert login_addresses(storage, "nobody") == []
    # All of them at once, as the server reads them at startup.
    assert storage.list_login_addresses() == [
        ("alice", "192.0.2.1", 30.0), ("alice", "198.51.100.1", 40.0), ("alice", "198.51.100.2", 50.0),
        ("bob", "192.0.2.1", 15.0),
    ]


def test_every_account_is_listed_for_the_directory(storage: Storage) -> None:
    assert storage.list_accounts() == []
    storage.create_account("Zed", "hz", 3.0, email="z@example.org", verified=False)
    storage.create_account("alice", "ha", 1.0)
    assert storage.list_accounts() == [
        StoredAccount("alice", "ha", 1.0, None, True), StoredAccount("Zed", "hz", 3.0, "z@example.org", False),
    ]
    storage.delete_account("zed")
    assert [a.name for a in storage.list_accounts()] == ["alice"]


def test_login_addresses_go_with_the_account(storage: Storage, reopen: Reopen) -> None:
    storage.create_account("alice", "h", 1.0)
    storage.add_login_address("alice", "192.0.2.1", 10.0, keep=8)
    assert login_addresses(reopen(readonly=True), "alice") == [("192.0.2.1", 10.0)]
    assert storage.delete_account("alice")
    storage.create_account("Alice", "h2", 2.0)  # someone else's account now
    assert login_addresses(storage, "alice") == []


def test_register_and_get_channel(storage: Storage) -> None:
    registered = storage.register_channel("#Salotto", "Alice", 100.0)
    assert registered.access == {"alice": "founder"}
    channel = storage.get_channel("#salotto")
    assert channel == registered
    assert channel is not None and channel.name == "#Salotto" and channel.founder == "Alice"
    assert channel.topic == "" and channel.modes == "" and channel.key is None and channel.limit is None
    with pytest.raises(AlreadyExists):
        storage.register_channel("#SALOTTO", "bob", 2.0)
    assert storage.get_channel("#other") is None


def test_update_channel(storage: Storage) -> None:
    storage.register_channel("#c", "alice", 1.0)
    storage.update_channel("#C", topic=("hello", "alice!u@h", 5.0), modes="nt", key="sekrit", limit=10)
    channel = storage.get_channel("#c")
    assert channel is not None
    assert (channel.topic, channel.topic_setter, channel.topic_time) == ("hello", "alice!u@h", 5.0)
    assert (channel.modes, channel.key, channel.limit) == ("nt", "sekrit", 10)
    storage.update_channel("#c", modes="ntm")  # only what is given changes
    channel = storage.get_channel("#c")
    assert channel is not None and (channel.modes, channel.key, channel.limit, channel.topic) == (
        "ntm", "sekrit", 10, "hello")
    storage.update_channel("#c", clear_key=True, clear_limit=True)
    channel = storage.get_channel("#c")
    assert channel is not None and channel.key is None and channel.limit is None
    with pytest.raises(UnknownChannel):
        storage.update_channel("#nope", modes="n")
    with pytest.raises(UnknownChannel):
        storage.update_channel("#nope")


def test_access_list(storage: Storage) -> None:
    storage.register_channel("#c", "alice", 1.0)
    storage.set_access("#c", "Bob", "op")
    storage.set_access("#C", "carol", "voice")
    storage.set_access("#c", "BOB", "voice")  # replaces
    channel = storage.get_channel("#c")
    assert channel is not None and channel.access == {"alice": "founder", "bob": "voice", "carol": "voice"}
    assert storage.remove_access("#c", "Carol")
    assert not storage.remove_access("#c", "carol")
    with pytest.raises(UnknownChannel):
        storage.set_access("#nope", "bob", "op")


def test_drop_and_list_channels(storage: Storage) -> None:
    storage.register_channel("#b", "alice", 1.0)
    storage.register_channel("#a", "bob", 2.0)
    storage.set_access("#a", "carol", "op")
    listed = storage.list_channels()
    assert [c.name for c in listed] == ["#a", "#b"]
    assert listed[0].access == {"bob": "founder", "carol": "op"}
    assert storage.drop_channel("#A")
    assert not storage.drop_channel("#a")
    assert [c.name for c in storage.list_channels()] == ["#b"]
    # Dropping takes the access list along: a new registration starts clean.
    storage.register_channel("#a", "dave", 3.0)
    channel = storage.get_channel("#a")
    assert channel is not None and channel.access == {"dave": "founder"}


def test_registrations_survive_reopen(storage: Storage, reopen: Reopen) -> None:
    storage.create_account("alice", "h", 1.0)
    storage.register_channel("#c", "alice", 1.0)
    storage.update_channel("#c", topic=("t", "alice", 2.0))
    storage.close()
    again = reopen()
    assert again.get_account("ALICE") is not None
    channel = again.get_channel("#c")
    assert channel is not None and channel.topic == "t"


def test_transaction_rolls_back_on_error(storage: Storage) -> None:
    with pytest.raises(AlreadyExists), storage.transaction():
        storage.create_account("alice", "h", 1.0)
        storage.create_account("ALICE", "h", 1.0)
    assert storage.get_account("alice") is None
    # A nested block is a savepoint: its failure leaves the outer block's work.
    with storage.transaction():
        storage.create_account("bob", "h", 1.0)
        with pytest.raises(AlreadyExists), storage.transaction():
            storage.create_account("carol", "h", 1.0)
            storage.create_account("bob", "h", 1.0)
    assert storage.get_account("bob") is not None
    assert storage.get_account("carol") is None


def test_readonly_connection_refuses_writes(storage: Storage, reopen: Reopen) -> None:
    storage.create_account("alice", "h", 1.0)
    reader = reopen(readonly=True)
    assert reader.get_account("alice") is not None
    with pytest.raises(Exception):  # noqa: B017 - each backend has its own "read-only" error
        reader.create_account("bob", "h", 1.0)
    assert storage.get_account("bob") is None
