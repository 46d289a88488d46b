"""Registration, capabilities, nick changes, timers and connection limits."""

from __future__ import annotations

import socket
from pathlib import Path

from salotto.proto import parse
from salotto.proto.numerics import (
    ERR_ALREADYREGISTERED,
    ERR_ERRONEUSNICKNAME,
    ERR_NEEDMOREPARAMS,
    ERR_NICKNAMEINUSE,
    ERR_NOTREGISTERED,
    ERR_UNKNOWNCOMMAND,
    RPL_ENDOFMOTD,
    RPL_ISUPPORT,
    RPL_WELCOME,
)
from tests.conftest import start_server, stop_server
from tests.server.harness import Harness, MemoryConnection


def test_welcome_burst_then_autojoin_lobby() -> None:
    h = Harness()
    user = h.connect()
    user.send("NICK alice")
    user.send("USER alice 0 * :Alice Liddell")
    lines = user.lines()
    commands = [parse(line).command for line in lines]
    assert commands[:4] == ["001", "002", "003", "004"]
    assert RPL_ISUPPORT in commands and RPL_ENDOFMOTD in commands
    assert lines[0].endswith("alice!~alice@127.0.0.1")
    assert ":alice!~alice@127.0.0.1 JOIN #lobby" in lines
    assert commands.index("JOIN") > commands.index(RPL_ENDOFMOTD)
    isupport = " ".join(line for line in lines if " 005 " in line)
    assert "CASEMAPPING=rfc1459" in isupport and "NICKLEN=30" in isupport


def test_autojoin_channel_exists_from_start_and_first_arrival_is_not_operator() -> None:
    h = Harness()
    assert h.server.find_channel("#lobby") is not None
    alice = h.user("alice")
    lobby = h.server.find_channel("#LOBBY")
    assert lobby is not None and lobby.members[alice.client] == ""
    alice.send("PART #lobby")
    assert h.server.find_channel("#lobby") is not None, "autojoin channels outlive their members"


def test_autojoin_empty_list_disables_it() -> None:
    h = Harness(autojoin=[])
    alice = h.user("alice")
    assert alice.client.channels == {}


def test_two_users_in_lobby_see_each_other() -> None:
    h = Harness()
    alice = h.user("alice")
    bob = h.user("bob")
    assert ":bob!~bob@127.0.0.1 JOIN #lobby" in alice.lines()
    bob.send("PRIVMSG #lobby :hi alice")
    assert alice.lines() == [":bob!~bob@127.0.0.1 PRIVMSG #lobby :hi alice"]


def test_commands_before_registration_get_451() -> None:
    h = Harness()
    user = h.connect()
    user.send("JOIN #x")
    user.send("FOO")
    assert user.numerics() == [ERR_NOTREGISTERED, ERR_NOTREGISTERED]


def test_unknown_command_421_and_missing_params_461() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("FROBNICATE a b")
    alice.send("KICK #lobby")
    assert alice.numerics() == [ERR_UNKNOWNCOMMAND, ERR_NEEDMOREPARAMS]


def test_nick_in_use_and_erroneous() -> None:
    h = Harness()
    h.user("alice")
    user = h.connect()
    user.send("NICK ALICE")
    user.send("NICK 1abc")
    user.send("NICK " + "a" * 31)
    assert user.numerics() == [ERR_NICKNAMEINUSE, ERR_ERRONEUSNICKNAME, ERR_ERRONEUSNICKNAME]
    user.send("NICK [alice]")
    user.send("USER x 0 * :x")
    assert RPL_WELCOME in user.numerics()


def test_nick_casemapping_rfc1459() -> None:
    h = Harness()
    h.user("a[b]")
    user = h.connect()
    user.send("NICK A{B}")
    assert user.numerics() == [ERR_NICKNAMEINUSE]


def test_nick_change_is_seen_by_channel_peers_and_frees_old_nick() -> None:
    h = Harness()
    alice = h.user("alice")
    bob = h.user("bob")
    alice.lines()
    bob.send("NICK robert")
    assert bob.lines() == [":bob!~bob@127.0.0.1 NICK robert"]
    assert alice.lines() == [":bob!~bob@127.0.0.1 NICK robert"]
    assert h.server.find_user("bob") is None
    carol = h.user("bob")
    assert carol.client.nick == "bob"


def test_user_twice_is_462() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("USER again 0 * :x")
    assert alice.numerics() == [ERR_ALREADYREGISTERED]


def test_cap_negotiation_holds_registration_until_end() -> None:
    h = Harness()
    user = h.connect()
    user.send("CAP LS 302")
    caps = " ".join(parse(line).params[-1] for line in user.lines())
    for cap in ("message-tags", "server-time", "echo-message", "batch", "labeled-response", "multi-prefix",
                "userhost-in-names", "extended-join", "away-notify", "setname", "chghost", "invite-notify",
                "cap-notify"):
        assert cap in caps.split()
    user.send("NICK alice")
    user.send("USER alice 0 * :A")
    assert user.lines() == [], "registration waits for CAP END"
    user.send("CAP REQ :server-time echo-message")
    assert user.lines() == [":salotto.local CAP alice ACK :server-time echo-message"]
    user.send("CAP REQ :server-time no-such-cap")
    assert user.lines() == [":salotto.local CAP alice NAK :server-time no-such-cap"]
    user.send("CAP LIST")
    listed = parse(user.lines()[0]).params[-1].split()
    assert set(listed) == {"server-time", "echo-message", "cap-notify"}
    user.send("CAP END")
    assert RPL_WELCOME in user.numerics()


