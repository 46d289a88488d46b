"""A client with several servers (a cluster's nodes) moves to the next one when its server goes.

The live tests run two real salotto servers, each in its own data directory, and kill one for real
(SIGKILL, or SIGSTOP for a server that stops answering): the client must carry on on the other, with
its nick and its channels, and see what is said there.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from salotto.clients.core import SERVER_KEY, Client, LineKind, SessionConfig
from salotto.clients.core.servers import MAX_SERVERS, Server, ServerListError, format_servers, parse_servers
from tests.clients.conftest import free_port
from tests.clients.test_live import has_line, joined
from tests.clients.test_session import feed, make, register
from tests.conftest import RunningServer
from tests.irc_client import RawClient

WAIT_S = 10.0
# How soon after its server dies the client must be back in its channels on the other one.
FAILOVER_S = 5.0


# -- the list ---------------------------------------------------------------------------------------


def test_a_list_of_servers_is_read_in_order_with_default_ports() -> None:
    assert parse_servers("a.example.org") == (Server("a.example.org", 6667),)
    assert parse_servers(" 127.0.0.1:6667, 127.0.0.1:6668 ,b.example.org", 6697) == (
        Server("127.0.0.1", 6667), Server("127.0.0.1", 6668), Server("b.example.org", 6697))
    assert parse_servers("[::1]:7000,::1") == (Server("::1", 7000), Server("::1", 6667))
    servers = parse_servers("a:1,[::1]:2,b")
    assert format_servers(servers) == "a:1,[::1]:2,b:6667"
    assert parse_servers(format_servers(servers)) == servers


@pytest.mark.parametrize(("text", "says"), [
    ("", "no server given"),
    ("  ", "no server given"),
    ("a:6667,,b:6667", "server 2 of 3 in 'a:6667,,b:6667' is empty"),
    ("a:6667,", "server 2 of 2 in 'a:6667,' is empty"),
    ("a:6667,b:port", "'b:port': the port must be a number from 1 to 65535, not 'port'"),
    ("a:6667,b:99999", "'b:99999': the port must be a number from 1 to 65535"),
    ("a:0", "'a:0': the port must be"),
    ("a:", "'a:': the port must be"),
    (":6667", "':6667': the server's name or address is missing"),
    ("[::1:6667", "'[::1:6667': an IPv6 address in [ ] needs its closing ]"),
    ("[::1]6667", "'[::1]6667': after [address] only :PORT may follow"),
    ("a b:6667", "'a b:6667': a server's name has no spaces"),
    (",".join(["a"] * (MAX_SERVERS + 1)), f"at most {MAX_SERVERS}"),
])
def test_a_bad_entry_is_named_in_the_error(text: str, says: str) -> None:
    with pytest.raises(ServerListError) as caught:
        parse_servers(text)
    assert says in str(caught.value)


def test_the_nick_the_user_chose_is_asked_for_again_after_a_reconnection() -> None:
    session = make()
    register(session)  # as "me"
    feed(session, ":me!u@h NICK :giulia")
    session.disconnected("gone")
    session.begin()
    assert "NICK giulia" in session.take_outbox()
    # Taken on the new server (its old connection not gone yet): the usual fallback, from that nick.
    assert feed(session, ":srv 433 * giulia :Nickname is already in use") == ["NICK giulia_"]
    # A fallback nick given at registration is not a choice: the next connection asks for giulia again.
    feed(session, ":srv 001 giulia_ :Welcome", ":srv 376 giulia_ :End of MOTD")
    session.disconnected("gone")
    session.begin()
    assert "NICK giulia" in session.take_outbox()


# -- two live servers -------------------------------------------------------------------------------


def address(server: RunningServer) -> Server:
    return Server(server.host, server.port)


def kill(server: RunningServer) -> None:
    server.process.kill()  # SIGKILL: no QUIT, no ERROR, the kernel just closes the sockets
    server.process.wait(WAIT_S)


def say_in_lobby(server: RunningServer, nick: str, text: str) -> RawClient:
    """Another user, on ``server``, says ``text`` in #lobby (where salotto puts everyone)."""
    other = server.client()
    other.register(nick)
    other.expect("JOIN", p0="#lobby")
    other.send(f"PRIVMSG #lobby :{text}")
    return other


