"""The server's own cost of a registration, without sockets: ``python -m bench.registration_cost``.

Registers N clients (NICK, USER; no autojoin) on an in-memory ``Server`` and prints the microseconds each
took. Wall time on a shared machine is noisy; for a figure that repeats to the instruction, run it under
callgrind and compare with a run of ``--clients 0`` (the import and setup):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.registration_cost --clients 3000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.registration_cost --clients 0

(instructions per registration = the difference of the two "Collected" totals / 3000). Point PYTHONPATH
at another checkout's ``src`` to measure that code with the same script.
"""

from __future__ import annotations

import argparse
import time

from salotto.config import _BY_NAME, load_config
from salotto.server.state import Server


class _Connection:
    transport_name = "memory"

    def __init__(self, ip: str) -> None:
        self.peer_ip = ip
        self.outbox: list[bytes] = []

    def mark_pending(self) -> list[bytes]:
        self.outbox.clear()
        return self.outbox

    def write(self, data: bytes) -> None:
        self.outbox.clear()

    def close(self, reason: str) -> None:
        pass


def register(clients: int) -> float:
    """Seconds to register ``clients`` clients, each from its own 127.x.y.z address."""
    overrides = {"autojoin": [], "max_connections_per_ip": 10**9, "max_clients": 10**9}
    if "connect_attempts_per_ip" in _BY_NAME:  # a checkout from before the connect throttle has no such key
        overrides["connect_attempts_per_ip"] = 10**9
    server = Server(load_config(None, overrides))
    started = time.perf_counter()
    for i in range(clients):
        client = server.accept(_Connection(f"127.0.{i // 250}.{i % 250 + 1}"))  # type: ignore[arg-type]
        assert client is not None
        server.handle_line(client, f"NICK u{i}".encode())
        server.handle_line(client, f"USER u{i} 0 * :real name".encode())
    assert server.registered_count == clients
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.registration_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=3000)
    args = parser.parse_args(argv)
    seconds = register(args.clients)
    if args.clients:
        print(f"{seconds / args.clients * 1e6:.1f} us per registration ({args.clients} clients)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
