"""History storage benchmark: chathistory query latency on a large store, and write throughput.

``python -m bench.history_bench [--messages 1000000] [--others 200000] [--queries 1000] [--data-dir DIR]``
``python -m bench.history_bench --backend postgresql (--storage-url URL | --start-postgres) [...]``

Populates ``#big`` with ``--messages`` messages and spreads ``--others`` more over 100 channels and 100
private conversations (interleaved in time), then measures, on a warm cache:

- LATEST 100 on ``#big``: called directly on a read-only connection, and as a round trip through
  :class:`~salotto.storage.store.Store` (the way the server reads: pool thread and callback);
- BEFORE 100 and AROUND 100 at random msgids, BETWEEN at random pairs, TARGETS over 50 channels;
- writes as the server makes them: passes of 100 messages journaled, then stored in batches by the
  store's writer thread, messages/s, and what journaling a pass costs;
- the per-target count scan of retention (``prune_history`` with nothing to delete), and the age rule's
  walk over every target with nothing to delete.

Messages get msgids of the form the server gives (a random run prefix, a counter), which the SQLite
backend stores as the row's id; the bench's other targets hold a few private conversations' msgids
the same way. The issue's target: LATEST 100 on 1,000,000 messages, p99 under 10 ms.

PostgreSQL: ``--storage-url`` names a database (populated on the first run, reused after), or
``--start-postgres`` runs a throwaway server in a temporary directory for the run (``initdb`` and
``pg_ctl`` as in the tests, see ``tests/postgres.py``; with fsync on, as a real server has it). The
populate path appends batches of ``CHUNK`` messages, one INSERT each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salotto.config import load_config
from salotto.storage import HistoryMessage, Outcome, Ref, Storage, conversation_key, open_storage
from salotto.storage.store import open_store

CHUNK = 20_000
T0 = 1_700_000_000.0
# Like salotto.server.state.Server.new_msgid: a prefix per run (so a reused --data-dir takes new
# messages without a clash) and a counter.
_PREFIX = os.urandom(4).hex()
_COUNTER = itertools.count(1)


def new_msgid() -> str:
    return f"{_PREFIX}-{next(_COUNTER):x}"


def populate(storage: Storage, big: int, others: int) -> float:
    """Append the messages in chunks; return messages per second."""
    rng = random.Random(1)
    total = big + others
    share_big = big / total if total else 1.0
    channels = [f"#room{i}" for i in range(100)]
    dms = [(f"user{i}", f"peer{i}") for i in range(100)]
    started = time.perf_counter()
    t = T0
    left_big, left_other = big, others
    chunk: list[HistoryMessage] = []
    for i in range(total):
        t += 0.01 if rng.random() < 0.9 else 0.0  # some messages share a millisecond
        to_big = left_other == 0 or (left_big > 0 and rng.random() < share_big)
        if to_big:
            left_big -= 1
            m = HistoryMessage(new_msgid(), "#big", t, f"nick{i % 50}!u@host", None, "PRIVMSG", f"message {i} " * 4)
        else:
            left_other -= 1
            if i % 2:
                target = rng.choice(channels)
                m = HistoryMessage(new_msgid(), target, t, "someone!u@host", "acct", "PRIVMSG", f"chatter {i}")
            else:
                a, b = rng.choice(dms)
                m = HistoryMessage(
                    new_msgid(), conversation_key(a, b), t, f"{a}!u@host", a, "PRIVMSG", f"dm {i}", parties=(a, b)
                )
        chunk.append(m)
        if len(chunk) == CHUNK:
            storage.append_messages(chunk)
            chunk = []
    storage.append_messages(chunk)
    return total / (time.perf_counter() - started)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "max_ms": round(ms[-1], 3),
        "n": len(ms),
    }


def timed(fn: Callable[[], Any], n: int) -> dict[str, float]:
    fn()  # warm-up
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


def _store_bytes(backend: str, where: str) -> int:
    if backend == "postgresql":
        import psycopg

        with psycopg.connect(where, autocommit=True) as db:
            db.execute("VACUUM ANALYZE messages")  # as autovacuum would have by now: visibility map, statistics
            row = db.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0
    return sum(p.stat().st_size for p in Path(where).iterdir())


def run(backend: str, where: str, big: int, others: int, queries: int, writes: int = 50_000) -> dict[str, Any]:
    report: dict[str, Any] = {"backend": backend, "messages_big": big, "messages_other": others}
    writer = open_storage(backend, where)
    existing = len(writer.latest("#big", 1))
    if existing == 0:
        report["populate_msgs_per_s"] = round(populate(writer, big, others))
    writer.close()
    report["db_bytes"] = _store_bytes(backend, where)

    reader = open_storage(backend, where, readonly=True)
    rng = random.Random(2)
    all_ids = [m.msgid for m in reader.latest("#big", 10_000_000)]
    report["latest_100_direct"] = timed(lambda: reader.latest("#big", 100), queries)
    report["before_100_random_msgid"] = timed(
        lambda: reader.before("#big", Ref.by_msgid(rng.choice(all_ids)), 100), queries
    )
    report["around_100_random_msgid"] = timed(
        lambda: reader.around("#big", Ref.by_msgid(rng.choice(all_ids)), 100), queries
    )
    report["between_random_pair_limit_100"] = timed(
        lambda: reader.between("#big", Ref.by_msgid(rng.choice(all_ids)), Ref.by_msgid(rng.choice(all_ids)), 100),
        queries,
    )
    channels = ["#big", *(f"#room{i}" for i in range(49))]
    report["targets_50_channels_plus_dms"] = timed(
        lambda: reader.targets(channels, "user7", T0, T0 + 1e7, 100), min(queries, 200)
    )
    reader.close()

    # Through the store, the server's path: reads on the reader pool, results handed back through call_soon.
    back: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
    journals = tempfile.mkdtemp(prefix="salotto-history-bench-journals-")
    location_key = {"storage_url": where} if backend == "postgresql" else {}
    config = load_config(None, {"data_dir": journals, "storage_backend": backend, **location_key,
                                "history_store_max_messages": 1000})
    store = open_store(config, where, time.monotonic(), back.put)
    samples = []
    for _ in range(queries):
        got: list[Outcome[list[HistoryMessage]]] = []
        started = time.perf_counter()
        store.read(lambda s: s.latest("#big", 100), got.append)
        back.get()()
        samples.append(time.perf_counter() - started)
        assert len(got[0].unwrap()) == 100
    report["latest_100_via_store"] = percentiles(samples)

    # Writes as the server makes them: each pass's messages journaled (what the loop pays before its
    # output leaves), handed to the storer in batches; messages/s until all are in the database.
    n_writes = max(100, writes // 100 * 100)
    commits: list[float] = []
    started = time.perf_counter()
    for _ in range(n_writes // 100):
        now = time.time()
        for j in range(100):
            store.record(HistoryMessage(new_msgid(), "#big", now, "writer!u@h", None, "PRIVMSG", f"new message {j}"))
        pass_started = time.perf_counter()
        store.commit()
        commits.append(time.perf_counter() - pass_started)
        store.store_if_due(time.monotonic())
    store.store()
    report["store_writes_per_s_100_per_pass"] = round(n_writes / (time.perf_counter() - started))
    report["journal_commit_100_msgs"] = percentiles(commits)

    started = time.perf_counter()
    deleted = store.run_now(lambda s: s.prune_history(None, 100_000_000))
    report["prune_count_scan_s"] = round(time.perf_counter() - started, 3)
    assert deleted == 0
    started = time.perf_counter()
    deleted = store.run_now(lambda s: s.prune_history(T0 - 1.0, None))
    report["prune_age_walk_s"] = round(time.perf_counter() - started, 4)
    assert deleted == 0
    store.close()
    shutil.rmtree(journals, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages in #big")
    parser.add_argument("--others", type=int, default=200_000, help="messages in other targets")
    parser.add_argument("--queries", type=int, default=1000, help="queries per measurement")
    parser.add_argument("--writes", type=int, default=50_000, help="messages written through the store")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--data-dir", type=Path, help="sqlite: reuse this store (populated on first run)")
    parser.add_argument("--storage-url", help="postgresql: postgresql://USER:PASSWORD@HOST/DB (populated on first run)")
    parser.add_argument("--start-postgres", action="store_true",
                        help="postgresql: start a throwaway server in a temporary directory (needs initdb, pg_ctl)")
    args = parser.parse_args()
    if args.backend == "postgresql":
        if (args.storage_url is None) == (not args.start_postgres):
            parser.error("--backend postgresql needs --storage-url URL or --start-postgres (one of them)")
        if args.storage_url:
            report = run("postgresql", args.storage_url, args.messages, args.others, args.queries, args.writes)
        else:
            from tests.postgres import start_postgres

            server = start_postgres(durable=True)
            try:
                report = run("postgresql", server.url(server.create_database()), args.messages, args.others,
                             args.queries, args.writes)
            finally:
                server.stop()
    elif args.data_dir:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        report = run("sqlite", str(args.data_dir), args.messages, args.others, args.queries, args.writes)
    else:
        with tempfile.TemporaryDirectory(prefix="salotto-history-bench-") as tmp:
            report = run("sqlite", tmp, args.messages, args.others, args.queries, args.writes)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
