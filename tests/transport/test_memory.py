"""What an idle client costs the server in memory (issue "Lean"): a guard against a change that quietly
gives every connection a dict, a queue or a transport again. A real server process; its RSS before and
after N registered idle clients, as the bench's connect scenario measures it (docs/benchmarks.md has
the figures at 10,000 and where the bytes go)."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import start_server, stop_server
from tests.web.conftest import free_port, masked_frame

# Plain TCP: ~900 KiB per 1,000 measured; WebSocket: ~1,800. The bounds leave room for the allocator's
# granularity at this size, and catch a regression of a few hundred bytes per client.
TCP_KIB_PER_1000 = 1_200
WEBSOCKET_KIB_PER_1000 = 2_300
BENCH_CONFIG = Path(__file__).resolve().parents[2] / "bench" / "peers" / "salotto.toml"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _read_until(sock: socket.socket, marker: bytes, deadline: float) -> None:
    received = b""
    while marker not in received:
        assert time.monotonic() < deadline, f"no {marker!r}: {received[-200:]!r}"
        chunk = sock.recv(65536)
        assert chunk, f"closed before {marker!r}: {received[-200:]!r}"
        received += chunk


def _growth_per_1000(pid: int, count: int, connect: Callable[[int], socket.socket]) -> float:
    time.sleep(0.5)
    before = _rss_kib(pid)
    held = [connect(i) for i in range(count)]
    time.sleep(0.5)
    after = _rss_kib(pid)
    for sock in held:
        sock.close()
    return (after - before) * 1000 / count


def test_an_idle_tcp_client_costs_the_server_under_1_2_kib(tmp_path: Path) -> None:
    server = start_server(tmp_path, config_text=BENCH_CONFIG.read_text())
    deadline = time.monotonic() + 60

    def connect(i: int) -> socket.socket:
        sock = socket.create_connection((server.host, server.port), timeout=10)
        sock.sendall(f"NICK idle{i}\r\nUSER u 0 * :idle\r\n".encode())
        _read_until(sock, b" 001 ", deadline)
        return sock

    try:
        per_1000 = _growth_per_1000(server.process.pid, 2000, connect)
    finally:
        stop_server(server)
    assert per_1000 <= TCP_KIB_PER_1000, f"{per_1000:.0f} KiB per 1,000 idle TCP clients"


def test_an_idle_websocket_client_costs_the_server_under_2_3_kib(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(tmp_path, "--web-listen", f"127.0.0.1:{port}", "--max-pending-connections", "100000",
                          "--max-pending-connections-per-ip", "100000", config_text=BENCH_CONFIG.read_text())
    deadline = time.monotonic() + 60

    def connect(i: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                     f"Sec-WebSocket-Protocol: text.ircv3.net\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n".encode()
                     + masked_frame(f"NICK web{i}".encode()) + masked_frame(b"USER u 0 * :idle"))
        _read_until(sock, b" 001 ", deadline)
        return sock

    try:
        per_1000 = _growth_per_1000(server.process.pid, 1000, connect)
    finally:
        stop_server(server)
    assert per_1000 <= WEBSOCKET_KIB_PER_1000, f"{per_1000:.0f} KiB per 1,000 idle WebSocket clients"
