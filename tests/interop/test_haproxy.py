"""HAProxy (Debian's) in TCP mode in front of a proxy_listen port, with send-proxy-v2 and send-proxy (v1):
clients connect through it from distinct loopback addresses and the server sees each one, in WHOIS, the
prefix, the log and its per-address limits. The server runs in this process (tests/transport/inprocess.py)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.interop.reverse_proxies import haproxy
from tests.irc_client import RawClient
from tests.transport.inprocess import InProcessServer, read_until_closed, serve_in_process, wait_until
from tests.web.conftest import free_port


def serve_behind_haproxy(tmp_path: Path, send_proxy: str, body: Any, *, listen_host: str = "127.0.0.1",
                         **overrides: Any) -> None:
    backend = free_port()

    def run(srv: InProcessServer) -> None:
        with haproxy(tmp_path / "haproxy", f"127.0.0.1:{backend}", send_proxy, listen_host) as port:
            body(srv, port, backend)

    serve_in_process(run, {"proxy_listen": [f"127.0.0.1:{backend}"], "trusted_proxies": ["127.0.0.1"],
                           **overrides})


def whois_host(asker: RawClient, nick: str) -> str:
    asker.send(f"WHOIS {nick}")
    host: str = asker.expect("311", p1=nick).params[3]
    asker.expect("318")
    return host


def test_send_proxy_v2_each_client_is_its_own_address(tmp_path: Path) -> None:
    def body(srv: InProcessServer, port: int, backend: int) -> None:
        alice = RawClient("127.0.0.1", port, source="127.0.0.5")
        alice.register("alice")
        alice.expect("366")
        bob = RawClient("127.0.0.1", port, source="127.0.0.6")
        bob.register("bob")
        assert alice.expect("JOIN", p0="#lobby").source == "bob!~bob@127.0.0.6"
        assert whois_host(bob, "alice") == "127.0.0.5"
        assert whois_host(alice, "bob") == "127.0.0.6"
        assert "connection from 127.0.0.5 (tcp)" in srv.log_lines()
        # max_connections_per_ip = 2 applies to each real client, not to haproxy's one address.
        second = RawClient("127.0.0.1", port, source="127.0.0.5")
        second.register("alice2")
        third = RawClient("127.0.0.1", port, source="127.0.0.5")
        lines = read_until_closed(third)
        assert lines and lines[-1].startswith("ERROR :Closing link: 127.0.0.5 (Too many connections from your address")
        carol = RawClient("127.0.0.1", port, source="127.0.0.7")
        carol.register("carol")
        assert srv.server.per_ip["127.0.0.5"] == 2 and srv.server.per_ip["127.0.0.7"] == 1
        # haproxy's own connections (its health checks, which may reset before a byte) are never refused.
        assert not any("on a proxy_listen port" in line and "refused" in line for line in srv.log_lines())

    serve_behind_haproxy(tmp_path, "send-proxy-v2", body, max_connections_per_ip=2)


def test_send_proxy_v1_and_a_client_that_bypasses_the_proxy(tmp_path: Path) -> None:
    def body(srv: InProcessServer, port: int, backend: int) -> None:
        dave = RawClient("127.0.0.1", port, source="127.0.0.8")
        dave.register("dave")
        assert whois_host(dave, "dave") == "127.0.0.8"
        # Straight to the proxy_listen port, with a header of its own: not haproxy, so refused.
        mallory = RawClient("127.0.0.1", backend, source="127.0.0.9")
        mallory.send_raw(b"PROXY TCP4 203.0.113.7 127.0.0.1 4711 6667\r\nNICK mallory\r\nUSER m 0 * :M\r\n")
        assert read_until_closed(mallory) == [
            "ERROR :Closing link: 127.0.0.9 (This port takes connections from the server's proxy only)"]
        srv.wait_log("refused connection from 127.0.0.9 on a proxy_listen port: not in trusted_proxies")
        assert srv.server.find_user("mallory") is None
        assert not any(c.ip == "203.0.113.7" for c in srv.server.clients)

    serve_behind_haproxy(tmp_path, "send-proxy", body)


def test_ipv6_client_through_haproxy(tmp_path: Path) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")

    def body(srv: InProcessServer, port: int, backend: int) -> None:
        client = RawClient("::1", port)
        client.register("six")
        wait_until(lambda: any(c.nick == "six" for c in srv.server.clients))
        assert [c.ip for c in srv.server.clients if c.nick == "six"] == ["::1"]
        assert "connection from ::1 (tcp)" in srv.log_lines()

    serve_behind_haproxy(tmp_path, "send-proxy-v2", body, listen_host="::1")
