"""bench/cluster still runs: ``--quick`` on 2 nodes and Redis (small sizes, a second a run).

Starts a throwaway PostgreSQL and redis-server (skipped with the reason when either is not installed) and
checks that every scenario ran on every setup, delivered what was sent and registered everyone, with the
CPU of both nodes and of Redis measured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.postgres import NOT_INSTALLED, postgres_bin_dir

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("cluster-fanout", "cluster-fanout-paced", "cluster-connect")
SETUPS = ("local", "redis-2")

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="the bench reads /proc (server CPU, RSS)"),
    pytest.mark.skipif(shutil.which("redis-server") is None,
                       reason="redis-server is not installed: apt-get install redis-server"),
    pytest.mark.skipif(postgres_bin_dir() is None, reason=NOT_INSTALLED),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[tuple[str, str], dict[str, Any]]]:
    results = tmp_path_factory.mktemp("bench") / "results.jsonl"
    argv = [sys.executable, "-m", "bench.cluster", "--quick", "--nodes", "2", "--results", str(results)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    return done.stdout, {(row["name"], row["setup"]): row for row in rows}


@pytest.mark.timeout(180)
def test_every_scenario_ran_on_every_setup(run: tuple[str, dict[tuple[str, str], dict[str, Any]]]) -> None:
    table, records = run
    assert set(records) == {(name, setup) for name in SCENARIOS for setup in SETUPS}
    for (name, setup), row in records.items():
        assert row["suite"] == "cluster" and row["disconnected"] == 0, (name, setup)
        assert row["nodes"] == (2 if setup == "redis-2" else 1)
        assert len(row["node_cpu_s"]) == row["nodes"]
        assert ("redis_cpu_s" in row) == (setup == "redis-2")
        assert f"| {name} | {setup} |" in table
    assert "Bars (issue 17):" in table


@pytest.mark.timeout(180)
@pytest.mark.parametrize("setup", SETUPS)
def test_fanouts_deliver_everything(run: tuple[str, dict[tuple[str, str], dict[str, Any]]], setup: str) -> None:
    _, records = run
    for name in ("cluster-fanout", "cluster-fanout-paced"):
        row = records[(name, setup)]
        assert row["deliveries"] > 0 and row["lost"] == 0, (name, row)
        assert row["server_cpu_s"] > 0 and row["cpu_s_per_million"] > 0
    # Every member but the sender has each message, on whichever node it is.
    fanout = records[("cluster-fanout", setup)]
    assert fanout["deliveries"] == fanout["messages_sent"] * (fanout["clients"] - 1)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("setup", SETUPS)
def test_connect_registers_everyone(run: tuple[str, dict[tuple[str, str], dict[str, Any]]], setup: str) -> None:
    _, records = run
    row = records[("cluster-connect", setup)]
    assert row["clients"] == 60 and row["registrations_per_s"] > 0
    # 60 registrations may take less than the kernel's 10 ms CPU tick on one node alone: counted, maybe 0.
    assert row["cpu_ms_per_registration"] >= 0 and row["server_cpu_s"] >= 0
