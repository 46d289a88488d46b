"""The server's own cost of a channel message, without sockets: ``python -m bench.fanout_cost``.

Registers ``--members`` clients on an in-memory ``Server``, joins them all to one channel, then has
``--senders`` of them send ``--messages`` PRIVMSGs to it in turn, emptying every outbox after each line as
the flusher would; prints the microseconds per delivery. Wall time on a shared machine is noisy; for a
figure that repeats to the instruction, run it under callgrind and compare with a run of
``--messages 0`` (the import, the registrations and the joins):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.fanout_cost --members 100 --messages 2000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.fanout_cost --members 100 --messages 0

(instructions per delivery = the difference of the two "Collected" totals / (messages * (members - 1))).
Point PYTHONPATH at another checkout's ``src`` to measure that code with the same script.
"""

from __future__ import annotations

import argparse
import time

from salotto.config import _BY_NAME, load_config
from salotto.server.state import Server


class _Connection:
    transport_name = "memory"

    def __init__(self, ip: str, pending: list[_Connection]) -> None:
        self.peer_ip = ip
        self.outbox: list[bytes] = []
        self._pending = pending

    def mark_pending(self) -> list[bytes]:
        self._pending.append(self)
        return self.outbox

    def write(self, data: bytes) -> None:
        if not self.outbox:
            self.mark_pending()
        self.outbox.append(data)

    def close(self, reason: str) -> None:
        pass


def fanout(members: int, senders: int, messages: int) -> float:
    """Seconds for ``messages`` channel messages to ``members`` members (registration and joins not counted)."""
    overrides = {"autojoin": [], "max_connections_per_ip": 10**9, "max_clients": 10**9,
                 "flood_burst_lines": 10**9, "large_channel_threshold": 10**9}
    if "connect_attempts_per_ip" in _BY_NAME:
        overrides["connect_attempts_per_ip"] = 10**9
    server = Server(load_config(None, overrides))
    pending: list[_Connection] = []

    def flush() -> None:
        for conn in pending:
            conn.outbox.clear()
        pending.clear()

    clients = []
    for i in range(members):
        client = server.accept(_Connection(f"127.0.{i // 250}.{i % 250 + 1}", pending))  # type: ignore[arg-type]
        assert client is not None
        server.handle_line(client, f"NICK u{i}".encode())
        server.handle_line(client, f"USER u{i} 0 * :real name".encode())
        server.handle_line(client, b"JOIN #bench")
        flush()
        clients.append(client)
    lines = [f"PRIVMSG #bench :message {i} from the fanout cost benchmark".encode() for i in range(messages)]
    talking = clients[:senders]
    started = time.perf_counter()
    for i, line in enumerate(lines):
        server.handle_line(talking[i % len(talking)], line)
        flush()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args(argv)
    seconds = fanout(args.members, args.senders, args.messages)
    if args.messages:
        deliveries = args.messages * (args.members - 1)
        print(f"{seconds / deliveries * 1e6:.3f} us per delivery ({args.messages} messages to {args.members} members)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
