"""RSS per 1,000 idle WebSocket clients: ``python -m bench.ws_connect --port WEB_PORT --server-pid PID``.

The WebSocket side of the ``connect`` scenario (which holds plain TCP clients): N clients open the IRC
WebSocket (``text.ircv3.net``) on a web port, register, and stay idle; the server's RSS before and after
gives KiB per 1,000. Each client sends its handshake and its NICK and USER frames in one write and waits
for 001, a few at a time. Run it against a server started with its limits lifted, e.g. the bench config:

    salotto serve --config bench/peers/salotto.toml --listen 127.0.0.1:6667 --web-listen 127.0.0.1:8080 \\
        --max-pending-connections 100000 --max-pending-connections-per-ip 100000
    python -m bench.ws_connect --port 8080 --clients 3000 --server-pid PID

Prints one JSON line (clients, rss_before_kib, rss_after_kib, rss_kib_per_1000).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import time

from bench.stats import rss_kib

# Seconds for everything to register.
TIMEOUT_S = 120.0


def _frame(line: str) -> bytes:
    payload = line.encode()
    mask = os.urandom(4)
    return bytes((0x81, 0x80 | len(payload))) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def open_client(host: str, port: int, nick: str, deadline: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                 f"Sec-WebSocket-Protocol: text.ircv3.net\r\nOrigin: http://{host}:{port}\r\n\r\n".encode()
                 + _frame(f"NICK {nick}") + _frame("USER ws 0 * :idle"))
    received = b""
    while b" 001 " not in received:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{nick} not registered: {received[-200:]!r}")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"{nick} closed before 001: {received[-200:]!r}")
        received += chunk
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="the server's web port")
    parser.add_argument("--clients", type=int, default=3000)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--settle-s", type=float, default=1.0)
    args = parser.parse_args(argv)
    time.sleep(args.settle_s)
    before = rss_kib(args.server_pid)
    deadline = time.monotonic() + TIMEOUT_S
    held = [open_client(args.host, args.port, f"ws{i}x{os.getpid()}", deadline) for i in range(args.clients)]
    time.sleep(args.settle_s)
    after = rss_kib(args.server_pid)
    for sock in held:
        sock.close()
    print(json.dumps({"scenario": "ws-connect", "clients": args.clients, "rss_before_kib": before,
                      "rss_after_kib": after, "rss_kib_per_1000": (after - before) * 1000 / args.clients}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
