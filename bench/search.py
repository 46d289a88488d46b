"""Search benchmark: SEARCH latency over a real IRC connection on 1,000,000 stored messages.

``python -m bench.search [--messages 1000000] [--channels 400] [--queries 100] [--data-dir DIR]``

1. Fills a SQLite store (``--data-dir``, reused when it already holds the messages; a temporary one
   otherwise) with ``--messages`` messages of made-up words whose frequencies follow Zipf's law (a
   vocabulary of 20,000), 4 to 15 words each, over the last 20 days, spread over ``--channels`` channels
   of Zipf-distributed sizes and 300 nicks: in batches of 20,000 with the index off, then the index
   built in one go (what the migration does for an existing database: ``build_s``).
2. Starts ``salotto serve`` on it (a free loopback port; history kept forever; five of the channels,
   among them the two biggest, as autojoin channels, which every user may read from their start), and
   one client with ``soju.im/search`` and ``batch`` that joins them.
3. Sends ``--queries`` searches of each kind, one at a time, each timed from its write to the end of its
   batch, after a few to warm up; prints p50/p99/max per kind and over all, and the matches per word.

Kinds: ``rare`` (a word in some 10 to 60 messages), ``common`` (a word in some 100,000 messages across all
channels: most of its matches are in channels the user does not read), ``common-in-small`` (that word in a
small channel the user reads), ``from`` (a nick, everything readable), ``in`` (a mid-frequency word in
one big channel), ``everything`` (a mid-frequency word, no ``in``), ``page`` (the common word with
``before`` half-way back: paging). The bar (issue 18): p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from salotto.server.fanout import format_server_time
from salotto.storage import HistoryMessage, open_storage
from salotto.storage.search import SearchQuery

CHUNK = 20_000
VOCABULARY = 20_000
NICKS = 300
DAYS = 20
READ = (0, 1, 49, 149, 299)  # the channels the bench user reads, by size rank
_SYLLABLES = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"]


def vocabulary(rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        words["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))] = None
    return list(words)


def zipf_weights(n: int, s: float) -> list[float]:
    return list(itertools.accumulate(1 / (rank ** s) for rank in range(1, n + 1)))


def populate(where: str, total: int, channels: int) -> dict[str, Any]:
    """Fill the store; returns what the queries need (word frequencies, channel names) and the timings."""
    rng = random.Random(18)
    vocab = vocabulary(rng)
    word_weights = zipf_weights(len(vocab), 1.0)
    names = [f"#chan{i}" for i in range(channels)]
    channel_weights = zipf_weights(channels, 0.8)
    nicks = [f"nick{i}" for i in range(NICKS)]
    nick_weights = zipf_weights(NICKS, 0.7)
    prefix = os.urandom(4).hex()
    counter = itertools.count(1)
    now = time.time()
    start = now - DAYS * 86400
    step = (now - 60 - start) / total
    df: Counter[str] = Counter()
    per_channel: Counter[str] = Counter()
    storage = open_storage("sqlite", where, search=False)
    started = time.perf_counter()
    batch: list[HistoryMessage] = []
    for i in range(total):
        words = rng.choices(vocab, cum_weights=word_weights, k=rng.randint(4, 15))
        df.update(set(words))
        channel = rng.choices(names, cum_weights=channel_weights)[0]
        per_channel[channel] += 1
        nick = rng.choices(nicks, cum_weights=nick_weights)[0]
        batch.append(HistoryMessage(f"{prefix}-{next(counter):x}", channel, round(start + i * step, 3),
                                    f"{nick}!u@bench.example", None, "PRIVMSG", " ".join(words)))
        if len(batch) == CHUNK:
            storage.append_messages(batch)
            batch = []
    storage.append_messages(batch)
    inserted_s = time.perf_counter() - started
    storage.close()
    started = time.perf_counter()
    open_storage("sqlite", where, search=True).close()
    build_s = time.perf_counter() - started
    by_size = [name for name, _ in per_channel.most_common()]
    info = {"df": dict(df), "by_size": by_size, "per_channel": dict(per_channel),
            "insert_msgs_per_s": round(total / inserted_s), "build_s": round(build_s, 1)}
    (Path(where) / "bench-search.json").write_text(json.dumps(info))
    return info


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def line(self) -> str:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        text = line.decode("utf-8", "replace")
        if text.startswith("PING "):
            self.send("PONG " + text[5:])
        return text

    def until(self, pattern: str) -> list[str]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if re.search(pattern, line):
                return lines


def _start_server(where: str, autojoin: list[str]) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, "-m", "salotto", "serve", "--listen", "127.0.0.1:0", "--web-listen", "",
            "--data-dir", where, "--history-max-age-s", "0", "--history-max-per-target", "0",
            "--search-per-ip", "1000000", "--flood-burst-lines", "1000000", "--flood-lines-per-s", "1000000"]
    for channel in autojoin:
        args += ["--autojoin", channel]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = re.search(r"listening on [\d.]+:(\d+)", line)
        if match:
            return process, int(match.group(1))
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("salotto did not start")


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {"p50_ms": round(statistics.median(ms), 2), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2),
            "max_ms": round(ms[-1], 2), "n": len(ms)}


def run(where: str, total: int, channels: int, queries: int) -> dict[str, Any]:
    report: dict[str, Any] = {"messages": total, "channels": channels}
    info_path = Path(where) / "bench-search.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
    else:
        info = populate(where, total, channels)
        report["insert_msgs_per_s"] = info["insert_msgs_per_s"]
        report["index_build_s"] = info["build_s"]
    report["db_mib"] = round(sum(p.stat().st_size for p in Path(where).iterdir()) / 2**20)
    df: dict[str, int] = info["df"]
    by_size: list[str] = info["by_size"]
    readable = [by_size[i] for i in READ if i < len(by_size)]
    ranked = sorted(df.items(), key=lambda item: item[1])
    rare = [w for w, n in ranked if 10 <= n <= 60][:queries] or [ranked[0][0]]
    common = min(ranked, key=lambda item: abs(item[1] - 100_000))[0]
    mid = [w for w, n in ranked if 2_000 <= n <= 6_000][:queries] or [ranked[len(ranked) // 2][0]]
    report["words"] = {"rare_df": [df[w] for w in rare[:5]], "common": common, "common_df": df[common],
                       "mid_df": [df[w] for w in mid[:5]], "readable_channels": {c: info["per_channel"][c]
                                                                                 for c in readable}}
    half_way = format_server_time(time.time() - DAYS * 86400 / 2)
    kinds: dict[str, list[str]] = {
        "rare": [f"text={w}" for w in rare],
        "common": [f"text={common}"],
        "common-in-small": [f"in={readable[-1]};text={common}"],
        "from": [f"from=nick{i}" for i in range(1, 40)],
        "in": [f"in={readable[0]};text={w}" for w in mid],
        "everything": [f"text={w}" for w in mid],
        "page": [f"text={common};before={half_way}"],
    }

    process, port = _start_server(where, readable)
    try:
        client = Client(port)
        client.send("CAP LS 302")
        client.send("CAP REQ :soju.im/search batch server-time message-tags")
        client.send("NICK searcher")
        client.send("USER searcher 0 * :bench")
        client.send("CAP END")
        client.until(r" 001 ")
        for _ in readable:
            client.until(r" 366 ")
        # The same check the search makes: the store answers what the client asks.
        samples: dict[str, list[float]] = {}
        found: dict[str, list[int]] = {}
        for kind, attributes in kinds.items():
            cycle = itertools.cycle(attributes)
            times: list[float] = []
            counts: list[int] = []
            for n in range(queries + 5):
                started = time.perf_counter()
                client.send(f"SEARCH {next(cycle)}")
                lines = client.until(r"BATCH -|FAIL SEARCH")
                elapsed = time.perf_counter() - started
                if "FAIL SEARCH" in lines[-1]:
                    raise RuntimeError(lines[-1])
                if n >= 5:  # warm-up
                    times.append(elapsed)
                    counts.append(sum(1 for line in lines if " PRIVMSG " in line))
            samples[kind] = times
            found[kind] = counts
            report[kind] = {**percentiles(times), "results_median": statistics.median(counts)}
        report["all"] = percentiles([t for times in samples.values() for t in times])
    finally:
        process.terminate()
        process.wait(timeout=30)
    # Directly on a read-only connection, without the server: the storage's own share.
    reader = open_storage("sqlite", where, readonly=True)
    targets = {channel: 0.0 for channel in readable}
    direct = []
    for w in itertools.islice(itertools.cycle([common]), queries):
        started = time.perf_counter()
        reader.search(SearchQuery(targets, (w,), limit=50))
        direct.append(time.perf_counter() - started)
    reader.close()
    report["common_direct"] = percentiles(direct)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=400)
    parser.add_argument("--queries", type=int, default=100, help="searches of each kind")
    parser.add_argument("--data-dir", type=Path, help="reuse this store (filled on the first run)")
    args = parser.parse_args()
    if args.data_dir:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        report = run(str(args.data_dir), args.messages, args.channels, args.queries)
    else:
        with tempfile.TemporaryDirectory(prefix="salotto-search-bench-") as tmp:
            report = run(tmp, args.messages, args.channels, args.queries)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
