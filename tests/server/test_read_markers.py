"""Read markers (draft/read-marker): MARKREAD set and get, shared by every connection of an account,
sent on JOIN, kept across restarts, and bounded per account. In memory, on a real SQLite file."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from salotto.storage import open_storage
from tests.server.harness import Harness, User

PASSWORD = "correct-horse-battery"
CAPS = ["draft/read-marker", "message-tags", "server-time", "sasl"]
T0 = "2023-11-14T22:13:20.000Z"  # the harness's wall clock: 1_700_000_000
EARLIER = "2023-11-14T22:00:00.500Z"


def _harness(tmp_path: Path, **overrides: Any) -> Harness:
    h = Harness(**overrides)
    h.attach_store(tmp_path)
    return h


def _registered(h: Harness, nick: str, caps: list[str] = CAPS) -> User:
    user = h.user(nick, caps=caps)
    user.send(f"REGISTER * * :{PASSWORD}")
    assert any(m.command == "REGISTER" and m.params[0] == "SUCCESS" for m in user.messages())
    return user


def _device(h: Harness, nick: str, account: str, caps: list[str] = CAPS) -> User:
    """Another connection, under its own nick, logged in to ``account`` with SASL."""
    user = h.connect()
    user.send("CAP LS 302")
    user.send("CAP REQ :" + " ".join(caps))
    user.send(f"NICK {nick}")
    user.send(f"USER {nick} 0 * :{nick}")
    user.send("AUTHENTICATE PLAIN")
    user.send("AUTHENTICATE " + base64.b64encode(f"\0{account}\0{PASSWORD}".encode()).decode())
    user.send("CAP END")
    assert user.client.registered and user.client.account == account, user.lines()
    user.lines()
    return user


def _markread(user: User) -> list[list[str]]:
    return [m.params for m in user.messages() if m.command == "MARKREAD"]


def test_the_capability_is_offered_with_accounts_only(tmp_path: Path) -> None:
    assert "draft/read-marker" not in Harness().server.capabilities()
    assert "draft/read-marker" in _harness(tmp_path).server.capabilities()


def test_a_marker_set_on_one_device_reaches_the_others_of_the_account_only(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    phone = _device(h, "alice_phone", "alice")
    old_client = _device(h, "alice_old", "alice", caps=["sasl"])  # no read-marker cap: not told
    bob = _registered(h, "bob")
    old_client.lines()
    laptop.send(f"MARKREAD #lobby timestamp={EARLIER}")
    assert _markread(laptop) == [["#lobby", f"timestamp={EARLIER}"]]
    assert _markread(phone) == [["#lobby", f"timestamp={EARLIER}"]]
    assert old_client.lines() == [] and _markread(bob) == []
    phone.send("MARKREAD #lobby")  # get
    assert _markread(phone) == [["#lobby", f"timestamp={EARLIER}"]]
    bob.send("MARKREAD #lobby")
    assert _markread(bob) == [["#lobby", "*"]]


def test_a_marker_only_moves_forward_and_never_past_now(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    phone = _device(h, "alice_phone", "alice")
    laptop.send(f"MARKREAD Bob timestamp={T0}")
    phone.lines()
    laptop.lines()
    phone.send(f"MARKREAD bob timestamp={EARLIER}")  # older: answered with the marker as it is
    assert _markread(phone) == [["bob", f"timestamp={T0}"]]
    assert _markread(laptop) == []  # nothing moved: nobody else is told
    laptop.send("MARKREAD bob timestamp=2099-01-01T00:00:00.000Z")
    assert _markread(laptop) == [["bob", f"timestamp={T0}"]]  # clamped to the server's now


def test_joining_sends_the_marker_between_the_join_and_the_end_of_names(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _registered(h, "alice")
    alice.send(f"MARKREAD #rust timestamp={EARLIER}")
    alice.lines()
    alice.send("JOIN #rust")
    commands = alice.commands()
    assert commands.index("JOIN") < commands.index("MARKREAD") < commands.index("366")
    assert _markread(alice) == []  # (already read above)
    alice.send("JOIN #new")
    assert _markread(alice) == [["#new", "*"]]
    plain = _device(h, "alice2", "alice", caps=["sasl"])
    plain.send("JOIN #rust")
    assert "MARKREAD" not in plain.commands()


def test_bad_requests_get_a_fail_and_change_nothing(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _registered(h, "alice")
    alice.send("MARKREAD")
    assert alice.lines()[-1].endswith("FAIL MARKREAD NEED_MORE_PARAMS :Not enough parameters")
    for bad in ("timestamp=yesterday", "*", "msgid=abc", "timestamp=2023-11-14 22:13:20.000Z"):
        alice.send(f"MARKREAD #lobby {bad}")
        assert " FAIL MARKREAD INVALID_PARAMS #lobby :" in alice.lines()[-1]
    alice.send(f"MARKREAD no,such timestamp={T0}")
    assert " FAIL MARKREAD INVALID_PARAMS no,such :Invalid target" in alice.lines()[-1]
    alice.send("MARKREAD #lobby")
    assert _markread(alice) == [["#lobby", "*"]]


def test_markers_need_an_account_and_the_capability(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    guest = h.user("guest", caps=["draft/read-marker"])
    guest.send(f"MARKREAD #lobby timestamp={T0}")
    assert " FAIL MARKREAD ACCOUNT_REQUIRED #lobby :" in guest.lines()[-1]
    other = h.user("other")
    other.send(f"MARKREAD #lobby timestamp={T0}")
    assert other.numerics() == ["421"]


def test_markers_survive_a_restart(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _registered(h, "alice")
    alice.send(f"MARKREAD #rust timestamp={EARLIER}")
    alice.send(f"MARKREAD carol timestamp={T0}")
    h.server.tick()  # the markers go to the store once per tick
    h.server.shutdown("restart")
    again = _harness(tmp_path)
    phone = _device(again, "alice_phone", "alice")
    phone.send("MARKREAD Carol")
    assert _markread(phone) == [["Carol", f"timestamp={T0}"]]
    phone.send("JOIN #Rust")
    assert _markread(phone) == [["#Rust", f"timestamp={EARLIER}"]]


def test_an_account_keeps_at_most_the_configured_number_of_markers(tmp_path: Path) -> None:
    h = _harness(tmp_path, read_markers_max_targets=2)
    alice = _registered(h, "alice")
    alice.send("MARKREAD #a timestamp=2023-11-14T22:00:01.000Z")
    alice.send("MARKREAD #b timestamp=2023-11-14T22:00:03.000Z")
    alice.send("MARKREAD #a timestamp=2023-11-14T22:00:02.000Z")
    alice.send("MARKREAD #c timestamp=2023-11-14T22:00:04.000Z")  # the oldest, #a, makes room
    alice.lines()
    alice.send("MARKREAD #a")
    assert _markread(alice) == [["#a", "*"]]
    h.server.tick()
    stored = open_storage("sqlite", tmp_path)
    assert [(target, time) for _, target, time in stored.list_read_markers()] == [
        ("#b", 1_699_999_203.0), ("#c", 1_699_999_204.0)
    ]
    stored.close()


def test_a_dropped_account_takes_its_markers_along(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _registered(h, "alice")
    alice.send(f"MARKREAD #lobby timestamp={T0}")
    bob = _device(h, "bob", "alice")
    alice.send(f"PRIVMSG NickServ :DROP {PASSWORD}")
    assert "You are now logged out" in alice.lines()[-2]
    assert bob.client.account is None
    h.server.tick()
    assert h.server.accounts is not None and h.server.accounts.markers.get("alice", "#lobby") is None
    assert h.server.logins == {}
    alice.send(f"REGISTER * * :{PASSWORD}")  # the name is free again: a new account, no markers
    assert any(m.command == "REGISTER" and m.params[0] == "SUCCESS" for m in alice.messages())
    alice.send("MARKREAD #lobby")
    assert _markread(alice) == [["#lobby", "*"]]


def test_metrics_count_markers_that_moved_and_reactions(tmp_path: Path) -> None:
    from salotto.transport.web import render_metrics

    h = _harness(tmp_path)
    alice = _registered(h, "alice")
    alice.send(f"MARKREAD #lobby timestamp={EARLIER}")
    alice.send(f"MARKREAD #lobby timestamp={EARLIER}")  # moved nothing
    alice.send("@+draft/react=👍;+draft/reply=abc TAGMSG #lobby")
    alice.send("@+typing=active TAGMSG #lobby")
    metrics = render_metrics(h.server).splitlines()
    assert "salotto_read_markers_total 1" in metrics
    assert "salotto_reactions_total 1" in metrics


def test_a_time_before_1970_is_refused(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    alice = _registered(h, "alice")
    alice.send("MARKREAD #lobby timestamp=0001-01-01T00:00:00.000Z")
    assert " FAIL MARKREAD INVALID_PARAMS #lobby :" in alice.lines()[-1]


def test_the_server_keeps_at_most_the_configured_number_of_markers_in_all(tmp_path: Path) -> None:
    h = _harness(tmp_path, read_markers_max_total=3)
    alice = _registered(h, "alice")
    bob = _registered(h, "bob")
    alice.send("MARKREAD #a timestamp=2023-11-14T22:00:01.000Z")
    alice.send("MARKREAD #b timestamp=2023-11-14T22:00:01.000Z")
    bob.send("MARKREAD #a timestamp=2023-11-14T22:00:01.000Z")
    alice.lines()
    bob.lines()
    bob.send("MARKREAD #b timestamp=2023-11-14T22:00:02.000Z")
    assert bob.lines()[-1].endswith("FAIL MARKREAD INTERNAL_ERROR #b :This server keeps no more read markers")
    bob.send("MARKREAD #a timestamp=2023-11-14T22:00:02.000Z")  # one kept still moves
    assert _markread(bob) == [["#a", "timestamp=2023-11-14T22:00:02.000Z"]]
    alice.send(f"PRIVMSG NickServ :DROP {PASSWORD}")  # a dropped account's markers make room
    alice.lines()
    bob.send("MARKREAD #b timestamp=2023-11-14T22:00:02.000Z")
    assert _markread(bob) == [["#b", "timestamp=2023-11-14T22:00:02.000Z"]]


def test_a_marker_set_while_the_account_is_being_dropped_is_not_stored(tmp_path: Path) -> None:
    h = Harness()
    h.attach_store(tmp_path, deferred=True)
    alice = _registered(h, "alice")
    phone = _device(h, "alice_phone", "alice")
    alice.send_unsettled(f"PRIVMSG NickServ :DROP {PASSWORD}")  # the delete is on its way to the store
    phone.send_unsettled(f"MARKREAD #lobby timestamp={T0}")  # ...and the phone marks meanwhile
    h.server.tick()  # the marker's write is queued after the delete
    h.settle()
    h.server.tick()
    h.settle()
    stored = open_storage("sqlite", tmp_path)
    assert stored.list_read_markers() == []
    stored.close()
