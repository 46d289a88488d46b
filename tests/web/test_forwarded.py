"""The web port behind a reverse proxy: Forwarded / X-Forwarded-For name the client only when the socket
peer is a trusted proxy. The "proxy" here is the test writing the headers from 127.0.0.1;
tests/interop/test_nginx.py puts the real one in front. Servers run in this process."""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from salotto.proto import parse
from tests.irc_client import RawClient
from tests.transport.inprocess import InProcessServer, serve_in_process, wait_until
from tests.web.conftest import free_port

TIMEOUT_S = 10.0
PROXY = "127.0.0.1"


class Web:
    """A WebSocket IRC client from ``source``, sending ``headers`` with its upgrade request."""

    def __init__(self, port: int, source: str, headers: dict[str, str] | list[tuple[str, str]] | None = None,
                 origin: str | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S, source_address=(source, 0))
        self.conn: ClientConnection = connect(
            f"ws://127.0.0.1:{port}/irc", sock=sock, subprotocols=["text.ircv3.net"],  # type: ignore[list-item]
            additional_headers=headers, origin=origin, open_timeout=TIMEOUT_S,  # type: ignore[arg-type]
            max_queue=None,  # close() must not wait for us
        ).__enter__()  # the library wants its context manager entered; closed by the server's shutdown

    def expect(self, command: str, **match: str) -> Any:
        while True:
            frame = self.conn.recv(timeout=TIMEOUT_S)
            msg = parse(frame if isinstance(frame, str) else frame.decode())
            if msg.command == command and all(msg.params[int(k[1:])] == v for k, v in match.items()):
                return msg

    def register(self, nick: str) -> None:
        self.conn.send(f"NICK {nick}")
        self.conn.send(f"USER {nick} 0 * :{nick}")
        self.expect("366")

    def whois_host(self, nick: str) -> str:
        self.conn.send(f"WHOIS {nick}")
        host: str = self.expect("311", p1=nick).params[3]
        return host


def serve(body: Any, **overrides: Any) -> None:
    port = free_port()
    serve_in_process(lambda srv: body(srv, port), {
        "web_listen": [f"127.0.0.1:{port}"], "trusted_proxies": [PROXY], **overrides,
    })


