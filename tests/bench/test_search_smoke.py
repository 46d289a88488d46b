"""bench.search with tiny sizes, so that the tool cannot rot: it fills a store, starts the server, and
every kind of search answers with matches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_search_bench_runs(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench.search", "--messages", "3000", "--channels", "20", "--queries", "3",
            "--data-dir", str(tmp_path / "data")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=170, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    for kind in ("rare", "common", "common-in-small", "from", "in", "everything", "page"):
        assert report[kind]["n"] == 3
        assert 0 < report[kind]["p50_ms"] <= report[kind]["max_ms"]
    assert report["common"]["results_median"] > 0
    assert report["index_build_s"] >= 0
