"""A ``proxy_listen`` port from real sockets: the PROXY header decides the client's address, only from a
trusted proxy, and a header that is missing, bad, slow or huge closes the connection. The "proxy" here is
the test writing headers by hand from 127.0.0.1; tests/interop/test_haproxy.py puts the real one in front.
Servers run in this process (see ``inprocess.py``)."""

from __future__ import annotations

import ipaddress
import struct
import time
from typing import Any

import pytest

from salotto.transport import stream
from salotto.transport.proxy_protocol import V2_SIGNATURE
from tests.irc_client import RawClient
from tests.transport.inprocess import InProcessServer, read_until_closed, serve_in_process, wait_until
from tests.web.conftest import free_port

PROXY = "127.0.0.1"  # the trusted proxy: the tests' own sockets from this address


def v1(source: str, port: int = 4711) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    destination = "::1" if family == "TCP6" else "127.0.0.1"
    return f"PROXY {family} {source} {destination} {port} 6667\r\n".encode()


def v2(source: str | None, port: int = 4711, tlvs: bytes = b"") -> bytes:
    """A version 2 PROXY header; ``source`` None: the LOCAL command (a health check)."""
    if source is None:
        return V2_SIGNATURE + b"\x20\x00\x00\x00"
    address = ipaddress.ip_address(source)
    destination = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    block = address.packed + destination.packed + struct.pack("!HH", port, 6667) + tlvs
    family = 0x11 if address.version == 4 else 0x21
    return V2_SIGNATURE + bytes((0x21, family)) + struct.pack("!H", len(block)) + block


def serve_proxied(body: Any, **overrides: Any) -> None:
    """Serve with a proxy_listen port trusting 127.0.0.1; ``body(srv, proxy_port)``."""
    port = free_port()
    serve_in_process(lambda srv: body(srv, port), {
        "proxy_listen": [f"127.0.0.1:{port}"], "trusted_proxies": [PROXY], **overrides,
    })


def proxied(port: int, header: bytes, *, source: str = PROXY) -> RawClient:
    client = RawClient("127.0.0.1", port, source=source)
    if header:
        client.send_raw(header)
    return client


def whois_host(asker: RawClient, nick: str) -> str:
    asker.send(f"WHOIS {nick}")
    host: str = asker.expect("311", p1=nick).params[3]
    asker.expect("318")
    return host


def test_v1_and_v2_headers_name_the_client_everywhere() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        alice = proxied(port, v1("203.0.113.7"))
        alice.register("alice")
        alice.expect("366")
        bob = proxied(port, v2("198.51.100.20"))
        joined = bob.register("bob")
        assert any(m.command == "001" for m in joined)
        # The prefix of bob's JOIN as alice sees it, WHOIS, and the server's own records and log.
        assert alice.expect("JOIN", p0="#lobby").source == "bob!~bob@198.51.100.20"
        assert whois_host(bob, "alice") == "203.0.113.7"
        assert whois_host(alice, "bob") == "198.51.100.20"
        assert sorted(c.ip for c in srv.server.clients) == ["198.51.100.20", "203.0.113.7"]
        assert "connection from 203.0.113.7 (tcp)" in srv.log_lines()
        assert srv.server.per_ip[PROXY] == 0

    serve_proxied(body)


def test_ipv6_client_through_v1_and_v2() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        alice = proxied(port, v1("2001:db8::7"))
        alice.register("alice")
        bob = proxied(port, v2("2001:DB8:0:0::20"))
        bob.register("bob")
        assert whois_host(bob, "alice") == "2001:db8::7"
        assert whois_host(alice, "bob") == "2001:db8::20"

    serve_proxied(body)


def test_header_and_the_first_lines_in_one_write_and_a_header_split_over_several() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        client = RawClient("127.0.0.1", port, source=PROXY)
        client.send_raw(v2("192.0.2.1", tlvs=b"\x01\x00\x03irc") + b"NICK carol\r\nUSER carol 0 * :C\r\n")
        client.expect("001")
        split = RawClient("127.0.0.1", port, source=PROXY)
        header = v1("192.0.2.2")
        for piece in (header[:3], header[3:20], header[20:-1], header[-1:] + b"NICK dave\r\n"):
            split.send_raw(piece)
            time.sleep(0.02)
        split.send("USER dave 0 * :D")
        split.expect("001")
        assert whois_host(client, "dave") == "192.0.2.2"

    serve_proxied(body)


def test_v2_local_and_v1_unknown_are_the_proxy_itself() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        check = proxied(port, v2(None))
        check.register("check")
        other = proxied(port, b"PROXY UNKNOWN\r\n")
        other.register("other")
        assert whois_host(other, "check") == PROXY
        assert whois_host(check, "other") == PROXY

    serve_proxied(body)


