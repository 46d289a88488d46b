"""Several devices and always-on: the cases a review found wrong (nicks held by a connection taking one for
now, always-on rows lost at shutdown or by another connection, slots taken by one account, a setting turned
off while hanging up, a large channel's JOIN, a private TAGMSG's reach). In memory, on a real SQLite file."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.server.harness import Harness
from tests.server.test_multiclient import PASSWORD, _connect, _device, _harness, _registered


def test_a_nick_claimed_before_asking_for_a_users_nick_is_let_go(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    _registered(h, "alice")
    # a stranger, not logged in: claims "bob", then asks for alice (taken for now), is refused, quits
    x = h.connect("10.0.0.9")
    x.send("NICK bob")
    x.send("NICK alice")
    x.send("USER x 0 * :x")
    x.send("QUIT")
    x.lines()
    assert h.server.nick_registry.holder("bob") is None, "bob is held forever by a gone connection"


def test_a_device_that_claimed_a_nick_first_lets_it_go(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    _registered(h, "alice")
    d = h.connect()
    d.send("CAP LS 302")
    d.send("CAP REQ :sasl")
    d.send("NICK carol")
    d.send("NICK alice")
    d.send("USER a 0 * :a")
    d.send("AUTHENTICATE PLAIN")
    d.send("AUTHENTICATE " + base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode())
    d.send("CAP END")
    assert d.client.primary is not None
    d.send("QUIT")
    c = h.connect("10.0.0.5")
    c.send("NICK carol")
    c.send("USER c 0 * :c")
    assert c.client.registered, c.lines()


def test_a_tick_after_shutdown_keeps_the_saved_absent_always_on_user(tmp_path: Path) -> None:
    h = Harness(always_on_default=True)
    store = h.attach_store(tmp_path)
    alice = _registered(h, "alice")
    alice.send("JOIN #dev")
    alice.send("QUIT")
    h.server.tick()  # the row is written
    assert [u.nick for u in store.list_always_on_users()] == ["alice"]
    h.server.shutdown("stopping")
    assert [u.nick for u in store.list_always_on_users()] == ["alice"]
    h.server.tick()  # runtime.py keeps ticking (1 s) during SHUTDOWN_GRACE_S (0.5 s)
    assert [u.nick for u in store.list_always_on_users()] == ["alice"], "deleted by the tick after shutdown"


def test_a_tick_after_shutdown_keeps_the_saved_connected_always_on_user(tmp_path: Path) -> None:
    h = Harness(always_on_default=True)
    store = h.attach_store(tmp_path)
    alice = _registered(h, "alice")
    alice.send("JOIN #dev")
    h.server.tick()
    h.server.shutdown("stopping")
    assert [u.nick for u in store.list_always_on_users()] == ["alice"]
    h.server.tick()
    assert [u.nick for u in store.list_always_on_users()] == ["alice"], "deleted by the tick after shutdown"


def test_a_private_tagmsg_reaches_the_senders_other_connections_by_their_caps(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")            # caps: sasl only
    bob = _registered(h, "bob", caps=["sasl", "message-tags"])
    phone = _device(h, "alice", caps=["sasl", "message-tags"])
    laptop.lines()
    bob.lines()
    phone.lines()
    phone.send("@+typing=active TAGMSG bob")
    assert any("TAGMSG" in line for line in bob.lines())
    got = laptop.lines()
    assert not any("TAGMSG" in line for line in got), got


def test_one_account_cannot_take_every_always_on_slot(tmp_path: Path) -> None:
    h = _harness(tmp_path, always_on_default=True, always_on_max_accounts=2)
    _registered(h, "alice").send("QUIT")
    bob = _registered(h, "bob")
    # two more nicks logged in to alice, gone: they stay, as alice's "always-on"
    for nick in ("alice2", "alice3"):
        c = _connect(h, nick, "alice")
        assert c.client.registered, c.lines()
        c.send("QUIT")
    bob.send("QUIT")
    assert h.server.nick_registry.holder("bob") is not None, sorted(u.nick for u in h.server.absent)


def test_one_unregistered_connection_cannot_hold_many_nicks(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    _registered(h, "alice")
    x = h.connect("10.0.0.9")
    for i in range(50):
        x.send(f"NICK squat{i}")
        x.send("NICK alice")   # taken for now: nick_cf overwritten, squat{i} never released
    x.send("QUIT")
    x.lines()
    held = [n for n in h.server.nick_registry.snapshot() if n.startswith("squat")]
    assert held == [], f"{len(held)} nicks held by a connection that is gone"


def test_another_connection_of_the_account_leaving_keeps_the_row(tmp_path: Path) -> None:
    h = Harness(always_on_default=True)
    store = h.attach_store(tmp_path)
    alice = _registered(h, "alice")
    alice.send("JOIN #dev")
    alice.send("QUIT")
    h.server.tick()
    assert [u.nick for u in store.list_always_on_users()] == ["alice"]
    # the phone starts to connect (SASL done) and gives up before CAP END
    phone = h.connect()
    phone.send("CAP LS 302")
    phone.send("CAP REQ :sasl")
    phone.send("AUTHENTICATE PLAIN")
    phone.send("AUTHENTICATE " + base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode())
    phone.send("QUIT")
    h.server.tick()
    assert h.server.nick_registry.holder("alice") is not None  # alice is still here, absent
    assert [u.nick for u in store.list_always_on_users()] == ["alice"], "row deleted: a crash now loses alice"


def test_always_on_off_then_a_hangup_before_the_store_answers_quits_the_user(tmp_path: Path) -> None:
    h = Harness()
    h.attach_store(tmp_path, deferred=True)
    alice = _registered(h, "alice")
    alice.send("PRIVMSG NickServ :SET ALWAYS-ON ON")
    alice.lines()
    alice.send("JOIN #dev")
    alice.send_unsettled("PRIVMSG NickServ :SET ALWAYS-ON OFF")
    h.server.connection_lost(alice.client, "Connection reset by peer")   # the app is closed at once
    h.settle()
    assert h.server.always_on(alice.client) is False
    assert h.server.nick_registry.holder("alice") is None, "always-on is off, no connection: still here"


def test_devices_get_the_join_of_a_large_channel_when_access_gives_a_status(tmp_path: Path) -> None:
    h = _harness(tmp_path, large_channel_threshold=3)
    bob = _registered(h, "bob")
    bob.send("JOIN #big")
    bob.send("PRIVMSG ChanServ :REGISTER #big")
    laptop = _registered(h, "alice")
    bob.send("PRIVMSG ChanServ :ACCESS #big ADD alice voice")
    others = [h.user(f"u{i}") for i in range(4)]
    for o in others:
        o.send("JOIN #big")
    phone = _device(h, "alice")
    phone.lines()
    laptop.lines()
    laptop.send("JOIN #big")
    got = laptop.lines()
    assert any(" JOIN " in line for line in got), got
    pgot = phone.lines()
    assert any(" JOIN #big" in line or " JOIN :#big" in line for line in pgot), pgot
