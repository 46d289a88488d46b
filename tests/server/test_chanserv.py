"""ChanServ and registered channels; private history keyed by account."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from salotto.server.accounts import Accounts
from salotto.storage import Outcome, Storage, StoredAccount, open_storage
from salotto.storage.store import Store
from tests.server.harness import Harness, User
from tests.server.test_accounts import PASSWORD, _harness, _registered
from tests.server.test_history import ImmediateReader

T = TypeVar("T")


def _founder_with_room(h: Harness) -> User:
    alice = _registered(h, "alice")
    alice.send("JOIN #room")
    alice.send("TOPIC #room :Kept across restarts")
    alice.send("MODE #room +sk sesame")
    alice.send("PRIVMSG ChanServ :REGISTER #room")
    assert "is registered to alice" in alice.messages()[-1].params[1]
    return alice


def test_registered_channel_keeps_topic_and_modes_across_a_restart(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    _founder_with_room(h).send("QUIT")
    assert h.server.find_channel("#room") is None  # emptied: gone from memory, kept in the store

    restarted = _harness(tmp_path)  # a new server on the same database
    bob = restarted.user("bob")
    bob.send("JOIN #room")
    assert restarted.server.find_channel("#room") is None and bob.numerics() == ["475"]  # +k kept
    bob.send("JOIN #room sesame")
    replies = bob.messages()
    assert any(m.command == "332" and m.params[2] == "Kept across restarts" for m in replies)
    names = next(m for m in replies if m.command == "353")
    assert names.params[-1] == "bob"  # no operator status for a stranger re-creating it
    bob.send("MODE #room")
    modes = bob.messages()[0]
    assert modes.command == "324" and set("knst") <= set(modes.params[2]) and modes.params[3] == "sesame"


def test_every_write_goes_through_the_storers_one_writer_thread_and_the_next_command_sees_it(
    tmp_path: Path,
) -> None:
    """As the server runs: the storer thread holds the only writer connection, and its results come back
    to the loop later (here a queue the test runs, as the event loop would). Registering, access lists,
    topics and drops all work; commands sent at once are answered in order, each after the write before
    it is done; and the loop never ran a write itself."""
    h = Harness(history_replay_lines=0)
    server = h.server
    results: queue.Queue[Callable[[], None]] = queue.Queue()
    writer = open_storage("sqlite", tmp_path)
    store = Store(server.config, writer, ImmediateReader(tmp_path), server.clock(), storer=ThreadPoolExecutor(1),
                  call_soon=results.put)
    writers: set[str] = set()

    class NotingTheThread:
        def write(self, fn: Callable[[Storage], T], callback: Callable[[Outcome[T]], None]) -> None:
            def on_the_writer(storage: Storage) -> T:
                writers.add(threading.current_thread().name)
                return fn(storage)

            store.write(on_the_writer, callback)

    server.attach_accounts(Accounts.load(writer, NotingTheThread(), server.offload))

    def run_loop_until(user: User, text: str) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + 10
        while not any(text in line for line in seen):
            assert time.monotonic() < deadline, f"no {text!r}; saw {seen}"
            with contextlib.suppress(queue.Empty):
                results.get(timeout=0.05)()
            seen += [m.params[-1] for m in user.messages()]
        return seen

    alice = h.user("alice")
    alice.send(f"REGISTER * * :{PASSWORD}")
    run_loop_until(alice, "You are now logged in as alice")
    carol = h.user("carol")
    carol.send(f"REGISTER * * :{PASSWORD}")
    run_loop_until(carol, "You are now logged in as carol")
    alice.send("JOIN #room")
    alice.send("PRIVMSG ChanServ :REGISTER #room")
    # Sent together: each answer after the write before it, in the order sent.
    alice.send("PRIVMSG ChanServ :ACCESS #room ADD carol op")
    alice.send("PRIVMSG ChanServ :ACCESS #room LIST")
    alice.send("TOPIC #room :Changed")
    alice.send("PRIVMSG ChanServ :ACCESS #room DEL carol")
    alice.send("PRIVMSG ChanServ :ACCESS #room LIST")
    seen = run_loop_until(alice, "End of #room access list (1)")
    answers = [line for line in seen if line.startswith(("#room is registered", "carol now", "#room: carol",
                                                         "carol removed", "End of #room access"))]
    assert answers[0].startswith("#room is registered to alice")
    assert answers[1:] == ["carol now has op access to #room.", "#room: carol op", "End of #room access list (2).",
                           "carol removed from #room.", "End of #room access list (1)."]
    alice.send(f"PRIVMSG NickServ :DROP {PASSWORD}")
    run_loop_until(alice, "with channels #room")
    store.close()
    lookups = open_storage("sqlite", tmp_path, readonly=True)
    assert lookups.get_account("alice") is None and lookups.get_channel("#room") is None
    assert lookups.get_account("carol") is not None
    assert len(writers) == 1 and threading.current_thread().name not in writers


def test_a_store_that_refuses_writes_changes_nothing_and_says_so(tmp_path: Path) -> None:
    """A locked or full database (here a read-only connection): each service command answers that it
    could not save, and the registration stands as it was."""
    h = _harness(tmp_path)
    alice = _founder_with_room(h)
    _registered(h, "carol")
    h.attach_refusing_store(tmp_path)
    alice.messages()  # carol's arrival
    for command in ("ChanServ :ACCESS #room ADD carol op", "ChanServ :ACCESS #room DEL alice_",
                    "ChanServ :DROP #room", f"NickServ :DROP {PASSWORD}"):
        alice.send(f"PRIVMSG {command}")
        replies = alice.messages()
        assert [m.command for m in replies] == ["NOTICE"], command
        assert "could not be saved" in replies[0].params[1] and "Try again later" in replies[0].params[1], command
    registration = open_storage("sqlite", tmp_path, readonly=True).get_channel("#room")
    assert registration is not None and registration.access == {"alice": "founder"}
    assert alice.client.account == "alice"


def test_founder_and_access_list_get_status_on_join(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _founder_with_room(h)
    _registered(h, "carol").send("JOIN #room sesame")
    alice.send("PRIVMSG ChanServ :ACCESS #room ADD carol op")
    assert "carol now has op access" in alice.messages()[-1].params[1]
    alice.send("PRIVMSG ChanServ :ACCESS #room LIST")
    listing = [m.params[1] for m in alice.messages()]
    assert "#room: alice founder" in listing and "#room: carol op" in listing

    h2 = _harness(tmp_path)
    carol = h2.user("carol_")
    carol.send(f"NS IDENTIFY carol {PASSWORD}")
    carol.send("JOIN #room")  # access lets her past +k
    names = next(m for m in carol.messages() if m.command == "353")
    assert names.params[-1] == "@carol_"


def test_logging_in_later_gives_status_in_joined_channels(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _founder_with_room(h)
    alice.send("PRIVMSG NickServ :LOGOUT")
    bob = h.user("bob")
    bob.send("JOIN #room sesame")
    bob.messages()
    alice.send(f"NS IDENTIFY {PASSWORD}")
    # alice kept her @ from before; a second founder session gets it from ChanServ on login.
    second = h.user("alice2")
    second.send("JOIN #room sesame")
    second.send(f"NS IDENTIFY alice {PASSWORD}")
    modes = [m for m in bob.messages() if m.command == "MODE"]
    assert modes and modes[-1].source.startswith("ChanServ!") and modes[-1].params == ["#room", "+o", "alice2"]


def test_chanserv_op_deop_info_and_drop_rights(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _founder_with_room(h)
    bob = h.user("bob")
    bob.send("JOIN #room sesame")
    bob.send("PRIVMSG ChanServ :OP #room")
    assert "no operator access" in bob.messages()[-1].params[1]
    bob.send("PRIVMSG ChanServ :DROP #room")
    assert "Only the founder" in bob.messages()[-1].params[1]
    alice.send("PRIVMSG ChanServ :OP #room bob")
    assert any(m.params == ["#room", "+o", "bob"] for m in bob.messages() if m.command == "MODE")
    alice.send("CS DEOP #room bob")
    assert any(m.params == ["#room", "-o", "bob"] for m in bob.messages() if m.command == "MODE")
    bob.send("PRIVMSG ChanServ :INFO #room")
    assert "founder alice" in bob.messages()[0].params[1]
    alice.send("PRIVMSG ChanServ :DROP #room")
    assert "no longer registered" in alice.messages()[-1].params[1]
    assert h.server.accounts is not None and "#room" not in h.server.accounts.channels


def test_registering_needs_an_account_and_operator_status(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    guest = h.user("guest")
    guest.send("JOIN #mine")
    guest.send("PRIVMSG ChanServ :REGISTER #mine")
    assert "Log in first" in guest.messages()[-1].params[1]
    alice = _registered(h, "alice")
    alice.send("JOIN #mine")
    alice.send("PRIVMSG ChanServ :REGISTER #mine")
    assert "must be a channel operator" in alice.messages()[-1].params[1]


def _with_history(tmp_path: Path) -> Harness:
    h = _harness(tmp_path / "db")
    writer = open_storage("sqlite", tmp_path / "db")
    server = h.server
    server.attach_history(Store(server.config, writer, ImmediateReader(tmp_path / "db"), server.clock()))
    return h


def test_private_history_follows_the_account_not_the_nick(tmp_path: Path) -> None:
    h = _with_history(tmp_path)
    alice = _registered(h, "alice", caps=["draft/chathistory", "batch", "server-time", "message-tags"])
    bob = h.user("bob")
    alice.send("PRIVMSG bob :a secret for bob")
    bob.send("PRIVMSG alice :and one for alice")
    h.server.commit_pending()
    alice.send("QUIT")

    # alice comes back under another nick and logs in: her conversation is there.
    back = h.user("alice_away", caps=["draft/chathistory", "batch", "server-time", "message-tags"])
    back.send(f"NS IDENTIFY alice {PASSWORD}")
    back.messages()
    back.send("CHATHISTORY LATEST bob * 10")
    texts = [m.params[-1] for m in back.messages() if m.command == "PRIVMSG"]
    assert texts == ["a secret for bob", "and one for alice"]

    # Someone taking the nick alice without logging in reads nothing of it.
    h.wall[0] += 5
    mallory = h.user("mallory", caps=["draft/chathistory", "batch", "server-time", "message-tags"])
    back.send("NICK alice_2")
    mallory.send("NICK alice")
    mallory.messages()
    mallory.send("CHATHISTORY LATEST bob * 10")
    assert [m.command for m in mallory.messages()] == ["FAIL"]


def test_taking_a_nick_just_before_it_is_registered_reads_none_of_its_history(tmp_path: Path) -> None:
    h = _with_history(tmp_path)
    mallory = h.user("alice", caps=["draft/chathistory", "batch", "server-time", "message-tags"])
    # Registering the nick, the server looked up (and now remembers) that no account has it.
    accounts = h.server.accounts
    assert accounts is not None
    # The account is created while someone else holds the nick (a registration racing a nick change).
    created: list[Outcome[StoredAccount]] = []
    accounts.register("alice", PASSWORD, None, h.wall[0], created.append)
    assert created and created[0].value is not None
    mallory.messages()
    mallory.send("CHATHISTORY LATEST bob * 10")
    assert [m.command for m in mallory.messages()] == ["FAIL"]


def test_a_stranger_reads_a_registered_channel_only_from_its_current_creation(tmp_path: Path) -> None:
    h = _with_history(tmp_path)
    alice = _registered(h, "alice")
    alice.send("JOIN #club")
    alice.send("PRIVMSG ChanServ :REGISTER #club")
    alice.send("PRIVMSG #club :the plan, not for mallory")
    h.server.commit_pending()
    alice.send("PART #club")
    h.wall[0] += 10
    mallory = h.user("mallory", caps=["draft/chathistory", "batch", "server-time", "message-tags"])
    mallory.send("JOIN #club")
    mallory.messages()
    mallory.send("CHATHISTORY LATEST #club * 10")
    assert [m for m in mallory.messages() if m.command == "PRIVMSG"] == []
    alice.send("JOIN #club")
    alice.send("CAP REQ :draft/chathistory batch server-time")
    alice.messages()
    alice.send("CHATHISTORY LATEST #club * 10")
    assert [m.params[1] for m in alice.messages() if m.command == "PRIVMSG"] == ["the plan, not for mallory"]


def test_chanserv_info_hides_a_secret_channels_topic_from_outsiders(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _founder_with_room(h)  # +s, topic "Kept across restarts"
    outsider = h.user("outsider")
    outsider.send("PRIVMSG ChanServ :INFO #room")
    assert not any("Kept across restarts" in m.params[1] for m in outsider.messages())
    alice.send("PRIVMSG ChanServ :INFO #room")
    assert any("Kept across restarts" in m.params[1] for m in alice.messages() if m.command == "NOTICE")


def test_status_from_the_access_list_is_shown_to_the_channel(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _founder_with_room(h)
    alice.send("PRIVMSG NickServ :LOGOUT")
    alice.send("PART #room")
    bob = h.user("bob")
    bob.send("JOIN #room sesame")
    bob.messages()
    back = h.user("alice2")
    back.send(f"NS IDENTIFY alice {PASSWORD}")
    back.send("JOIN #room")
    modes = [m for m in bob.messages() if m.command == "MODE"]
    assert [(m.source.split("!")[0], m.params) for m in modes] == [("ChanServ", ["#room", "+o", "alice2"])]
    own = [m.command for m in back.messages()]
    assert own.index("JOIN") < own.index("MODE") < own.index("353")


def test_a_registered_channel_emptied_and_joined_before_its_topic_is_stored_keeps_the_new_topic(
    tmp_path: Path,
) -> None:
    """TOPIC, PART and JOIN of a registered channel's last member, before the store has the topic: the
    channel comes back with the topic it was left with, and the store gets it too."""
    h = _harness(tmp_path, deferred=True)
    alice = _founder_with_room(h)  # topic "Kept across restarts", +sk sesame
    alice.send_unsettled("TOPIC #room :new topic")
    alice.send_unsettled("MODE #room -s")
    alice.send_unsettled("PART #room")
    alice.send_unsettled("JOIN #room sesame")
    channel = h.server.find_channel("#room")
    assert channel is not None and channel.topic == "new topic" and "s" not in channel.modes
    alice.lines()  # the store answers
    accounts = h.server.accounts
    assert accounts is not None
    registration = accounts.channels["#room"]
    assert (registration.topic, "s" in registration.modes) == ("new topic", False)
    alice.send("PART #room")
    alice.send("JOIN #room sesame")
    channel = h.server.find_channel("#room")
    assert channel is not None and channel.topic == "new topic"
