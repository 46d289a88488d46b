"""Nothing committed is lost when the process dies: a child writes through a StorageWorker, is SIGKILLed
mid-stream, and every batch it reported committed is in the store when reopened (and no batch is half
there). On every backend: for PostgreSQL the child is the client that dies, its server lives on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salotto.storage import open_storage

from .durability_child import BATCH

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_stream_loses_no_committed_batch(backend: str, location: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.durability_child", backend, location],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])},
    )
    assert child.stdout is not None
    reported: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(reported) < 300 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            reported.add(int(line.split()[1]))
        # Killed while it is still writing: the next batches are queued, flushing or committing.
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    # SIGKILL may land in the middle of a report: only whole lines count.
    reported.update(_reports(rest if rest.endswith("\n") else rest.rpartition("\n")[0]))
    assert len(reported) >= 300, errors

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
        for batch in reported:
            if batch % 10 == 0:
                assert storage.get_account(f"user{batch}") is not None
        # Batches are committed in order: what is stored is a prefix of what was written.
        assert sorted(batches) == list(range(len(batches)))
        print(f"reported {len(reported)} batches committed, {len(batches)} stored")
    finally:
        storage.close()


def _reports(text: str) -> set[int]:
    """Batch numbers in the child's output. Its callbacks print from more than one thread, so a line
    can hold two reports glued together, or none."""
    return {int(number) for number in re.findall(r"committed (\d+)", text)}
