"""bench/history_bench still runs, on both backends (small numbers: it checks the tool, not the speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--messages", "2000", "--others", "400", "--queries", "20", "--writes", "200"]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    return subprocess.run([sys.executable, "-m", "bench.history_bench", *SMALL, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=110, check=False)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_history_bench_runs(backend: str, request: pytest.FixtureRequest) -> None:
    args = ["--backend", backend]
    if backend == "postgresql":
        args += ["--storage-url", request.getfixturevalue("postgres_url")]
    done = _bench(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["backend"] == backend and report["messages_big"] == 2000
    assert report["populate_msgs_per_s"] > 0 and report["db_bytes"] > 0
    assert report["store_writes_per_s_100_per_pass"] > 0
    for name in ("latest_100_direct", "latest_100_via_store", "before_100_random_msgid",
                 "targets_50_channels_plus_dms"):
        assert report[name]["n"] > 0 and 0 < report[name]["p50_ms"] <= report[name]["p99_ms"], name


def test_history_bench_postgresql_needs_a_url_or_a_server() -> None:
    done = _bench("--backend", "postgresql")
    assert done.returncode == 2 and "--storage-url URL or --start-postgres" in done.stderr
