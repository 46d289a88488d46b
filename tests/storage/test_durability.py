"""Nothing a client could have seen is lost when the process dies: a child runs the server's store
(journals, then batches into the database on the storer thread), is SIGKILLed mid-stream, and every batch
it reported committed is in the store once the next start has recovered the journals (and no batch is
half there); every account it reported written is there too. On every backend: for PostgreSQL the child
is the client that dies, its database server lives on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salotto.config import load_config
from salotto.storage import open_storage
from salotto.storage.store import open_store

from .durability_child import BATCH

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_stream_loses_no_committed_batch(backend: str, location: str, data_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.durability_child", backend, location, str(data_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])},
    )
    assert child.stdout is not None
    reported: set[int] = set()
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(reported) < 300 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("committed"):
                reported.add(int(line.split()[1]))
        # Killed while it is still writing: the next batches are queued, flushing or committing.
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, errors
    # SIGKILL may land in the middle of a report: only whole lines count.
    whole = rest if rest.endswith("\n") else rest.rpartition("\n")[0]
    reported.update(_reports(whole))
    accounts = {int(n) for n in re.findall(r"account (\d+)", "".join(seen) + whole)}
    assert len(reported) >= 300, errors

    # The next start stores what only the journals hold.
    location_key = {"storage_url": location} if backend == "postgresql" else {}
    config = load_config(None, {"storage_backend": backend, "data_dir": str(data_dir), **location_key})
    store = open_store(config, location, 0.0, lambda fn: fn())
    recovered = store.recover()
    store.close()
    storage = open_storage(backend, location)
    try:
        stored = storage.latest("#lobby", 10_000_000)
        batches: dict[int, set[int]] = {}
        for m in stored:
            batch, n = (int(part) for part in m.msgid[1:].split("-"))
            batches.setdefault(batch, set()).add(n)
        missing = sorted(reported - batches.keys())
        assert not missing, f"batches reported committed but not stored: {missing[:10]}"
        partial = {b: len(ns) for b, ns in batches.items() if len(ns) != BATCH}
        assert not partial, f"half-stored batches: {partial}"
        assert accounts, errors
        for batch in accounts:
            assert storage.get_account(f"user{batch}") is not None
        # Batches are committed in order: what is stored is a prefix of what was written.
        assert sorted(batches) == list(range(len(batches)))
        print(f"reported {len(reported)} batches committed, {len(batches)} stored, {recovered} messages recovered")
    finally:
        storage.close()


def _reports(text: str) -> set[int]:
    """Batch numbers in the child's output."""
    return {int(number) for number in re.findall(r"committed (\d+)", text)}
