"""The load-balancer examples (docs/examples/cluster/haproxy.cfg and nginx.conf) run for real, with Debian's
HAProxy and nginx, in front of nodes started by tests/cluster/harness.py.

The examples are written for a deployment (nodes a, b, c at 10.0.0.11, .12, .13; the proxy on ports 6667,
6697 and 443; certificates under /etc): :func:`render` turns one into the test's own (the proxy on free
loopback ports, the nodes' real ports, the test's certificate), dropping the lines of nodes the test did
not start, and fails if anything of the deployment's is left over, so an example that changes shape
cannot quietly stop being what the test runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from salotto.proto import parse
from tests.cluster.harness import Node
from tests.interop.processes import require_binary
from tests.interop.reverse_proxies import _running
from tests.tls_certs import client_context, make_certificate

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "cluster"
# The examples' node addresses: node a, b, c.
NODE_ADDRESSES = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
# The ports the examples give the nodes' listeners: proxy_listen and web_listen.
PROXY_PORT, WEB_PORT = 6668, 8080
# The examples' certificate files: HAProxy's (certificate and key in one file), nginx's two.
HAPROXY_PEM = "/etc/haproxy/certs/chat.example.org.pem"
NGINX_CERT = "/etc/letsencrypt/live/chat.example.org/fullchain.pem"
NGINX_KEY = "/etc/letsencrypt/live/chat.example.org/privkey.pem"
HANDSHAKE_TIMEOUT_S = 8.0  # a stalled TLS handshake through HAProxy: try again (WebClient)
TIMEOUT_S = 10.0


def render(text: str, nodes: Sequence[Node], ports: Mapping[int, int], files: Mapping[str, Path]) -> str:
    """The example ``text`` for this test: a node address with the example's proxy_listen or web port becomes
    ``nodes[i]``'s real one (lines naming a node beyond ``nodes`` are dropped); ``bind :P`` and ``listen P``
    listen on 127.0.0.1 at ``ports[P]``; each path in ``files`` becomes the test's file."""
    out = []
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        match = re.search(r"\b(10\.0\.0\.1\d):(\d+)\b", code)
        if match:
            if match.group(1) not in NODE_ADDRESSES:
                raise AssertionError(f"an address the test knows no node for: {line!r}")
            index = NODE_ADDRESSES.index(match.group(1))
            if index >= len(nodes):
                continue
            node = nodes[index]
            real = {PROXY_PORT: node.proxy_port, WEB_PORT: node.web_port}.get(int(match.group(2)))
            if real is None:
                raise AssertionError(f"node {node.name} has no listener for {line.strip()!r}")
            line = line.replace(match.group(0), f"127.0.0.1:{real}")
        line = re.sub(r"\b(bind|listen) :?(\d+)\b",
                      lambda m: f"{m.group(1)} 127.0.0.1:{ports[int(m.group(2))]}", line)
        for example_path, path in files.items():
            line = line.replace(example_path, str(path))
        out.append(line)
    rendered = "\n".join(out) + "\n"
    code = "\n".join(line.split("#", 1)[0] for line in out)
    leftover = re.findall(r"10\.0\.0\.\d+|/etc/\S+", code)
    assert not leftover, f"the example has what the test does not replace: {leftover}"
    return rendered


def free_ports(*example_ports: int) -> dict[int, int]:
    """A free loopback port for each of the example's listening ports, all different (free_port() twice in a
    row may give the same one: HAProxy, binding with SO_REUSEPORT, would then share it between frontends)."""
    socks = [socket.create_server(("127.0.0.1", 0)) for _ in example_ports]
    try:
        return {example: int(sock.getsockname()[1]) for example, sock in zip(example_ports, socks, strict=True)}
    finally:
        for sock in socks:
            sock.close()


def certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A test certificate for 127.0.0.1 and localhost: (certificate, key, both in one file for HAProxy)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = make_certificate(directory, "chat")
    pem = directory / "chat-with-key.pem"
    pem.write_text(cert.read_text() + key.read_text())
    return cert, key, pem


@contextlib.contextmanager
def run_haproxy(tmp: Path, config: str, wait_port: int) -> Iterator[Path]:
    """HAProxy with ``config`` in the foreground until the block ends; yields its log (stderr), once it
    listens on ``wait_port``."""
    binary = require_binary("haproxy", "haproxy")
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "haproxy.cfg").write_text(config)
    log = tmp / "haproxy.log"
    with _running("haproxy", [binary, "-f", str(tmp / "haproxy.cfg"), "-db"], log, "127.0.0.1", wait_port):
        yield log


@contextlib.contextmanager
def run_nginx(tmp: Path, site: str, wait_port: int) -> Iterator[Path]:
    """nginx with ``site`` (read inside ``http { }``, as the example is) until the block ends; yields its
    error log, once it listens on ``wait_port``."""
    binary = require_binary("nginx", "nginx")
    tmp.mkdir(parents=True, exist_ok=True)
    # As tests/interop/reverse_proxies.py: workers stay root in a directory only root may enter.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(
        f"{user}worker_processes 1;\nerror_log {tmp}/error.log info;\npid {tmp}/nginx.pid;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {tmp}/access.log;\n"
        + "".join(f"    {kind}_temp_path {tmp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                       "scgi"))
        + site
        + "}\n"
    )
    log = tmp / "error.log"
    with _running("nginx", [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(log), "-g",
                            "daemon off;"], tmp / "stderr.log", "127.0.0.1", wait_port):
        yield log


class WebClient:
    """The IRC WebSocket (``/irc``) over TLS through the proxy on ``port``, from the address ``source``."""

    def __init__(self, port: int, source: str, cert: Path) -> None:
        # Debian 12's HAProxy 2.6.12 now and then leaves a TLS connection unanswered (see the nbthread note in
        # test_load_balancer.py; it still happens with one thread on a loaded machine, and the connection never
        # reaches a node): a user's browser would connect again, and so does this client, once.
        for attempt in (1, 2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S, source_address=(source, 0))
            try:
                self.conn: ClientConnection = connect(
                    f"wss://127.0.0.1:{port}/irc", sock=sock, ssl=client_context(cert),
                    subprotocols=["text.ircv3.net"],  # type: ignore[list-item]
                    open_timeout=HANDSHAKE_TIMEOUT_S, max_queue=None,
                ).__enter__()  # the library wants its context manager entered; close() ends it
                return
            except TimeoutError:
                sock.close()
                if attempt == 2:
                    raise

    def expect(self, command: str) -> Any:
        while True:
            frame = self.conn.recv(timeout=TIMEOUT_S)
            msg = parse(frame if isinstance(frame, str) else frame.decode())
            if msg.command == command:
                return msg

    def register(self, nick: str) -> None:
        self.conn.send(f"NICK {nick}")
        self.conn.send(f"USER {nick} 0 * :{nick}")
        self.expect("001")

    def close(self) -> None:
        self.conn.close()


def registrations(node: Node) -> dict[str, tuple[str, str]]:
    """Who registered on ``node``, from its log: nick -> (address, transport)."""
    return {m.group(1): (m.group(2), m.group(3))
            for m in re.finditer(r"registered (\S+)!~[^@\s]+@(\S+) \((tcp|websocket)\)", node.log())}