def test_a_trusted_proxy_names_the_client_with_either_header() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        alice = Web(port, PROXY, {"X-Forwarded-For": "198.51.100.66, 203.0.113.7"})
        alice.register("alice")
        bob = Web(port, PROXY, {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'})
        bob.register("bob")
        assert alice.expect("JOIN", p0="#lobby").source == "bob!~bob@2001:db8::1"
        assert bob.whois_host("alice") == "203.0.113.7"
        assert sorted(c.ip for c in srv.server.clients) == ["2001:db8::1", "203.0.113.7"]
        assert "connection from 203.0.113.7 (websocket)" in srv.log_lines()

    serve(body)


def test_a_client_that_is_not_a_trusted_proxy_gets_nothing_from_the_headers() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        mallory = Web(port, "127.0.0.9", [("X-Forwarded-For", "203.0.113.7"), ("Forwarded", "for=203.0.113.7")])
        mallory.register("mallory")
        assert mallory.whois_host("mallory") == "127.0.0.9"
        assert not any("trusted proxy" in line for line in srv.log_lines())

    serve(body)


def test_without_trusted_proxies_nobody_is_believed() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        web = Web(port, PROXY, {"X-Forwarded-For": "203.0.113.7"})
        web.register("web")
        assert web.whois_host("web") == PROXY

    serve(body, trusted_proxies=[])


def raw_request(port: int, source: str, headers: list[tuple[str, str]], *, upgrade: bool = True,
                path: str = "/irc") -> bytes:
    """One HTTP request from ``source`` (a WebSocket upgrade unless told otherwise); everything the server
    answers until it closes."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                  "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: text.ircv3.net"]
    lines += [f"{name}: {value}" for name, value in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S, source_address=(source, 0)) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


NOT_NAMED = b"The proxy's forwarding headers (Forwarded, X-Forwarded-For) don't name the client.\n"


def test_headers_from_the_proxy_that_do_not_name_the_client_get_400_never_its_address() -> None:
    """The proxy's address is in throttle_exempt by default: a user behind it who spoils the headers must
    not get it. The request is refused, whatever it asked; the log warns once per proxy."""

    def body(srv: InProcessServer, port: int) -> None:
        unusable = [
            [("X-Forwarded-For", "203.0.113.7, not-an-address")],
            [("Forwarded", "garbage")],
            [("Forwarded", 'for="unclosed')],
            [("Forwarded", "for=unknown")],
            # The user wrote a Forwarded header that the proxy passed on; its X-Forwarded-For disagrees.
            [("Forwarded", "for=198.51.100.1"), ("X-Forwarded-For", "198.51.100.1, 203.0.113.8")],
        ]
        for headers in unusable:
            answer = raw_request(port, PROXY, headers)
            assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and answer.endswith(NOT_NAMED), answer
        page = raw_request(port, PROXY, [("Forwarded", "garbage")], upgrade=False, path="/healthz")
        assert page.startswith(b"HTTP/1.1 400 ") and page.endswith(NOT_NAMED)
        # Without either header: the proxy's own health check is answered, an IRC client is not made.
        assert raw_request(port, PROXY, [], upgrade=False, path="/healthz").startswith(b"HTTP/1.1 200 ")
        assert raw_request(port, PROXY, []).startswith(b"HTTP/1.1 400 ")
        assert not srv.server.clients and srv.server.stats.connections_accepted == 0
        records = [r for r in srv.records if "trusted proxy 127.0.0.1" in r.getMessage()]
        assert [r.levelno for r in records] == [logging.WARNING] + [logging.DEBUG] * 6
        assert all(r.getMessage().endswith(("answered 400", "logged at debug level)")) for r in records)
        messages = [r.getMessage() for r in records]
        assert "malformed X-Forwarded-For header (bad node 'not-an-address')" in messages[0]
        assert "malformed Forwarded header (expected '=' after 'garbage')" in messages[1]
        assert "Forwarded names no client address" in messages[3]
        assert "Forwarded names 198.51.100.1 but X-Forwarded-For 203.0.113.8" in messages[4]
        assert "a WebSocket upgrade without Forwarded or X-Forwarded-For" in messages[6]
        # A usable header still makes a client, with the address it names.
        good = Web(port, PROXY, {"X-Forwarded-For": "203.0.113.9"})
        good.register("good")
        assert good.whois_host("good") == "203.0.113.9"

    serve(body)


def test_forty_forwarded_addresses_are_forty_limit_buckets_and_the_proxy_none() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        clients = []
        for i in range(1, 41):
            web = Web(port, PROXY, {"X-Forwarded-For": f"192.0.2.{i}"})
            web.register(f"web{i}")
            clients.append(web)
        wait_until(lambda: len(srv.server.clients) == 40)
        again = Web(port, PROXY, {"X-Forwarded-For": "192.0.2.7"})
        error = again.expect("ERROR")
        assert "192.0.2.7" in error.params[0] and "max_connections_per_ip" in error.params[0]
        # A direct TCP client on the same machine is not counted with the proxy's clients either.
        RawClient("127.0.0.1", srv.port).register("direct")
        for web in clients:
            web.conn.close()

    serve(body, max_connections_per_ip=1)


def test_the_pending_cap_per_address_does_not_apply_to_a_trusted_proxy() -> None:
    """Before its request arrives, a connection from the proxy could be anyone's: only max_pending_connections
    (in all) applies to it."""

    def body(srv: InProcessServer, port: int) -> None:
        def idle(source: str) -> socket.socket:
            return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S, source_address=(source, 0))

        def refused(sock: socket.socket) -> bool:
            sock.settimeout(0.3)
            try:
                return sock.recv(100).startswith(b"HTTP/1.1 503")
            except TimeoutError:
                return False

        from_proxy = [idle(PROXY) for _ in range(4)]
        assert not any(refused(sock) for sock in from_proxy)
        direct = [idle("127.0.0.9") for _ in range(2)]
        assert [refused(sock) for sock in direct] == [False, True]
        assert refused(idle(PROXY))  # six pending in all
        for sock in from_proxy + direct:
            sock.close()

    serve(body, max_pending_connections_per_ip=1, max_pending_connections=5)


def test_trusted_proxies_apply_from_a_reload_on(tmp_path: Path) -> None:
    config = tmp_path / "salotto.toml"
    config.write_text("trusted_proxies = []\n")
    port = free_port()

    def body(srv: InProcessServer) -> None:
        before = Web(port, PROXY, {"X-Forwarded-For": "203.0.113.7"})
        before.register("before")
        config.write_text('trusted_proxies = ["127.0.0.1"]\n')
        os.kill(os.getpid(), signal.SIGHUP)  # the server's loop runs in this process's main thread
        srv.wait_log("configuration reloaded")
        after = Web(port, PROXY, {"X-Forwarded-For": "203.0.113.8"})
        after.register("after")
        assert after.whois_host("before") == PROXY
        assert after.whois_host("after") == "203.0.113.8"

    serve_in_process(body, {"web_listen": [f"127.0.0.1:{port}"]}, config_path=str(config))