def test_cap_req_removal() -> None:
    h = Harness()
    alice = h.user("alice", caps=["server-time", "echo-message"])
    alice.send("CAP REQ :-echo-message")
    alice.lines()
    assert alice.client.caps == {"server-time", "cap-notify"}


def test_ping_pong() -> None:
    h = Harness()
    alice = h.user("alice")
    alice.send("PING :abc def")
    assert alice.lines() == [":salotto.local PONG salotto.local :abc def"]


def test_quit_tells_peers_and_closes() -> None:
    h = Harness()
    alice = h.user("alice")
    bob = h.user("bob")
    alice.lines()
    bob.send("QUIT :see you")
    assert alice.lines() == [":bob!~bob@127.0.0.1 QUIT :Quit: see you"]
    assert bob.lines()[-1].startswith("ERROR :Closing link")
    assert bob.conn.closed is not None
    assert h.server.find_user("bob") is None and bob.client not in h.server.find_channel("#lobby").members


def test_registration_timeout() -> None:
    h = Harness(registration_timeout_s=10.0)
    idle = h.connect()
    h.clock.now += 5
    h.server.tick()
    assert idle.conn.closed is None
    h.clock.now += 6
    h.server.tick()
    assert idle.conn.closed == "Registration timeout"
    assert idle.client not in h.server.clients


def test_ping_then_ping_timeout() -> None:
    h = Harness(ping_interval_s=60.0, ping_timeout_s=30.0)
    alice = h.user("alice")
    bob = h.user("bob")
    h.clock.now += 61
    h.server.tick()
    assert alice.lines()[-1] == "PING :salotto.local"
    assert bob.lines()[-1] == "PING :salotto.local"
    bob.send("PONG :salotto.local")
    h.clock.now += 31
    h.server.tick()
    assert alice.conn.closed is not None and alice.conn.closed.startswith("Ping timeout: 92 seconds")
    assert bob.conn.closed is None
    assert any("QUIT :Ping timeout" in line for line in bob.lines())


def test_connections_per_ip_limit() -> None:
    h = Harness(max_connections_per_ip=2)
    first, second = h.connect("10.0.0.1"), h.connect("10.0.0.1")
    refused = h.server.accept(conn := MemoryConnection("10.0.0.1"))
    assert refused is None
    assert conn.data.startswith(b"ERROR :Closing link") and b"max_connections_per_ip" in conn.data
    assert h.connect("10.0.0.2").client is not None
    first.send("QUIT")
    assert h.connect("10.0.0.1").client is not None, "a slot frees when a connection leaves"
    assert second.conn.closed is None


def test_max_clients_limit() -> None:
    h = Harness(max_clients=2)
    h.connect("10.0.0.1")
    h.connect("10.0.0.2")
    conn = MemoryConnection("10.0.0.3")
    assert h.server.accept(conn) is None
    assert b"max_clients" in conn.data and conn.closed is not None


def test_stats_count_connections_messages_and_disconnect_reasons() -> None:
    h = Harness(max_connections_per_ip=3)
    alice = h.user("alice")
    bob = h.user("bob")
    carol = h.user("carol", caps=["echo-message"])
    assert h.server.accept(MemoryConnection("127.0.0.1")) is None
    carol.send("PRIVMSG #lobby :hi")
    alice.send("PRIVMSG bob :psst")
    stats = h.server.stats
    assert (stats.connections_accepted, stats.connections_refused, stats.registrations) == (3, 1, 3)
    assert stats.messages_in == 2
    assert stats.deliveries_out == 2 + 1 + 1, "two in #lobby, carol's echo, bob's private message"
    bob.send("QUIT :bye")
    h.clock.now += 1000
    h.server.tick()
    h.clock.now += 1000
    h.server.tick()
    assert stats.disconnects == {"quit": 1, "ping_timeout": 2}



def _cap_ls(tmp_path: Path, *extra: str) -> list[str]:
    """The CAP LS 302 reply of a real server (accounts, history, search, push and uploads on: every cap)."""
    tmp_path.mkdir()
    server = start_server(tmp_path, "--web-listen", "127.0.0.1:0", *extra)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"CAP LS 302\r\n")
            received = b""
            while not received.endswith(b"\r\n") or parse(received.decode().split("\r\n")[-2]).params[2] == "*":
                chunk = sock.recv(4096)
                assert chunk, f"closed after {received!r}"
                received += chunk
        return received.decode().split("\r\n")[:-1]
    finally:
        stop_server(server)


def test_cap_ls_is_one_line_when_it_fits_and_every_line_fits_in_512_bytes(tmp_path: Path) -> None:
    """Clients that read only the first CAP LS line (pydle 1.2) see every capability while one line of 512
    bytes holds them; a server name long enough to push them past it continues them with ``*``, and no line
    is longer than 512 bytes."""
    lines = _cap_ls(tmp_path / "short")
    assert len(lines) == 1 and len(lines[0].encode()) + 2 <= 512
    offered = set(parse(lines[0]).params[-1].split())
    assert {"sasl=PLAIN,SCRAM-SHA-256", "soju.im/search", "soju.im/webpush", "draft/chathistory"} <= offered
    lines = _cap_ls(tmp_path / "long", "--server-name", "irc." + "x" * 60 + "." + "y" * 60 + ".org")
    assert len(lines) >= 2 and all(len(line.encode()) + 2 <= 512 for line in lines)
    assert {cap for line in lines for cap in parse(line).params[-1].split()} == offered
