"""A private server over real sockets (the server in this process, hashing on its thread pool): PASS in the
same burst as NICK and USER, a wrong one closes the connection, a huge one is only a line too long, and
WebSocket clients need it too."""

from __future__ import annotations

from salotto.passwords import hash_password
from tests.transport.inprocess import InProcessServer, read_until_closed, serve_in_process
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