def test_a_peer_that_is_not_a_trusted_proxy_gets_nothing_from_a_valid_header() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        attacker = proxied(port, v1("198.51.100.99") + b"NICK mallory\r\nUSER m 0 * :M\r\n", source="127.0.0.9")
        lines = read_until_closed(attacker)
        assert lines == ["ERROR :Closing link: 127.0.0.9 (This port takes connections from the server's proxy only)"]
        srv.wait_log("refused connection from 127.0.0.9 on a proxy_listen port: not in trusted_proxies")
        assert not srv.server.clients
        assert srv.server.stats.connections_accepted == 0

    serve_proxied(body)


@pytest.mark.parametrize("data", [
    b"NICK alice\r\nUSER alice 0 * :A\r\n",  # an IRC client straight from the proxy's host
    b"PROXY TCP4 203.0.113.7 127.0.0.1 4711 6667\n",  # LF alone
    b"PROXY TCP4 203.0.113.07 127.0.0.1 4711 6667\r\n",
    V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\0" * 12,  # command 2
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_a_bad_header_from_the_trusted_proxy_is_refused_with_a_log_line(data: bytes) -> None:
    def body(srv: InProcessServer, port: int) -> None:
        client = proxied(port, data)
        assert read_until_closed(client) == [f"ERROR :Closing link: {PROXY} (Bad PROXY protocol header)"]
        line = srv.wait_log("on a proxy_listen port: bad PROXY header")
        assert line.startswith(f"refused connection from {PROXY}")
        assert not srv.server.clients

    serve_proxied(body)


def test_an_oversized_v2_header_is_refused_before_it_is_sent() -> None:
    def body(srv: InProcessServer, port: int) -> None:
        client = proxied(port, V2_SIGNATURE + b"\x21\x11\xff\xff")  # announces 64 KiB
        assert read_until_closed(client) == [f"ERROR :Closing link: {PROXY} (Bad PROXY protocol header)"]
        srv.wait_log("more than 4096")
        endless = proxied(port, b"PROXY TCP4 " + b"1" * 200)
        read_until_closed(endless)
        srv.wait_log("longer than 107 bytes")

    serve_proxied(body)


def test_a_header_that_never_completes_is_timed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "PROXY_HEADER_TIMEOUT_S", 0.3)

    def body(srv: InProcessServer, port: int) -> None:
        silent = proxied(port, b"")
        slow = proxied(port, v1("192.0.2.1")[:-2])
        started = time.monotonic()
        for client in (silent, slow):
            assert read_until_closed(client) == [f"ERROR :Closing link: {PROXY} (PROXY header timeout)"]
        assert time.monotonic() - started < 5
        wait_until(lambda: sum("no complete PROXY header within 0.3 s" in line for line in srv.log_lines()) == 2)
        assert not srv.server.clients

    serve_proxied(body)


def test_each_forwarded_address_is_its_own_limit_bucket() -> None:
    """40 clients through one proxy with max_connections_per_ip = 1: 40 addresses, 40 buckets; a second
    connection from one of them is refused, the proxy's own address counts nothing."""

    def body(srv: InProcessServer, port: int) -> None:
        clients = [proxied(port, v2(f"192.0.2.{i}")) for i in range(1, 41)]
        for i, client in enumerate(clients, 1):
            client.register(f"user{i}")
        wait_until(lambda: len(srv.server.clients) == 40)
        again = proxied(port, v1("192.0.2.7"))
        lines = read_until_closed(again)
        assert lines and "Too many connections from your address (max_connections_per_ip)" in lines[-1]
        assert "192.0.2.7" in lines[-1]
        fresh = proxied(port, v1("192.0.2.41"))
        fresh.register("fresh")
        for client in clients:
            client.close()

    serve_proxied(body, max_connections_per_ip=1)


def test_an_ordinary_listener_does_not_read_proxy_headers() -> None:
    """A client sending a PROXY line to the plain port is an IRC client that sent an unknown command."""

    def body(srv: InProcessServer, port: int) -> None:
        client = RawClient(srv.host, srv.port, source="127.0.0.5")
        client.send_raw(v1("198.51.100.99"))
        client.register("eve")
        assert whois_host(client, "eve") == "127.0.0.5"

    serve_proxied(body)


def test_the_proxy_listener_announces_itself_and_may_be_the_only_irc_listener() -> None:
    port = free_port()

    def body(srv: InProcessServer) -> None:
        client = proxied(port, v1("192.0.2.5"))
        client.register("only")
        assert whois_host(client, "only") == "192.0.2.5"

    # The in-process harness finds the server by its first "listening on" line: here the proxy port.
    serve_in_process(body, {"listen": [], "proxy_listen": [f"127.0.0.1:{port}"], "trusted_proxies": [PROXY]})