def connection_attempts(client: Client) -> int:
    return sum(ln.text.startswith("Connecting to") for ln in client.session.buffers[SERVER_KEY].lines)


def test_when_its_server_is_killed_the_client_carries_on_on_the_next(
        two_salottos: tuple[RunningServer, RunningServer]) -> None:
    a, b = two_salottos
    client = Client(a.host, a.port, SessionConfig(nick="carol"), more_servers=[address(b)],
                    reconnect_delays_s=(0.5, 1.0))
    client.start()
    others: list[RawClient] = []
    try:
        assert client.wait_until(joined("#lobby"), WAIT_S)
        client.input("/join #extra")
        assert client.wait_until(joined("#extra"), WAIT_S)
        assert client.status == f"connected to {address(a)}"

        kill(a)
        killed_at = time.monotonic()
        assert client.wait_until(lambda s: client.server == address(b) and joined("#lobby")(s)
                                 and joined("#extra")(s), FAILOVER_S), client.status
        assert time.monotonic() - killed_at < FAILOVER_S
        assert client.server == address(b) and client.status == f"connected to {address(b)}"
        assert client.session.nick == "carol"
        # Every tab says which server went and where the client went.
        for name in ("#lobby", "#extra", SERVER_KEY):
            assert has_line(name, f"Connection to {address(a)} lost", LineKind.ERROR)(client.session), name
            assert has_line(name, f"connecting to {address(b)}...", LineKind.ERROR)(client.session), name

        others.append(say_in_lobby(b, "dora", "hello from b"))
        assert client.wait_until(has_line("#lobby", "hello from b", LineKind.MESSAGE), WAIT_S)
        client.session.set_active("#lobby")  # /join showed #extra
        client.input("and carol is here")
        others[0].expect("PRIVMSG", p0="#lobby", p1="and carol is here")

        # Now B goes too, while A is still down: the client keeps trying A and B in turn, waiting the
        # backoff between attempts (the immediate retry was used), never in a tight loop.
        others[0].close()
        others.clear()
        kill(b)
        assert client.wait_until(lambda _s: "lost" in client.status, WAIT_S)
        assert client.status.startswith(f"connection to {address(b)} lost (")
        assert client.status.endswith(f"; connecting to {address(a)} in 0.5 s")
        before = connection_attempts(client)
        client.wait_until(lambda _s: False, 2.0)  # attempts at 0.5 s (A) and 1.5 s (B)
        assert 1 <= connection_attempts(client) - before <= 3
        failed = re.fullmatch(r"could not connect to (\S+) \(connection refused\); connecting to (\S+) in 1 s",
                              client.status)
        assert failed is not None, client.status
        assert {failed[1], failed[2]} == {str(address(a)), str(address(b))}
    finally:
        for other in others:
            other.close()
        client.close()


def test_a_server_that_stops_answering_is_left_for_the_next(
        two_salottos: tuple[RunningServer, RunningServer]) -> None:
    """A frozen node (SIGSTOP: the connection stays open, nothing comes back): the PING goes unanswered."""
    a, b = two_salottos
    client = Client(a.host, a.port, SessionConfig(nick="carol"), more_servers=[address(b)],
                    ping_interval_s=0.5, ping_timeout_s=2.0)
    client.start()
    try:
        assert client.wait_until(joined("#lobby"), WAIT_S)
        a.process.send_signal(signal.SIGSTOP)
        assert client.wait_until(lambda s: client.server == address(b) and joined("#lobby")(s), WAIT_S), (
            client.status)
        assert has_line("#lobby", f"Connection to {address(a)} lost (no answer for 2 s); "
                        f"connecting to {address(b)}...")(client.session)
    finally:
        client.close()


