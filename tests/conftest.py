"""Fixtures shared by the end-to-end and interop tests: a real salotto server on a free port."""

from __future__ import annotations

import os
import resource
import tempfile

# Whatever a test forgets to point elsewhere must not land in the user's own data directory.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="salotto-tests-xdg-")
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from tests.irc_client import RawClient
from tests.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures for every test
from tests.redis_server import redis_server  # noqa: F401 - a fixture for every test


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    host: str
    port: int
    data_dir: Path
    stderr_path: Path

    def client(self) -> RawClient:
        return RawClient(self.host, self.port)

    def log(self) -> str:
        return self.stderr_path.read_text()


def start_server(tmp_path: Path, *extra: str, config_text: str | None = None,
                 open_files_limit: int | None = None) -> RunningServer:
    """Start ``salotto serve`` on 127.0.0.1 with an OS-chosen port; return once it listens.

    ``open_files_limit``: the soft and hard RLIMIT_NOFILE of the server process (as a host's would be)."""
    # No web listener unless a test asks for one (extra "--web-listen 127.0.0.1:0" adds it).
    args = [sys.executable, "-m", "salotto", "serve", "--listen", "127.0.0.1:0", "--web-listen", "",
            "--data-dir", str(tmp_path / "data"), *extra]
    if config_text is not None:
        config_path = tmp_path / "salotto.toml"
        config_path.write_text(config_text)
        args += ["--config", str(config_path)]
    stderr_path = tmp_path / "server.log"
    with stderr_path.open("w") as stderr:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=None if open_files_limit is None else partial(
                resource.setrlimit, resource.RLIMIT_NOFILE, (open_files_limit, open_files_limit)),
        )
    assert process.stdout is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"listening on ([\d.]+):(\d+)", line)
        if match:
            return RunningServer(process, match.group(1), int(match.group(2)), tmp_path / "data", stderr_path)
    process.kill()
    raise RuntimeError(f"salotto did not start: {stderr_path.read_text()}")


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    if server.process.stdout is not None:
        server.process.stdout.close()


@pytest.fixture
def salotto_server(tmp_path: Path) -> Iterator[RunningServer]:
    server = start_server(tmp_path)
    yield server
    stop_server(server)
