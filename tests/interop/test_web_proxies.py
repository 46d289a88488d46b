"""Reverse proxies in front of the web port (Debian's nginx, HAProxy in HTTP mode and Caddy, with the
configs docs/deploy.md shows), proxying the page and the IRC WebSocket with X-Forwarded-For: browsers'
connections from distinct loopback addresses are each their own client to the server (WHOIS, prefix, log,
per-address limits), and what a client writes into the headers itself gets it nothing. The server runs
in this process (tests/transport/inprocess.py)."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.interop.reverse_proxies import caddy, haproxy_web, nginx
from tests.transport.inprocess import InProcessServer, serve_in_process
from tests.web.conftest import free_port
from tests.web.test_forwarded import Web

TIMEOUT_S = 10.0


Proxy = Callable[[Path, str], AbstractContextManager[int]]
PROXIES = pytest.mark.parametrize("proxy", [nginx, haproxy_web, caddy], ids=["nginx", "haproxy", "caddy"])


def serve_behind(proxy: Proxy, tmp_path: Path, body: Any, **overrides: Any) -> None:
    web = free_port()

    def run(srv: InProcessServer) -> None:
        with proxy(tmp_path / "proxy", f"127.0.0.1:{web}") as port:
            body(srv, port, web)

    serve_in_process(run, {"web_listen": [f"127.0.0.1:{web}"], "trusted_proxies": ["127.0.0.1"], **overrides})


@PROXIES
def test_each_browser_behind_the_proxy_is_its_own_address(proxy: Proxy, tmp_path: Path) -> None:
    def body(srv: InProcessServer, port: int, web: int) -> None:
        alice = Web(port, "127.0.0.5", origin=f"http://127.0.0.1:{port}")  # the page's own origin, via the proxy
        alice.register("alice")
        bob = Web(port, "127.0.0.6")
        bob.register("bob")
        assert alice.expect("JOIN", p0="#lobby").source == "bob!~bob@127.0.0.6"
        assert bob.whois_host("alice") == "127.0.0.5"
        assert alice.whois_host("bob") == "127.0.0.6"
        assert "connection from 127.0.0.5 (websocket)" in srv.log_lines()
        # The page itself comes through too.
        page = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S, source_address=("127.0.0.5", 0))
        page.request("GET", "/")
        response = page.getresponse()
        assert response.status == 200 and b"<html" in response.read().lower()
        page.close()

    serve_behind(proxy, tmp_path, body)


@PROXIES
def test_what_a_client_writes_in_the_headers_gets_it_nothing(proxy: Proxy, tmp_path: Path) -> None:
    def body(srv: InProcessServer, port: int, web: int) -> None:
        # Through the proxy: it appends the address it sees to the client's X-Forwarded-For (Caddy replaces
        # it) and drops the client's Forwarded, as its config says.
        through = Web(port, "127.0.0.7", [("X-Forwarded-For", "203.0.113.7"), ("Forwarded", "for=203.0.113.8")])
        through.register("through")
        # Around the proxy, straight to the web port: not a trusted proxy, its headers are not read.
        around = Web(web, "127.0.0.9", [("X-Forwarded-For", "203.0.113.9"), ("Forwarded", "for=203.0.113.9")])
        around.register("around")
        assert around.whois_host("through") == "127.0.0.7"
        assert through.whois_host("around") == "127.0.0.9"
        assert not any(c.ip.startswith("203.0.113.") for c in srv.server.clients)
        assert not any("trusted proxy" in line for line in srv.log_lines())

    serve_behind(proxy, tmp_path, body)


@PROXIES
def test_per_address_limits_apply_to_each_client_not_to_the_proxy(proxy: Proxy, tmp_path: Path) -> None:
    def body(srv: InProcessServer, port: int, web: int) -> None:
        first = Web(port, "127.0.0.5")
        first.register("first")
        second = Web(port, "127.0.0.5")
        error = second.expect("ERROR")
        assert error.params[0].startswith("Closing link: 127.0.0.5 (Too many connections from your address")
        others = [Web(port, f"127.0.0.{i}") for i in range(10, 16)]
        for i, other in enumerate(others):
            other.register(f"other{i}")
        assert srv.server.per_ip["127.0.0.1"] == 0

    serve_behind(proxy, tmp_path, body, max_connections_per_ip=1)