def test_the_first_server_down_at_start_the_client_goes_to_the_next_at_once(
        two_salottos: tuple[RunningServer, RunningServer]) -> None:
    a_port = Server("127.0.0.1", 1)  # nothing listens on port 1 here
    _a, b = two_salottos
    client = Client(a_port.host, a_port.port, SessionConfig(nick="carol"), more_servers=[address(b)])
    client.start()
    try:
        started = time.monotonic()
        assert client.wait_until(joined("#lobby"), FAILOVER_S)
        assert time.monotonic() - started < FAILOVER_S
        assert has_line(SERVER_KEY, f"Could not connect to {a_port} (connection refused); "
                        f"connecting to {address(b)}...", LineKind.ERROR)(client.session)
    finally:
        client.close()


def test_a_fallback_nick_is_traded_for_the_wanted_one_when_its_holder_goes() -> None:
    """After a move, the dead connection may hold the nick until the network sees it go (a QUIT)."""
    session = make("giulia")
    assert feed(session, ":srv 433 * giulia :Nickname is already in use") == ["NICK giulia_"]
    feed(session, ":srv 001 giulia_ :Welcome", ":srv 376 giulia_ :End of MOTD", ":giulia_!u@h JOIN #lobby",
         ":srv 353 giulia_ = #lobby :giulia_ giulia bob", ":srv 366 giulia_ #lobby :End")
    assert feed(session, ":bob!u@h QUIT :bye") == []  # someone else: nothing to do
    assert feed(session, ":giulia!u@h QUIT :node a is gone") == ["NICK giulia"]
    feed(session, ":giulia_!u@h NICK :giulia")
    assert session.nick == "giulia" and session.wanted_nick == "giulia"
    # Holding the wanted nick already, nobody else's leaving sends anything.
    assert feed(session, ":bob2!u@h JOIN #lobby", ":bob2!u@h NICK :giulia2", ":giulia2!u@h QUIT :x") == []


def test_the_client_moved_to_a_server_where_its_nick_is_held_gets_it_back_when_freed(
        two_salottos: tuple[RunningServer, RunningServer]) -> None:
    """What a cluster does after kill -9 of a node: the nick stays taken on B until B drops the ghost."""
    a, b = two_salottos
    ghost = b.client()
    ghost.register("carol")
    client = Client(a.host, a.port, SessionConfig(nick="carol"), more_servers=[address(b)])
    client.start()
    try:
        assert client.wait_until(joined("#lobby"), WAIT_S)
        kill(a)
        assert client.wait_until(lambda s: client.server == address(b) and joined("#lobby")(s), FAILOVER_S)
        assert client.session.nick == "carol_"
        ghost.send("QUIT :node a is gone")
        assert client.wait_until(lambda s: s.nick == "carol", WAIT_S)
    finally:
        ghost.close()
        client.close()


def test_the_list_is_tried_in_order_round_robin_with_the_backoff_after_the_first_retry(
        two_salottos: tuple[RunningServer, RunningServer]) -> None:
    """Two dead entries before the live one: at once to the second, the backoff to the third; when the
    third goes, back to the first of the list."""
    _a, b = two_salottos
    dead = [Server("127.0.0.1", free_port()), Server("127.0.0.1", free_port())]  # nothing listens there
    client = Client(dead[0].host, dead[0].port, SessionConfig(nick="carol"), more_servers=[*dead[1:], address(b)],
                    reconnect_delays_s=(0.3, 0.6))
    client.start()
    try:
        assert client.wait_until(joined("#lobby"), FAILOVER_S)
        assert client.server == address(b)
        notes = [ln.text for ln in client.session.buffers[SERVER_KEY].lines if ln.kind is LineKind.ERROR]
        assert notes == [
            f"Could not connect to {dead[0]} (connection refused); connecting to {dead[1]}...",
            f"Could not connect to {dead[1]} (connection refused); connecting to {address(b)} in 0.3 s...",
        ]
        kill(b)
        assert client.wait_until(has_line(SERVER_KEY, f"Could not connect to {dead[0]} (connection refused); "
                                          f"connecting to {dead[1]} in 0.6 s..."), WAIT_S)
        lost = [ln.text for ln in client.session.buffers[SERVER_KEY].lines if "lost" in ln.text]
        assert len(lost) == 1 and lost[0].startswith(f"Connection to {address(b)} lost ("), lost
        assert lost[0].endswith(f"; connecting to {dead[0]} in 0.3 s..."), lost  # the quick retry was used
    finally:
        client.close()
