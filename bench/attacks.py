"""What an attacker gets from salotto with its default limits: ``python -m bench.attacks``.

Three measurements, each against a fresh ``salotto serve`` with the default configuration, except that
loopback is not exempt from the throttles (``throttle_exempt = []``): the 127.x.y.z source addresses the
attackers use here stand for addresses on the internet.

- ``pingflood``: N WebSocket connections from one address send ping frames as fast as they can and never
  read; the server's RSS is sampled. What bounds it is the send queue (``max_sendq_bytes``): a connection
  whose unread pongs pass it is dropped.
- ``guessing``: wrong passwords for one account over SASL PLAIN, from 1 address and from 40 at once, for
  a minute; how many reached the password check (a 904 "invalid account name or password") and how many
  were refused unchecked ("too many attempts").
- ``connections``: one address opens connections as fast as it can; how many per second the server
  accepts (the others get ERROR from ``connect_attempts_per_ip``).

Prints one JSON object per measurement; ``--markdown`` prints the table docs/hardening.md shows.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import free_port
from bench.stats import rss_kib

PASSWORD = "the owner's password"


class Salotto:
    """``salotto serve`` with the defaults, IRC and web on free loopback ports, in a temp data dir."""

    def __init__(self, extra: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="salotto-attacks-"))
        self.port, self.web_port = free_port(), free_port()
        (self.dir / "salotto.toml").write_text(f"throttle_exempt = []\n{extra}")
        salotto = Path(sys.executable).parent / "salotto"
        argv = [str(salotto), "serve", "--listen", f"127.0.0.1:{self.port}", "--web-listen",
                f"127.0.0.1:{self.web_port}", "--data-dir", str(self.dir / "data"), "--config",
                str(self.dir / "salotto.toml")]
        self.log = (self.dir / "server.log").open("wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError((self.dir / "server.log").read_text()) from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def _lines(sock: socket.socket, until: Callable[[str], bool], timeout_s: float = 10.0) -> list[str]:
    sock.settimeout(timeout_s)
    data = b""
    lines: list[str] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return lines
        data += chunk
        *done, data = data.split(b"\r\n")
        lines += [line.decode("utf-8", "replace") for line in done]
        if any(until(line) for line in done for line in [line.decode("utf-8", "replace")]):
            return lines


def _irc(server: Salotto, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=(source, 0))


# -- the WebSocket ping flood ------------------------------------------------------------------------


def ping_flood(connections: int, duration_s: float) -> dict[str, Any]:
    server = Salotto()
    try:
        baseline = rss_kib(server.proc.pid)
        socks = []
        for _ in range(connections):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.web_port))
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(f"GET /irc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
            socks.append(sock)
        burst = (bytes((0x89, 0x80 | 125)) + b"\0\0\0\0" + b"p" * 125) * 2000
        sent = [0]
        dropped = [0]
        stop = time.monotonic() + duration_s

        def flood(sock: socket.socket) -> None:
            try:
                while time.monotonic() < stop:
                    sock.sendall(burst)
                    sent[0] += len(burst)
            except OSError:
                dropped[0] += 1

        threads = [threading.Thread(target=flood, args=(sock,), daemon=True) for sock in socks]
        for thread in threads:
            thread.start()
        peak = baseline
        while time.monotonic() < stop:
            peak = max(peak, rss_kib(server.proc.pid))
            time.sleep(0.05)
        for thread in threads:
            thread.join(5)
        return {"measure": "pingflood", "connections": connections, "seconds": duration_s,
                "pings_sent_mb": round(sent[0] / 1e6, 1), "dropped": dropped[0], "rss_before_kib": baseline,
                "rss_peak_kib": peak}
    finally:
        server.stop()


# -- password guessing -----------------------------------------------------------------------------


def _register(server: Salotto, account: str) -> None:
    sock = _irc(server, "127.0.200.1")
    sock.sendall(f"NICK {account}\r\nUSER {account} 0 * :owner\r\nREGISTER {account} * :{PASSWORD}\r\n"
                 "QUIT\r\n".encode())
    _lines(sock, lambda line: line.startswith("ERROR"))
    sock.close()


def _guess(server: Salotto, source: str, account: str, n: int) -> str:
    sock = _irc(server, source)
    payload = base64.b64encode(f"\0{account}\0wrong guess {n}".encode()).decode()
    sock.sendall(f"CAP REQ :sasl\r\nNICK g{n}x{source.replace('.', '')}\r\nUSER g 0 * :g\r\n"
                 f"AUTHENTICATE PLAIN\r\nAUTHENTICATE {payload}\r\n".encode())
    lines = _lines(sock, lambda line: " 904 " in line or line.startswith("ERROR"))
    sock.close()
    return next((line for line in lines if " 904 " in line or line.startswith("ERROR")), "")


def guessing(addresses: int, duration_s: float) -> dict[str, Any]:
    # Connections are not what is measured here: a guesser may open as many as it likes.
    server = Salotto("connect_attempts_per_ip = 1000000\nmax_connections_per_ip = 1000\n")
    try:
        _register(server, "owner")
        checked = refused = 0
        lock = threading.Lock()
        stop = time.monotonic() + duration_s

        def guesser(index: int) -> None:
            nonlocal checked, refused
            source = f"127.0.{index // 200 + 1}.{index % 200 + 1}"
            n = 0
            while time.monotonic() < stop:
                answer = _guess(server, source, "owner", n)
                n += 1
                with lock:
                    if "invalid account name or password" in answer:
                        checked += 1
                    else:
                        refused += 1
                if "too many attempts" in answer:
                    time.sleep(0.2)

        threads = [threading.Thread(target=guesser, args=(i,), daemon=True) for i in range(addresses)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(duration_s + 30)
        per_minute = 60.0 / duration_s
        return {"measure": "guessing", "addresses": addresses, "seconds": duration_s,
                "checked_per_minute": round(checked * per_minute, 1),
                "refused_per_minute": round(refused * per_minute, 1)}
    finally:
        server.stop()


# -- connections from one address ------------------------------------------------------------------


def connections(duration_s: float) -> dict[str, Any]:
    server = Salotto()
    try:
        accepted = refused = 0
        stop = time.monotonic() + duration_s
        held = []
        while time.monotonic() < stop:
            sock = _irc(server, "127.0.100.1")
            sock.sendall(b"PING :x\r\n")
            first = (_lines(sock, lambda line: True) or [""])[0]
            if first.startswith("ERROR"):
                refused += 1
                sock.close()
            else:
                accepted += 1
                held.append(sock)
                if len(held) >= 15:  # under max_connections_per_ip: that limit is not the one measured
                    held.pop(0).close()
        return {"measure": "connections", "seconds": duration_s,
                "accepted_per_s": round(accepted / duration_s, 2), "refused_per_s": round(refused / duration_s, 1),
                "accepted": accepted}
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.attacks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of each guessing run")
    parser.add_argument("--flood-duration", type=float, default=10.0, help="seconds of the ping flood")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (the median is shown)")
    parser.add_argument("--markdown", action="store_true", help="print the table for docs/hardening.md")
    args = parser.parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = {}
    plan: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("pingflood", lambda: ping_flood(20, args.flood_duration)),
        ("guessing-1", lambda: guessing(1, args.duration)),
        ("guessing-40", lambda: guessing(40, args.duration)),
        ("connections", lambda: connections(args.duration)),
    ]
    for name, measure in plan:
        for _ in range(args.runs):
            record = measure()
            print(json.dumps(record), flush=True)
            results.setdefault(name, []).append(record)
    if args.markdown:
        def median(name: str, field: str) -> float:
            return statistics.median(r[field] for r in results[name])

        print()
        print("| attack (defaults, loopback not exempt) | figure (median of runs) |")
        print("|---|---|")
        print(f"| 20 WebSocket connections from one address send pings for {args.flood_duration:g} s and never read "
              f"| RSS {median('pingflood', 'rss_before_kib') / 1024:.0f} MiB before, "
              f"{median('pingflood', 'rss_peak_kib') / 1024:.0f} MiB at peak; "
              f"{median('pingflood', 'dropped'):.0f} of 20 dropped (SendQ) |")
        for n in (1, 40):
            print(f"| wrong passwords for one account from {n} address{'es' if n > 1 else ''} at once "
                  f"| {median(f'guessing-{n}', 'checked_per_minute'):g} a minute reach the password check, "
                  f"{median(f'guessing-{n}', 'refused_per_minute'):g} refused unchecked |")
        print(f"| new connections from one address, as fast as it can, for {args.duration:g} s "
              f"| {median('connections', 'accepted'):.0f} accepted "
              f"({median('connections', 'accepted_per_s'):g}/s), the rest refused |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
