"""The server's own cost of a private message, without sockets: ``python -m bench.direct_cost``.

Registers ``--pairs`` pairs of clients on an in-memory ``Server`` (no capabilities, as the bench's
``direct`` scenario's clients), then each pair sends ``--messages`` PRIVMSGs back and forth: in each
pass every pair's current side sends one to the other, then the pass ends as the flusher ends it (the
pass's history made durable, every outbox emptied, history stored in the database when due); prints the
microseconds per message. Wall time on a shared machine is noisy; for a figure that repeats to the
instruction, run it under callgrind and compare with a run of ``--messages 0`` (the import and the
registrations):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.direct_cost --messages 200
    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m bench.direct_cost --messages 0

(instructions per message = the difference of the two "Collected" totals / (pairs * messages)).

``--history`` turns history on with a real SQLite database and its two journals in a temporary
directory, as the server opens them but with no storer thread: the batches the server's storer thread
would store run on the same thread, at the same points (``history_store_interval_s`` of a simulated
loop clock that advances ``--pass-ms`` per pass), so the count repeats and includes the database's work,
which the server does on its storer thread. Point PYTHONPATH at another checkout's ``src`` to measure
that code with the same script.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.fanout_cost import MemoryConnection
from salotto.config import _BY_NAME, load_config
from salotto.server.state import Server
from salotto.storage import open_storage
from salotto.storage.journal import JOURNAL_FILENAMES, Journal
from salotto.storage.store import InlineReader, Store


def direct(pairs: int, messages: int, *, history: bool, pass_ms: float) -> float:
    """Seconds for ``pairs`` pairs to exchange ``messages`` private messages each (registration not
    counted)."""
    overrides = {"autojoin": [], "max_connections_per_ip": 10**9, "max_clients": 10**9,
                 "flood_burst_lines": 10**9}
    if "connect_attempts_per_ip" in _BY_NAME:
        overrides["connect_attempts_per_ip"] = 10**9
    with tempfile.TemporaryDirectory(prefix="salotto-direct-cost-") as data_dir:
        if history:
            overrides["data_dir"] = data_dir
        config = load_config(None, overrides)
        server = Server(config)
        store = None
        if history:
            storage = open_storage("sqlite", Path(data_dir))
            journals = (Journal(Path(data_dir) / JOURNAL_FILENAMES[0]), Journal(Path(data_dir) / JOURNAL_FILENAMES[1]))
            store = Store(config, storage, InlineReader(storage), 0.0, journals)
            server.attach_history(store)
        pending: list[MemoryConnection] = []
        loop_time = [0.0]

        def flush() -> None:  # salotto.transport.flusher.Flusher.run, with one commit per pass
            server.commit_pending()
            for conn in pending:
                conn.outbox.clear()
            pending.clear()
            if store is not None:
                loop_time[0] += pass_ms / 1000
                store.store_if_due(loop_time[0])

        clients = []
        for i in range(2 * pairs):
            client = server.accept(MemoryConnection(f"127.0.{i // 250}.{i % 250 + 1}", pending))  # type: ignore[arg-type]
            assert client is not None
            server.handle_line(client, f"NICK p{i}".encode())
            server.handle_line(client, f"USER p{i} 0 * :real name".encode())
            flush()
            clients.append(client)
        # What the bench's clients send: a sequence number and a timestamp in nanoseconds.
        sides = [[(clients[2 * p], f"PRIVMSG p{2 * p + 1} :{i} {1_700_000_000_000_000_000 + i}".encode())
                  if i % 2 == 0 else
                  (clients[2 * p + 1], f"PRIVMSG p{2 * p} :{i} {1_700_000_000_000_000_000 + i}".encode())
                  for p in range(pairs)] for i in range(messages)]
        delivered = server.stats.deliveries_out
        started = time.perf_counter()
        for one_pass in sides:
            for client, line in one_pass:
                server.handle_line(client, line)
            flush()
        if store is not None:
            store.store()
        seconds = time.perf_counter() - started
        assert server.stats.deliveries_out - delivered == pairs * messages, "a private message was not delivered"
        if store is not None:
            assert store.written == pairs * messages, store.written
            store.close()
            storage.close()
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.direct_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200, help="messages per pair (back and forth)")
    parser.add_argument("--history", action="store_true", help="history on (SQLite in a temporary directory)")
    parser.add_argument("--pass-ms", type=float, default=1.0, help="simulated loop time per pass (history batches)")
    args = parser.parse_args(argv)
    seconds = direct(args.pairs, args.messages, history=args.history, pass_ms=args.pass_ms)
    if args.messages:
        total = args.pairs * args.messages
        print(f"{seconds / total * 1e6:.3f} us per private message ({args.pairs} pairs, {args.messages} messages each,"
              f" history {'on' if args.history else 'off'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
