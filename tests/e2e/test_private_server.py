"""A private server over real sockets (the server in this process, hashing on its thread pool): PASS in the
same burst as NICK and USER, a wrong one closes the connection, a huge one is only a line too long, and
WebSocket clients need it too."""

from __future__ import annotations

from salotto.clients.core import Client, SessionConfig
from salotto.passwords import hash_password
from tests.transport.inprocess import GENEROUS_S, InProcessServer, read_until_closed, serve_in_process
from tests.web.conftest import free_port
from tests.web.test_websocket import WsClient

PASSWORD = "friends only"
HASH = hash_password(PASSWORD, n=2**10)


def test_pass_over_tcp_and_websocket() -> None:
    web_port = free_port()

    def body(srv: InProcessServer) -> None:
        # One write: the NICK and USER behind PASS wait for its check, then register.
        member = srv.client()
        member.send_raw(f"PASS :{PASSWORD}\r\nNICK member\r\nUSER member 0 * :m\r\n".encode())
        assert member.expect("001").params[0] == "member"

        stranger = srv.client()
        stranger.send_raw(b"PASS :let me in\r\nNICK stranger\r\nUSER stranger 0 * :s\r\n")
        lines = read_until_closed(stranger)
        assert lines[0].split()[1:3] == ["464", "*"] and "Password incorrect" in lines[0], lines
        assert lines[1].startswith("ERROR :Closing link"), lines
        assert len(lines) == 2, lines

        # A PASS longer than a line is refused as any long line (417), costs no hash, and the connection
        # may go on.
        huge = srv.client()
        huge.send("PASS :" + "x" * 100_000)
        huge.expect("417")
        huge.send(f"PASS :{PASSWORD}")
        huge.send("NICK patient")
        huge.send("USER patient 0 * :p")
        huge.expect("001")

        browser = WsClient(f"ws://127.0.0.1:{web_port}/irc")
        browser.send("NICK nopass")
        browser.send("USER nopass 0 * :n")
        assert browser.expect("464").params[-1].startswith("Password required")
        browser.close()
        browser = WsClient(f"ws://127.0.0.1:{web_port}/irc")
        browser.send(f"PASS :{PASSWORD}")
        browser.send("NICK webmember")
        browser.send("USER webmember 0 * :w")
        assert browser.expect("001").params[0] == "webmember"
        browser.send("QUIT")
        browser.expect("ERROR")  # read what is queued: the client reads the close frame only after it
        browser.close()
        for client in (member, huge):
            client.close()
        assert any("wrong server password from 127.0.0.1" in line for line in srv.log_lines())
        assert not any(PASSWORD in line or "let me in" in line for line in srv.log_lines())

    serve_in_process(body, {"server_password_hash": HASH, "web_listen": [f"127.0.0.1:{web_port}"]})


def test_a_burst_from_one_address_with_the_password_all_get_in() -> None:
    """Fifteen connections at once from one address (an office behind NAT after a restart), more than
    login_attempts_per_ip, with a hash of the real cost on the real hashing threads: the checks overlap,
    and every connection gets in."""
    full_cost = hash_password(PASSWORD)

    def body(srv: InProcessServer) -> None:
        office = [srv.client() for _ in range(15)]
        for i, client in enumerate(office):
            client.send_raw(f"PASS :{PASSWORD}\r\nNICK office{i}\r\nUSER office{i} 0 * :o\r\n".encode())
        for i, client in enumerate(office):
            assert client.expect("001").params[0] == f"office{i}"
            client.close()

    serve_in_process(body, {"server_password_hash": full_cost, "login_attempts_per_ip": 3})


def test_a_client_held_back_by_the_limit_tries_again_and_gets_in() -> None:
    """Past the per-address limit even the right password waits, and the answer is one that clients
    retry (ERROR, no 464): salotto's own client reconnects and gets in once the address may try again."""

    def body(srv: InProcessServer) -> None:
        guesser = srv.client()
        guesser.send_raw(b"PASS :let me in\r\nNICK guesser\r\nUSER guesser 0 * :g\r\n")
        assert " 464 " in read_until_closed(guesser)[0]  # the address's one attempt of the window
        client = Client("127.0.0.1", srv.port, SessionConfig(nick="lee", server_password=PASSWORD),
                        reconnect_delays_s=[0.2])
        client.start()
        try:
            assert client.wait_until(lambda s: s.registered, GENEROUS_S), client.status
            assert client.session.refused is None
        finally:
            client.close()
        assert any("server password attempt from 127.0.0.1 held back" in line for line in srv.log_lines())

    serve_in_process(body, {"server_password_hash": HASH, "login_attempts_per_ip": 1, "login_throttle_window_s": 2})
