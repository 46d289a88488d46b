"""Several devices on one nick, and always-on, over real sockets against ``salotto serve``: two devices
see what each other sends and join and part together; an always-on nick stays while no device is
connected, and keeps its channels across a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from tests.conftest import RunningServer, start_server, stop_server
from tests.e2e.helpers import joined
from tests.irc_client import RawClient

PASSWORD = "several-devices-password"


def _account(server: RunningServer, nick: str) -> RawClient:
    """A client registered as ``nick``, in #lobby, with an account of that name."""
    client = joined(server, nick)
    client.send(f"REGISTER * * :{PASSWORD}")
    client.expect("REGISTER", p0="SUCCESS")
    return client


def _device(server: RunningServer, nick: str, caps: tuple[str, ...] = ()) -> RawClient:
    """Another connection logged in (SASL) to ``nick``'s account and asking for the same nick."""
    client = server.client()
    client.send("CAP LS 302")
    client.send("CAP REQ :" + " ".join(("sasl", *caps)))
    client.expect("CAP", p1="ACK")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick} device")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{nick}\0{PASSWORD}".encode()).decode())
    client.expect("903")
    client.send("CAP END")
    assert client.expect("001").params[0] == nick
    client.expect("366", p1="#lobby")
    return client


def _names(client: RawClient, channel: str) -> list[str]:
    client.send(f"NAMES {channel}")
    start = len(client.received)
    client.expect("366", p1=channel)
    return sorted(n.lstrip("@+") for m in client.received[start:] if m.command == "353" for n in m.params[-1].split())


def test_two_devices_on_one_nick_see_each_other_and_join_and_part_together(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        laptop = _account(server, "alice")
        bob = joined(server, "bob")
        phone = _device(server, "alice")
        assert bob.nothing_more() == []  # nobody sees a second alice arrive
        assert _names(bob, "#lobby") == ["alice", "bob"]
        phone.send("PRIVMSG #lobby :from the phone")
        assert laptop.expect("PRIVMSG").params == ["#lobby", "from the phone"]
        assert bob.expect("PRIVMSG").source == "alice!~alice@127.0.0.1"
        laptop.send("PRIVMSG bob :from the laptop")
        assert bob.expect("PRIVMSG").params == ["bob", "from the laptop"]
        assert phone.expect("PRIVMSG").params == ["bob", "from the laptop"]  # the conversation, on the phone
        bob.send("PRIVMSG alice :to both")
        assert laptop.expect("PRIVMSG").params == ["alice", "to both"]
        assert phone.expect("PRIVMSG").params == ["alice", "to both"]
        phone.send("JOIN #dev")
        phone.expect("366", p1="#dev")
        assert laptop.expect("JOIN").params[0] == "#dev"
        laptop.expect("366", p1="#dev")
        laptop.send("PART #dev")
        assert phone.expect("PART").params[0] == "#dev"
        phone.send("QUIT :phone off")
        laptop.send("PING :still")
        laptop.expect("PONG")
        assert [line for line in bob.nothing_more() if " QUIT " in line] == []
    finally:
        stop_server(server)


def test_an_always_on_nick_stays_and_gets_its_messages_when_back(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        alice = _account(server, "alice")
        alice.send("PRIVMSG NickServ :SET ALWAYS-ON ON")
        alice.expect("NOTICE")
        alice.send("QUIT :off")
        bob = joined(server, "bob")
        assert _names(bob, "#lobby") == ["alice", "bob"]
        bob.send("PRIVMSG alice :while you were away")
        assert bob.expect("301").params[1] == "alice"  # away, always-on
        phone = _device(server, "alice")
        try:
            replayed = phone.expect("PRIVMSG").params  # (stamped with when it was said: no server-time here)
        except AssertionError as exc:  # (seen once in CI, never since: the server's own account, to find why)
            raise AssertionError(f"{exc}\nphone got: {[str(m) for m in phone.received]}\n{server.log()}") from None
        assert replayed[0] == "alice" and replayed[1].endswith("] while you were away")
        bob.send("WHOIS alice")
        lines = bob.lines_until("318")
        assert not [m for m in lines if m.command == "301"]  # back: no longer away
    finally:
        stop_server(server)


@pytest.mark.parametrize("stop", ["terminate", "kill -9"])
def test_a_restart_keeps_the_always_on_nick_in_its_channels(tmp_path: Path, backend: list[str], stop: str) -> None:
    server = start_server(tmp_path, "--always-on-default", *backend)
    try:
        alice = _account(server, "alice")
        alice.send("JOIN #dev")
        alice.expect("366", p1="#dev")
        alice.send("QUIT")
        alice.expect("ERROR")
        if stop == "kill -9":
            time.sleep(2.5)  # the next tick (1 s) hands the absent user to the store
            server.process.kill()  # no shutdown: what the store was given as it happened is what comes back
            server.process.wait(timeout=10)
    finally:
        stop_server(server)
    restarted = start_server(tmp_path, "--always-on-default", *backend)
    try:
        bob = joined(restarted, "bob")
        bob.send("JOIN #dev")
        bob.expect("366", p1="#dev")
        assert _names(bob, "#dev") == ["alice", "bob"]
        phone = _device(restarted, "alice")
        phone.expect("366", p1="#dev")
        phone.send("PRIVMSG #dev :back after the restart")
        assert bob.expect("PRIVMSG").params == ["#dev", "back after the restart"]
    finally:
        stop_server(restarted)


def test_a_stop_after_a_tick_keeps_the_absent_always_on_user(tmp_path: Path) -> None:
    # A tick writes the row; the stop saves it again, and the ticks of the shutdown's grace must not undo it.
    server = start_server(tmp_path, "--always-on-default")
    try:
        alice = _account(server, "alice")
        alice.send("JOIN #dev")
        alice.expect("366", p1="#dev")
        alice.send("QUIT")
        alice.expect("ERROR")
        time.sleep(1.6)
    finally:
        stop_server(server)
    again = start_server(tmp_path, "--always-on-default")
    try:
        bob = again.client()
        bob.register("bob")
        bob.expect("366", p1="#lobby")
        bob.send("NAMES #dev")
        names = [m for m in bob.lines_until("366") if m.command == "353"]
        assert [m.params[2:] for m in names] == [["#dev", "alice"]]
    finally:
        stop_server(again)
