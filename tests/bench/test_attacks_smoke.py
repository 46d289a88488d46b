"""bench.attacks, bench.registration_cost and bench.fanout_cost still work: each measurement, for a second or two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the bench reads /proc (server RSS)")


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *argv], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_attack_measurements_run_and_find_the_limits_holding() -> None:
    # The flood lasts 2 s: a flooder is dropped once its unread pongs fill the kernel's buffer (up to 4 MiB
    # on loopback) and then max_sendq_bytes; in 1 s only some of the twenty get that far.
    done = _run("bench.attacks", "--runs", "1", "--duration", "2", "--flood-duration", "2", "--markdown")
    assert done.returncode == 0, done.stderr[-3000:]
    records = {r["measure"] + str(r.get("addresses", "")): r
               for r in (json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))}
    assert records["pingflood"]["dropped"] > 0  # the send queue dropped the flooders
    assert records["pingflood"]["rss_peak_kib"] < records["pingflood"]["rss_before_kib"] + 100 * 1024
    for addresses in (1, 40):  # a burst of login_attempts_per_account, no more
        assert 0 < records[f"guessing{addresses}"]["checked_per_minute"] <= 5 * 60 / 2
    assert records["connections"]["accepted"] <= 33  # connect_attempts_per_ip's burst (and a refill)
    assert "| attack (defaults, loopback not exempt) |" in done.stdout


def test_registration_cost_registers_and_reports() -> None:
    done = _run("bench.registration_cost", "--clients", "200")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.endswith("us per registration (200 clients)\n")


def test_fanout_cost_delivers_and_reports() -> None:
    done = _run("bench.fanout_cost", "--members", "20", "--messages", "50")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.endswith("us per delivery (50 messages to 20 members)\n")


def test_fanout_cost_stores_every_message_with_history() -> None:
    done = _run("bench.fanout_cost", "--members", "20", "--messages", "50", "--per-pass", "7", "--history",
                "--store-every", "14")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.endswith("us per delivery (50 messages to 20 members, each stored in history)\n")
