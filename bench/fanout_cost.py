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

``--history`` stores every message as the server does: a SQLite store in a temporary data directory,
opened by ``open_store`` (journals, the storer thread, the checkpoint thread), a journal record per
pass before the pass's output is dropped, and a batch handed to the storer every
``--store-every`` messages (``history_store_interval_s`` in the server: 25 ms of the fanout bench, about
330 messages at C=100). The clock is the messages' count, not the wall clock, and a pass that hands a
batch over first waits for the one before (the server would let it grow instead), so that every batch
holds the same messages from run to run; the store is closed (everything stored, the threads stopped)
before the script ends. ``--per-pass`` lines make one loop pass (about 33 in the C=100 fanout bench
under load; 1 when paced). History's own cost is then the difference of the two differences:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.fanout_cost --per-pass 33 --history
    valgrind ... (the same) --messages 0

against the same two without ``--history``. ``--no-search`` stores without the full-text index (``search =
false``): the index's own cost is the difference of ``--history`` and ``--history --no-search``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

from salotto.config import _BY_NAME, load_config
from salotto.server.state import Server


class MemoryConnection:
    """A client connection without a socket: what a pass wrote waits in its outbox (bench.direct_cost too)."""

    transport_name = "memory"

    def __init__(self, ip: str, pending: list[MemoryConnection]) -> None:
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


def fanout(members: int, senders: int, messages: int, *, per_pass: int = 1, history_dir: str | None = None,
           store_every: int = 330, search: bool = True) -> float:
    """Seconds for ``messages`` channel messages to ``members`` members (registration and joins not counted),
    ``per_pass`` lines a loop pass; with ``history_dir``, stored there (see the module's docstring)."""
    overrides = {"autojoin": [], "max_connections_per_ip": 10**9, "max_clients": 10**9,
                 "flood_burst_lines": 10**9, "large_channel_threshold": 10**9}
    if "connect_attempts_per_ip" in _BY_NAME:
        overrides["connect_attempts_per_ip"] = 10**9
    if history_dir is not None:
        overrides.update(data_dir=history_dir, history_enabled=True, history_store_interval_s=1.0,
                         history_store_max_messages=10**9)
        if "search" in _BY_NAME:
            overrides["search"] = search
    server = Server(load_config(None, overrides))
    pending: list[MemoryConnection] = []
    calls: list[Callable[[], None]] = []  # what the storer hands back to the loop
    store = None
    if history_dir is not None:
        from salotto.storage.store import open_store

        store = open_store(server.config, history_dir, 0.0, calls.append)
        store.recover()
        server.attach_history(store)
    stored = 0  # messages handed to the storer so far
    sent = 0

    def flush() -> None:
        nonlocal stored
        if store is not None:
            server.commit_pending()  # the pass's journal record, before its output leaves
        for conn in pending:
            conn.outbox.clear()
        pending.clear()
        if store is not None:
            if sent - stored >= store_every:
                if store._inflight is not None:  # the same batches every run (see the docstring)
                    store._inflight.result()
                store.store_if_due(float(sent))  # the clock: one second per store_every messages
                stored = sent
            while calls:
                calls.pop(0)()

    clients = []
    for i in range(members):
        client = server.accept(MemoryConnection(f"127.0.{i // 250}.{i % 250 + 1}", pending))  # type: ignore[arg-type]
        assert client is not None
        server.handle_line(client, f"NICK u{i}".encode())
        server.handle_line(client, f"USER u{i} 0 * :real name".encode())
        server.handle_line(client, b"JOIN #bench")
        flush()
        clients.append(client)
    if store is not None:  # each JOIN's replay comes back from a reader thread; a client's next lines wait for it
        deadline = time.monotonic() + 60
        while any(client.waiting for client in clients) and time.monotonic() < deadline:
            time.sleep(0.001)
            flush()
    lines = [f"PRIVMSG #bench :message {i} from the fanout cost benchmark".encode() for i in range(messages)]
    talking = clients[:senders]
    started = time.perf_counter()
    for i, line in enumerate(lines):
        server.handle_line(talking[i % len(talking)], line)
        sent = i + 1
        if sent % per_pass == 0 or sent == len(lines):
            flush()
    if store is not None:
        store.close()  # every message stored, the threads stopped: counted too
        if store.written != messages:
            raise SystemExit(f"history stored {store.written} of {messages} messages")
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--per-pass", type=int, default=1, help="lines per loop pass (default 1)")
    parser.add_argument("--history", action="store_true", help="store every message in a SQLite store")
    parser.add_argument("--no-search", dest="search", action="store_false",
                        help="with --history, without the full-text index (search = false)")
    parser.add_argument("--store-every", type=int, default=330,
                        help="with --history, messages per batch handed to the storer (default 330)")
    args = parser.parse_args(argv)
    if args.history:
        with tempfile.TemporaryDirectory(prefix="salotto-fanout-cost-") as data_dir:
            seconds = fanout(args.members, args.senders, args.messages, per_pass=args.per_pass,
                             history_dir=data_dir, store_every=args.store_every, search=args.search)
    else:
        seconds = fanout(args.members, args.senders, args.messages, per_pass=args.per_pass)
    if args.messages:
        deliveries = args.messages * (args.members - 1)
        stored = ", each stored in history" if args.history else ""
        print(f"{seconds / deliveries * 1e6:.3f} us per delivery ({args.messages} messages to {args.members} members"
              f"{stored})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
