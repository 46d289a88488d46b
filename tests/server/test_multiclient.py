"""Several devices on one nick (multiclient) and always-on: in memory, accounts on a real SQLite file.

A connection that logs in (SASL, before CAP END) to the account of the user holding a nick, and asks for
that nick, becomes one of that user's devices: one user, several connections, each with its own caps."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from salotto.config import OperBlock
from salotto.passwords import hash_password
from salotto.server.client import DETACHED
from salotto.transport.web import render_metrics
from tests.server.harness import Harness, User
from tests.server.test_history import _harness as _history_harness
from tests.server.test_history import _say

PASSWORD = "correct-horse-battery"
CAPS = ["sasl"]


def _harness(tmp_path: Path, **overrides: Any) -> Harness:
    h = Harness(**overrides)
    h.attach_store(tmp_path)
    return h


def _registered(h: Harness, nick: str, caps: list[str] = CAPS) -> User:
    user = h.user(nick, caps=caps)
    user.send(f"REGISTER * * :{PASSWORD}")
    assert any(m.command == "REGISTER" and m.params[0] == "SUCCESS" for m in user.messages())
    return user


def _connect(h: Harness, nick: str, account: str | None, caps: list[str] = CAPS, ip: str = "127.0.0.1",
             password: str = PASSWORD) -> User:
    """A connection asking for ``nick``, logged in to ``account`` with SASL first (None: not logged in)."""
    user = h.connect(ip)
    user.send("CAP LS 302")
    user.send("CAP REQ :" + " ".join(caps))
    user.send(f"NICK {nick}")
    user.send(f"USER {nick.lower()} 0 * :{nick} device")
    if account is not None:
        user.send("AUTHENTICATE PLAIN")
        user.send("AUTHENTICATE " + base64.b64encode(f"\0{account}\0{password}".encode()).decode())
    user.send("CAP END")
    return user


def _device(h: Harness, nick: str, caps: list[str] = CAPS, ip: str = "127.0.0.1") -> User:
    device = _connect(h, nick, nick, caps, ip)
    assert device.client.registered and device.client.primary is not None, device.lines()
    return device


def _privmsgs(user: User) -> list[tuple[str, list[str]]]:
    return [(m.source or "", m.params) for m in user.messages() if m.command == "PRIVMSG"]


def _names(user: User, channel: str = "#lobby") -> list[str]:
    user.send(f"NAMES {channel}")
    return [n.lstrip("@+") for m in user.messages() if m.command == "353" for n in m.params[-1].split()]


def test_a_device_gets_the_welcome_and_the_channels_of_its_user(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    laptop.send("JOIN #dev")
    laptop.send("TOPIC #dev :the topic")
    bob = _registered(h, "bob")
    laptop.lines()
    phone = _device(h, "alice")
    got = phone.messages()
    assert next(m for m in got if m.command.isdigit() and m.command not in ("900", "903")).command == "001"
    assert next(m for m in got if m.command == "001").params[0] == "alice"
    joins = [m.params[0] for m in got if m.command == "JOIN"]
    assert joins == ["#lobby", "#dev"]
    assert next(m.params[1:] for m in got if m.command == "332") == ["#dev", "the topic"]
    # One user: listed once, counted once, nobody told of a second arrival.
    assert sorted(_names(bob)) == ["alice", "bob"]
    assert laptop.lines() == [] and bob.lines() == []
    bob.send("LUSERS")
    assert "There are 2 users" in next(m.params[-1] for m in bob.messages() if m.command == "251")
    assert h.server.registered_count == 2 and h.server.device_count == 1


def test_both_devices_see_what_each_other_sends_and_what_others_send(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice", caps=["sasl", "echo-message"])
    bob = _registered(h, "bob")
    phone = _device(h, "alice")
    phone.lines()
    bob.send("PRIVMSG #lobby :hi all")
    assert _privmsgs(laptop) == _privmsgs(phone) == [("bob!~bob@127.0.0.1", ["#lobby", "hi all"])]
    phone.send("PRIVMSG #lobby :from the phone")
    assert _privmsgs(bob) == [("alice!~alice@127.0.0.1", ["#lobby", "from the phone"])]
    assert _privmsgs(laptop) == [("alice!~alice@127.0.0.1", ["#lobby", "from the phone"])]
    assert _privmsgs(phone) == []  # no echo-message on the phone: it does not get its own line back
    laptop.send("PRIVMSG #lobby :from the laptop")
    assert _privmsgs(laptop) == [("alice!~alice@127.0.0.1", ["#lobby", "from the laptop"])]  # its echo
    assert _privmsgs(phone) == [("alice!~alice@127.0.0.1", ["#lobby", "from the laptop"])]


def test_private_messages_reach_every_device_both_ways(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    phone = _device(h, "alice")
    phone.lines()
    bob.send("PRIVMSG alice :psst")
    assert _privmsgs(laptop) == _privmsgs(phone) == [("bob!~bob@127.0.0.1", ["alice", "psst"])]
    phone.send("PRIVMSG bob :sent from the phone")
    assert _privmsgs(bob) == [("alice!~alice@127.0.0.1", ["bob", "sent from the phone"])]
    # The laptop sees the conversation go on, as an echo would show it.
    assert _privmsgs(laptop) == [("alice!~alice@127.0.0.1", ["bob", "sent from the phone"])]
    assert _privmsgs(phone) == []


def test_each_device_gets_the_tags_it_asked_for(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    phone = _device(h, "alice", caps=["sasl", "server-time", "message-tags"])
    phone.lines()
    laptop.lines()
    bob.send("PRIVMSG #lobby :tagged")
    assert laptop.lines() == [":bob!~bob@127.0.0.1 PRIVMSG #lobby :tagged"]
    (line,) = phone.messages()
    assert "time" in line.tags and "msgid" in line.tags


def test_a_join_or_part_on_one_device_applies_to_all(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    bob.send("JOIN #dev")
    bob.send("TOPIC #dev :devs")
    phone = _device(h, "alice")
    phone.lines()
    laptop.lines()
    phone.send("JOIN #dev")
    got = laptop.messages()
    assert [m.command for m in got if m.command in ("JOIN", "332", "366")] == ["JOIN", "332", "366"]
    assert sorted(_names(laptop, "#dev")) == ["alice", "bob"]
    bob.send("PRIVMSG #dev :welcome")
    assert _privmsgs(laptop) == _privmsgs(phone) == [("bob!~bob@127.0.0.1", ["#dev", "welcome"])]
    laptop.send("PART #dev :bye")
    assert [(m.command, m.params) for m in phone.messages()] == [("PART", ["#dev", "bye"])]
    bob.lines()
    bob.send("PRIVMSG #dev :gone?")
    assert _privmsgs(phone) == [] and _privmsgs(laptop) == []


def test_a_nick_change_or_away_on_one_device_reaches_the_others(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice", caps=["sasl", "away-notify"])
    bob = _registered(h, "bob")
    phone = _device(h, "alice", caps=["sasl", "away-notify"])
    phone.lines()
    laptop.lines()
    phone.send("AWAY :lunch")
    assert [(m.command, m.params) for m in laptop.messages()] == [("AWAY", ["lunch"])]
    phone.lines()
    laptop.send("NICK alice2")
    assert [(m.command, m.params) for m in phone.messages()] == [("NICK", ["alice2"])]
    assert [(m.command, m.params) for m in bob.messages()] == [("NICK", ["alice2"])]
    bob.send("PRIVMSG alice2 :still you?")
    assert len(_privmsgs(phone)) == 1


def test_a_device_leaves_silently_and_the_user_stays_when_its_first_connection_goes(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    phone = _device(h, "alice")
    tablet = _device(h, "alice")
    phone.lines()
    laptop.lines()
    tablet.send("QUIT :bye")
    assert bob.lines() == [] and laptop.lines() == []
    laptop.send("QUIT :laptop off")
    assert bob.lines() == []  # alice is still here, on the phone
    user = phone.client.primary
    assert user is not None and user.detached and user.conn is DETACHED and user not in h.server.clients
    assert sorted(_names(bob)) == ["alice", "bob"]
    phone.send("PRIVMSG #lobby :still here")
    assert _privmsgs(bob) == [("alice!~alice@127.0.0.1", ["#lobby", "still here"])]
    bob.send("PRIVMSG #lobby :good")
    assert len(_privmsgs(phone)) == 1
    phone.send("QUIT :phone off")  # the last connection: without always-on, the user quits
    assert [(m.command, m.params) for m in bob.messages()] == [("QUIT", ["Quit: phone off"])]
    assert _names(bob) == ["bob"]
    assert h.server.device_count == 0 and not h.server.detached_users


def test_only_the_same_account_may_attach(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    _registered(h, "alice")
    _registered(h, "mallory")
    stranger = _connect(h, "alice", None)
    assert not stranger.client.registered and "433" in stranger.commands()
    other = _connect(h, "alice", "mallory")
    assert not other.client.registered and "433" in other.commands()
    other.send("NICK mallory_")  # registration waits for another nick, as after any 433
    assert other.client.registered and other.client.primary is None
    assert h.server.device_count == 0


def test_multiclient_can_be_turned_off(tmp_path: Path) -> None:
    h = _harness(tmp_path, multiclient=False)
    _registered(h, "alice")
    phone = _connect(h, "alice", "alice")
    assert not phone.client.registered and "433" in phone.commands()


def test_devices_per_user_are_limited(tmp_path: Path) -> None:
    h = _harness(tmp_path, multiclient_max_devices=2)
    _registered(h, "alice")
    _device(h, "alice")
    third = _connect(h, "alice", "alice")
    assert not third.client.registered
    (refusal,) = [m for m in third.messages() if m.command == "433"]
    assert "multiclient_max_devices" in refusal.params[-1]


def test_kill_ends_every_connection_of_the_user(tmp_path: Path) -> None:
    h = _harness(tmp_path, always_on_default=True)
    h.server.config.opers["admin"] = OperBlock("admin", hash_password("hunter2", n=2**10), "*!*@127.0.0.1")
    laptop = _registered(h, "alice")
    phone = _device(h, "alice")
    bob = _registered(h, "bob")
    bob.send("OPER admin hunter2")
    bob.send("KILL alice :enough")
    assert laptop.conn.closed and phone.conn.closed
    assert h.server.find_user("alice") is None and h.server.device_count == 0 and not h.server.detached_users
    assert _names(bob) == ["bob"]


def test_attaching_and_leaving_in_a_loop_leaves_nothing_behind(tmp_path: Path) -> None:
    h = _harness(tmp_path, max_connections_per_ip=1000, connect_attempts_per_ip=1000, login_attempts_per_ip=1000,
                 login_attempts_per_account=1000)
    laptop = _registered(h, "alice")
    clients = len(h.server.clients)
    for i in range(40):
        phone = _device(h, "alice", ip=f"10.0.0.{i % 4 + 1}")
        phone.send("QUIT")
    user = laptop.client
    assert len(h.server.clients) == clients and h.server.device_count == 0
    assert user.devices is None and all(not c.with_devices for c in h.server.channel_registry.all())
    assert not h.server.per_ip.get("10.0.0.1")
    assert len(h.server.logins["alice"]) == 1


def test_always_on_keeps_the_user_away_and_replays_private_messages(tmp_path: Path) -> None:
    h = _harness(tmp_path, always_on_default=True)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    laptop.send("QUIT :off")
    assert [m.command for m in bob.messages()] == []  # no QUIT: alice stays
    assert sorted(_names(bob)) == ["alice", "bob"]
    bob.send("WHOIS alice")
    assert any(m.command == "301" for m in bob.messages())
    user = h.server.find_user("alice")
    assert user is not None and user.detached and user in h.server.detached_users
    bob.send("PRIVMSG alice :are you there?")
    assert any(m.command == "301" for m in bob.messages())  # away (always-on)
    for _ in range(200):  # a detached user's connection keeps nothing
        bob.send("PRIVMSG #lobby :" + "x" * 300)
    assert DETACHED.outbox == [] and len(DETACHED.outbox) == 0
    phone = _device(h, "alice")
    got = phone.messages()
    assert [m.params[0] for m in got if m.command == "JOIN"] == ["#lobby"]
    assert user.away is None
    bob.send("WHOIS alice")
    assert not any(m.command == "301" for m in bob.messages())


def test_always_on_off_by_default_the_last_connection_quits(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    laptop.send("QUIT :off")
    assert [m.command for m in bob.messages()] == ["QUIT"]
    assert h.server.find_user("alice") is None


def test_private_messages_sent_while_detached_are_replayed_to_the_next_device(tmp_path: Path) -> None:
    h = _history_harness(tmp_path, always_on_default=True)
    h.attach_store(tmp_path / "accounts")
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    h.wall[0] += 1.0
    _say(h, bob, "PRIVMSG alice :before")  # the laptop got this one live
    laptop.send("QUIT :off")
    h.wall[0] += 1.0
    _say(h, bob, "PRIVMSG alice :while you were out")
    _say(h, bob, "PRIVMSG #lobby :channel talk")
    phone = _device(h, "alice", caps=["sasl", "batch", "server-time"])
    got = phone.messages()
    private = [m for m in got if m.command == "PRIVMSG" and m.params[0] == "alice"]
    assert [m.params[1] for m in private] == ["while you were out"]
    assert private[0].source == "bob!~bob@127.0.0.1" and "time" in private[0].tags
    # One with draft/chathistory fetches it itself: no replay.
    phone.send("QUIT")
    h.wall[0] += 1.0
    _say(h, bob, "PRIVMSG alice :and again")
    tablet = _device(h, "alice", caps=["sasl", "batch", "server-time", "draft/chathistory"])
    assert not [m for m in tablet.messages() if m.command == "PRIVMSG" and m.params[0] == "alice"]


def _nickserv(user: User, text: str) -> list[str]:
    user.send(f"PRIVMSG NickServ :{text}")
    return [m.params[-1] for m in user.messages() if m.command == "NOTICE"]


def test_nickserv_sets_always_on_per_account_and_shows_it(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    assert "Always-on: off (the server default)." in _nickserv(laptop, "INFO")
    assert any("Always-on is on for alice" in t for t in _nickserv(laptop, "SET ALWAYS-ON ON"))
    assert "Always-on: on." in _nickserv(laptop, "INFO")
    assert any("Syntax" in t for t in _nickserv(laptop, "SET ALWAYS-ON MAYBE"))
    bob.lines()
    laptop.send("QUIT")
    assert bob.lines() == []  # stays
    phone = _device(h, "alice")
    assert any("Always-on is off" in t for t in _nickserv(phone, "SET ALWAYS-ON OFF"))
    phone.send("QUIT")
    assert [m.command for m in bob.messages()] == ["QUIT"]


def test_always_on_accounts_are_limited(tmp_path: Path) -> None:
    h = _harness(tmp_path, always_on_max_accounts=1)
    alice = _registered(h, "alice")
    bob = _registered(h, "bob")
    assert any("Always-on is on" in t for t in _nickserv(alice, "SET ALWAYS-ON ON"))
    refusal = _nickserv(bob, "SET ALWAYS-ON ON")
    assert any("always_on_max_accounts" in t for t in refusal), refusal
    assert "Always-on: off (the server default)." in _nickserv(bob, "INFO")


def test_with_the_default_on_the_limit_bounds_the_users_left_without_a_connection(tmp_path: Path) -> None:
    h = _harness(tmp_path, always_on_default=True, always_on_max_accounts=1)
    alice = _registered(h, "alice")
    bob = _registered(h, "bob")
    carol = _registered(h, "carol")
    alice.send("QUIT")
    bob.send("QUIT")
    assert h.server.find_user("alice") is not None and h.server.find_user("bob") is None
    assert any(m.command == "QUIT" for m in carol.messages())


def test_a_restart_keeps_the_always_on_user_in_its_channels(tmp_path: Path) -> None:
    h = _harness(tmp_path, always_on_default=True)
    alice = _registered(h, "alice")
    alice.send("JOIN #dev")
    alice.send("PRIVMSG ChanServ :REGISTER #dev")  # its founder gets op back after the restart
    alice.send("AWAY :gone fishing")
    alice.send("QUIT")
    bob = _registered(h, "bob")  # connected at shutdown: it comes back too
    h.server.shutdown("Server shutting down")
    h2 = _harness(tmp_path, always_on_default=True)
    server = h2.server
    back = server.find_user("alice")
    assert back is not None and back.detached and back.account == "alice" and back.away == "gone fishing"
    assert sorted(back.channels) == ["#dev", "#lobby"]
    bob_back = server.find_user("bob")
    assert bob_back is not None and bob_back.away is not None and server.absent[bob_back][1]
    carol = _registered(h2, "carol")
    assert sorted(_names(carol)) == ["alice", "bob", "carol"]
    assert server.registered_count == 3
    carol.send("NAMES #dev")
    assert "@alice" in next(m.params[-1].split() for m in carol.messages() if m.command == "353")
    phone = _device(h2, "alice")
    assert [m.params[0] for m in phone.messages() if m.command == "JOIN"] == ["#lobby", "#dev"]
    del bob


def test_metrics_count_attached_devices_and_always_on_users(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    _registered(h, "bob")
    _nickserv(laptop, "SET ALWAYS-ON ON")
    metrics = render_metrics(h.server)
    assert "salotto_attached_devices 0" in metrics and "salotto_always_on_users 1" in metrics
    phone = _device(h, "alice")
    _device(h, "alice")
    assert "salotto_attached_devices 2" in render_metrics(h.server)
    assert "salotto_registered_users 2" in render_metrics(h.server)
    phone.send("QUIT")
    laptop.send("QUIT")
    metrics = render_metrics(h.server)
    assert "salotto_attached_devices 1" in metrics and "salotto_always_on_users 1" in metrics


def test_each_device_gets_a_private_tagmsg_by_its_own_caps_even_with_its_first_connection_gone(
    tmp_path: Path,
) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice", caps=["sasl", "message-tags"])
    bob = _registered(h, "bob", caps=["sasl", "message-tags"])
    phone = _device(h, "alice", caps=["sasl", "message-tags"])
    old = _device(h, "alice")  # no message-tags: no TAGMSG
    laptop.send("QUIT")
    phone.lines()
    old.lines()
    bob.send("@+typing=active TAGMSG alice")
    assert [m.command for m in phone.messages()] == ["TAGMSG"]
    assert old.lines() == []


def test_in_a_large_channel_the_other_devices_still_see_their_own_join_and_part(tmp_path: Path) -> None:
    h = _harness(tmp_path, large_channel_threshold=2)
    laptop = _registered(h, "alice")
    for nick in ("bob", "carol", "dave"):
        _registered(h, nick).send("JOIN #big")
    phone = _device(h, "alice")
    phone.lines()
    laptop.lines()
    phone.send("JOIN #big")
    got = laptop.messages()
    assert [m.params[0] for m in got if m.command == "JOIN"] == ["#big"]
    phone.lines()
    phone.send("PART #big")
    assert [m.command for m in laptop.messages()] == ["PART"]


def test_caps_asked_for_after_registration_are_the_device_s_own(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    phone = _device(h, "alice")
    phone.lines()
    phone.send("CAP REQ :server-time")
    assert [m.params[1:] for m in phone.messages() if m.command == "CAP"] == [["ACK", "server-time"]]
    laptop.lines()
    bob.send("PRIVMSG #lobby :now")
    assert "time" in phone.messages()[0].tags
    assert "time" not in laptop.messages()[0].tags


def test_one_user_is_listed_once_by_who_and_nickserv_and_cannot_log_out_under_its_devices(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    phone = _device(h, "alice")
    bob.send("WHO a*")
    assert [m.params[5] for m in bob.messages() if m.command == "352"] == ["alice"]
    assert "Logged in now as: alice." in _nickserv(bob, "INFO alice")
    assert any("other devices" in t for t in _nickserv(laptop, "LOGOUT"))
    assert laptop.client.account == "alice"
    phone.send("QUIT")
    laptop.send("QUIT")
    bob.send("WHO a*")
    assert [m.params[5] for m in bob.messages() if m.command == "352"] == []


def test_a_detached_always_on_user_is_found_by_who_and_ghost_ends_it(tmp_path: Path) -> None:
    h = _harness(tmp_path, always_on_default=True)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    laptop.send("QUIT")
    bob.send("WHO a*")
    assert [m.params[5] for m in bob.messages() if m.command == "352"] == ["alice"]
    other = _connect(h, "alice", "alice")  # logged in, yet wanting to end the old session
    assert other.client.primary is not None  # it attaches instead: GHOST from a third connection below
    other.send("QUIT")
    ghoster = h.user("somebody", caps=["sasl"])
    ghoster.send("AUTHENTICATE PLAIN")
    ghoster.send("AUTHENTICATE " + base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode())
    ghoster.lines()
    assert any("disconnected" in t for t in _nickserv(ghoster, "GHOST alice"))
    assert h.server.find_user("alice") is None and not h.server.detached_users
    assert [m.command for m in bob.messages()] == ["JOIN", "QUIT"]  # somebody's JOIN, then alice's QUIT


def test_an_absent_always_on_user_is_kept_as_it_goes_so_a_crash_keeps_it(tmp_path: Path) -> None:
    h = _harness(tmp_path / "a", always_on_default=True)
    store = h.attach_store(tmp_path)
    alice = _registered(h, "alice")
    alice.send("JOIN #dev")
    bob = _registered(h, "bob")
    h.server.tick()
    assert sorted(u.account for u in store.list_always_on_users()) == ["alice", "bob"]
    alice.send("QUIT")
    bob.send("PRIVMSG NickServ :SET ALWAYS-ON OFF")
    h.server.tick()
    (kept,) = store.list_always_on_users()  # no shutdown: what a crash would leave
    assert kept.account == "alice" and kept.channels == ("#lobby", "#dev") and kept.absent_since > 0
    h2 = _harness(tmp_path, always_on_default=True)
    back = h2.server.find_user("alice")
    assert back is not None and back.detached and sorted(back.channels) == ["#dev", "#lobby"]
    assert h2.server.find_user("bob") is None


def test_logging_out_before_the_tick_forgets_the_always_on_user(tmp_path: Path) -> None:
    h = _harness(tmp_path / "a", always_on_default=True)
    store = h.attach_store(tmp_path)
    alice = _registered(h, "alice")
    alice.send("JOIN #dev")  # noted, not written yet
    _nickserv(alice, "LOGOUT")
    h.server.tick()
    assert store.list_always_on_users() == []


def test_lines_waiting_behind_a_quit_are_dropped_when_the_user_stays_detached(tmp_path: Path) -> None:
    h = _harness(tmp_path)
    laptop = _registered(h, "alice")
    bob = _registered(h, "bob")
    phone = _device(h, "alice")
    phone.lines()
    h.server.hold_input(laptop.client)  # a command of the laptop's waits (as for a password check)
    laptop.send("QUIT :bye")
    laptop.send("PRIVMSG #lobby :after the quit")
    h.server.release_input(laptop.client)
    assert laptop.client.detached and laptop.conn.closed
    assert _privmsgs(bob) == [] and _privmsgs(phone) == []
