"""bench.ws_connect (RSS per 1,000 idle WebSocket clients) still runs: 50 clients against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server
from tests.web.conftest import free_port

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the bench reads /proc (server RSS)")


def test_ws_connect_registers_its_clients_and_reports_the_rss(tmp_path: Path) -> None:
    port = free_port()
    server = start_server(tmp_path, "--web-listen", f"127.0.0.1:{port}",
                          config_text=(REPO / "bench" / "peers" / "salotto.toml").read_text())
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.ws_connect", "--port", str(port), "--clients", "50", "--server-pid",
             str(server.process.pid), "--settle-s", "0.2"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    finally:
        stop_server(server)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.splitlines()[-1])
    assert record["clients"] == 50
    assert record["rss_after_kib"] >= record["rss_before_kib"] > 0
