"""A real, throwaway Redis server for the tests (and benchmarks): Debian's ``redis-server``.

:func:`start_redis` runs ``redis-server`` in the foreground in a temporary directory, listening on 127.0.0.1
at a free port, with no persistence at all (no RDB snapshot, no append-only file): what a test writes is
gone when the server stops. :meth:`RedisServer.stop` (SIGTERM) or :meth:`RedisServer.kill` (SIGKILL) and
:meth:`RedisServer.start` again bring it back on the SAME port, empty, as the cluster's chaos tests need
("Redis goes away for 5 s, then comes back"). :meth:`RedisServer.cpu_seconds` is the CPU time the server
process has used so far (user + system, from /proc), for benchmarks.

Fixture: ``redis_server`` (a fresh server per test, since a test may stop it; closed after it). It skips
the test when redis-server is not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

NOT_INSTALLED = "redis-server is not installed: apt-get install redis-server"
# How long a starting server may take to answer PING, and a stopping one to exit on SIGTERM before SIGKILL.
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers_ping(port: int) -> bool:
    """True when a server on 127.0.0.1:port answers PING with PONG (RESP, no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    base: Path  # the temporary directory: the server's working directory and its log
    port: int
    binary: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.base / "redis.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("redis-server is not running")
        return self.process.pid

    def start(self) -> None:
        """Start the server on its port (again, after :meth:`stop` or :meth:`kill`); return once it answers
        PING. Raises RuntimeError (with the end of its log) if it does not."""
        if self.running:
            raise RuntimeError(f"redis-server is already running (pid {self.pid})")
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.base),
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log_path)]
        self.process = subprocess.Popen(args, cwd=self.base, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log()[-2000:]}")
            if _answers_ping(self.port):
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING on 127.0.0.1:{self.port}: {self.log()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM (a clean shutdown: clients see their connections closed), and wait for it to exit."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL (a crash), and wait for it to be gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def cpu_seconds(self) -> float:
        """User + system CPU time the running server has used, in seconds (utime and stime of /proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the command's ")": state is field 3 of proc(5), so utime (14) and stime (15) are at 11 and 12.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def start_redis(parent: str | None = None) -> RedisServer:
    """Start a throwaway server (see the module docstring). Raises FileNotFoundError if redis-server is not
    installed, RuntimeError if it cannot start."""
    binary = redis_server_binary()
    if binary is None:
        raise FileNotFoundError(NOT_INSTALLED)
    server = RedisServer(Path(tempfile.mkdtemp(prefix="salotto-redis-", dir=parent)), _free_port(), binary)
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis server of the test's own (it may stop, kill and restart it); skips if redis-server is not installed."""
    if redis_server_binary() is None:
        pytest.skip(NOT_INSTALLED)
    server = start_redis()
    try:
        yield server
    finally:
        server.close()
