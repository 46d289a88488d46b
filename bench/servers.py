"""The servers a run compares: how to install each, write its config, start it on loopback and stop it.

salotto is one entry like the peers: a command line and a port. Configs live in ``bench/peers/`` (copies of
the project's ``shared/peers/`` templates, so the bench is self-contained); ``@PORT@`` and ``@RUNDIR@`` are
filled in per start, and every start gets a fresh run directory, so each run measures a fresh server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salotto.config import toml_value

__all__ = ["SERVERS", "RunningServer", "ServerError", "ServerSpec", "free_port", "start_server"]

PEERS_DIR = Path(__file__).resolve().parent / "peers"
VENV_BIN = Path(sys.executable).parent
# Time for a server to accept connections after it is started.
START_TIMEOUT_S = 30.0
# Time for a server to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0
# apt-get waits this long for another install to release dpkg's lock.
APT_LOCK_WAIT_S = 300.0

ConfigValue = str | int | float | bool | list[str]


class ServerError(Exception):
    """A server could not be installed or started; the message has the tail of its log."""


@dataclass(frozen=True)
class ServerSpec:
    name: str
    description: str  # for the docs: implementation language and threading model
    is_peer: bool  # peers are the yardstick; salotto is measured against the best of them
    connect_inflight: int  # registrations in flight that this server handles without SYN retries
    max_clients: int | None  # cap for the connect scenario (miniircd's select() limit)
    command: Callable[[Path, int, Mapping[str, ConfigValue | None]], list[str]]  # writes configs into the run dir
    executable: Callable[[], str | None]  # path if installed
    install: Callable[[], None]
    version: Callable[[], str]
    # Members of the crowd by default (None: as many as the open-file limit allows); --crowd-clients sets it.
    crowd_clients: int | None = None


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen[bytes]
    rundir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 15) -> str:
        log = self.rundir / "server.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.rundir, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_server(spec: ServerSpec, extra_config: Mapping[str, ConfigValue | None] | None = None) -> RunningServer:
    """Start ``spec`` on a free loopback port and wait until it accepts connections.

    Raises:
        ServerError: it exited or did not listen within START_TIMEOUT_S.
    """
    rundir = Path(tempfile.mkdtemp(prefix=f"salotto-bench-{spec.name}-"))
    os.chmod(rundir, 0o755)  # servers that drop root (miniircd --setuid nobody) still read their files
    port = free_port()
    argv = spec.command(rundir, port, extra_config or {})
    with (rundir / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=rundir
        )
    server = RunningServer(spec, port, proc, rundir)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _accepts(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            raise ServerError(f"{spec.name} did not start ({' '.join(argv)}):\n{tail}")
        time.sleep(0.1)
    return server


def _fill_template(template: str, rundir: Path, port: int) -> Path:
    text = (PEERS_DIR / template).read_text().replace("@PORT@", str(port)).replace("@RUNDIR@", str(rundir))
    target = rundir / template.removesuffix(".in")
    target.write_text(text)
    return target


def _which(name: str, *extra_dirs: Path) -> Callable[[], str | None]:
    def find() -> str | None:
        for directory in extra_dirs:
            if (directory / name).exists():
                return str(directory / name)
        return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")

    return find


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def _apt_install(package: str) -> Callable[[], None]:
    def install() -> None:
        argv = ["apt-get", "install", "-y", "--no-install-recommends", package]
        if os.geteuid() != 0:
            argv = ["sudo", "-n", *argv]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        deadline = time.monotonic() + APT_LOCK_WAIT_S
        while True:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if done.returncode == 0:
                return
            if "lock" not in done.stderr or time.monotonic() > deadline:
                raise ServerError(f"{' '.join(argv)} failed:\n{done.stderr.strip()}")
            time.sleep(5)  # another install holds dpkg's lock

    return install


def _pip_install(requirement: str) -> Callable[[], None]:
    def install() -> None:
        argv = [sys.executable, "-m", "pip", "install", "--quiet", requirement]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServerError(f"{' '.join(argv)} failed:\n{done.stderr.strip()}")

    return install


def _package_version(distribution: str) -> Callable[[], str]:
    def version() -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            return f"{distribution} {dist_version(distribution)}"
        except PackageNotFoundError:
            return f"{distribution} (unknown version)"

    return version


_ngircd = _which("ngircd")
_inspircd = _which("inspircd")
_miniircd = _which("miniircd", VENV_BIN)
_salotto = _which("salotto", VENV_BIN)


def _ngircd_version() -> str:
    return _first_line([_must(_ngircd, "ngircd"), "--version"]).split("-")[0]  # drop the feature list


def _must(find: Callable[[], str | None], name: str) -> str:
    path = find()
    if path is None:
        raise ServerError(f"{name} is not installed")
    return path


def _ngircd_command(rundir: Path, port: int, _: Mapping[str, Any]) -> list[str]:
    config = _fill_template("ngircd.conf.in", rundir, port)
    return [_must(_ngircd, "ngircd"), "--nodaemon", "--config", str(config)]


def _inspircd_command(rundir: Path, port: int, _: Mapping[str, Any]) -> list[str]:
    config = _fill_template("inspircd.conf.in", rundir, port)
    root = ["--runasroot"] if os.geteuid() == 0 else []
    return [_must(_inspircd, "inspircd"), "--nofork", *root, "--config", str(config)]


def _miniircd_command(rundir: Path, port: int, _: Mapping[str, Any]) -> list[str]:
    setuid = ["--setuid", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root otherwise
    return [_must(_miniircd, "miniircd"), "--listen", "127.0.0.1", "--ports", str(port), *setuid]


def _salotto_command(rundir: Path, port: int, extra: Mapping[str, ConfigValue | None]) -> list[str]:
    config = rundir / "salotto.toml"
    # A scenario's keys replace the base config's (TOML refuses a key set twice); None drops the base's line,
    # so salotto uses its own default.
    base = (PEERS_DIR / "salotto.toml").read_text().splitlines(keepends=True)
    lines = [line for line in base if line.split("=", 1)[0].strip() not in extra]
    lines += [f"{key} = {toml_value(value)}\n" for key, value in extra.items() if value is not None]
    config.write_text("".join(lines))
    listen, data_dir = f"127.0.0.1:{port}", str(rundir / "data")
    salotto = _must(_salotto, "salotto")
    return [salotto, "serve", "--listen", listen, "--data-dir", data_dir, "--config", str(config)]


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "ngircd", "C, one thread, poll/epoll", True, 10, None, _ngircd_command, _ngircd,
            _apt_install("ngircd"), _ngircd_version,
            # Its crowd's joins cost it O(N²) CPU: 79 CPU-s at 5,000 members, some 19 CPU-minutes at 19,000.
            crowd_clients=5000,
        ),
        ServerSpec(
            # InspIRCd finishes registrations once a second, so its rate is the number in flight.
            "inspircd", "C++, one thread, epoll", True, 2000, None, _inspircd_command, _inspircd,
            _apt_install("inspircd"), lambda: _first_line([_must(_inspircd, "inspircd"), "--version"]),
        ),
        ServerSpec(
            # select() cannot watch descriptors past 1023: miniircd dies beyond ~1,020 clients.
            "miniircd", "Python, one thread, select", True, 5, 1000, _miniircd_command, _miniircd,
            _pip_install("miniircd==2.3"), _package_version("miniircd"),
        ),
        ServerSpec(
            "salotto", "Python, asyncio (uvloop)", False, 100, None, _salotto_command, _salotto,
            lambda: None, _package_version("salotto"),
        ),
    )
}  # fmt: skip
