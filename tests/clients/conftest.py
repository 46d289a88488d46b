"""Fixtures for the client tests: real IRC servers (ngircd, salotto) and an X server (Xvfb) on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import RunningServer, start_server, stop_server
from tests.irc_client import RawClient

REPO = Path(__file__).resolve().parents[2]
NGIRCD_TEMPLATE = REPO.parent / "shared" / "peers" / "ngircd.conf.in"
# How long a server may take to open its port.
SERVER_START_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout_s} s")


def _ngircd_config_text(port: int, rundir: Path) -> str:
    if NGIRCD_TEMPLATE.exists():
        template = NGIRCD_TEMPLATE.read_text()
    else:  # a checkout without ../shared: the same settings, inline
        template = (
            "[Global]\n\tName = ngircd.test\n\tInfo = test\n\tListen = 127.0.0.1\n\tPorts = @PORT@\n"
            "\tMotdPhrase = \"test\"\n\tPidFile = @RUNDIR@/ngircd.pid\n[Limits]\n\tMaxConnectionsIP = 0\n"
            "\tMaxPenaltyTime = 0\n[Options]\n\tDNS = no\n\tIdent = no\n\tPAM = no\n"
        )
    return template.replace("@PORT@", str(port)).replace("@RUNDIR@", str(rundir))


@dataclass
class IrcServer:
    """A server process on 127.0.0.1 that a test can stop and start again on the same port."""

    kind: str
    port: int
    argv: list[str]
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    log: list[Path] = field(default_factory=list)

    def start(self) -> None:
        logfile = self.workdir / f"server-{len(self.log)}.log"
        self.log.append(logfile)
        with logfile.open("wb") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        deadline = time.monotonic() + 10
        while True:  # ngircd refuses to bind while old sockets linger; retry briefly
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _salotto_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("salotto")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "salotto"]


def _salotto_argv(port: int, data_dir: Path, *extra: str) -> list[str]:
    # No web listener: its default port (8080) may be taken by another server on this machine.
    return [*_salotto_cmd(), "serve", "--listen", f"127.0.0.1:{port}", "--web-listen", "",
            "--data-dir", str(data_dir), *extra]


def _salotto_unavailable() -> str:
    try:
        probe = subprocess.run(
            [*_salotto_cmd(), "serve", "--help"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"salotto serve not runnable: {exc}"
    if probe.returncode != 0:
        return "salotto serve not runnable yet: " + probe.stderr.decode(errors="replace").strip()[-200:]
    return ""


def make_server(kind: str, workdir: Path, *salotto_args: str) -> IrcServer:
    port = free_port()
    if kind == "ngircd":
        exe = shutil.which("ngircd") or ("/usr/sbin/ngircd" if Path("/usr/sbin/ngircd").exists() else None)
        if exe is None:
            pytest.skip("ngircd not installed (apt-get install ngircd)")
        conf = workdir / "ngircd.conf"
        conf.write_text(_ngircd_config_text(port, workdir))
        return IrcServer(kind, port, [exe, "--nodaemon", "--config", str(conf)], workdir)
    reason = _salotto_unavailable()
    if reason:
        pytest.skip(reason)
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    return IrcServer(kind, port, _salotto_argv(port, data_dir, *salotto_args), workdir)


@pytest.fixture(params=["ngircd", "salotto"])
def irc_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IrcServer]:
    server = make_server(str(request.param), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[[str], IrcServer]]:
    started: list[IrcServer] = []

    def factory(kind: str) -> IrcServer:
        workdir = tmp_path / f"{kind}-{len(started)}"
        workdir.mkdir()
        server = make_server(kind, workdir)
        server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


# Lines said in #lobby before a test scrolls back through them: three requests' worth (50 each).
HISTORY_LINES_SAID = 150


def numbered_line(i: int) -> str:
    return f"line {i:03d}"


@pytest.fixture
def history_server(tmp_path: Path) -> Iterator[IrcServer]:
    """salotto (history is on with a data dir) where someone said ``numbered_line(1..150)`` in #lobby."""
    # The talker says 150 lines at once; fakelag at the default 4 lines/s would take half a minute.
    server = make_server("salotto", tmp_path, "--flood-burst-lines", "1000", "--flood-lines-per-s", "1000")
    server.start()
    try:
        talker = RawClient("127.0.0.1", server.port)
        talker.register("talker")
        talker.expect("JOIN", p0="#lobby")  # salotto puts everyone in #lobby
        for i in range(1, HISTORY_LINES_SAID + 1):
            talker.send(f"PRIVMSG #lobby :{numbered_line(i)}")
        talker.send("PING :said")
        talker.expect("PONG")  # every line before it was handled (and stored)
        talker.send("QUIT")
        talker.close()
        yield server
    finally:
        server.stop()


@pytest.fixture
def two_salottos(tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two salotto servers, each with its own data directory: a network's nodes, for a client to move
    between (a test may kill or stop either)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_server(tmp_path / "a")
    try:
        b = start_server(tmp_path / "b")
    except BaseException:
        stop_server(a)
        raise
    yield a, b
    for server in (a, b):
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)  # a stopped one must be able to stop
        stop_server(server)


@pytest.fixture(scope="session")
def xdisplay() -> Iterator[str]:
    """An Xvfb display for Tk tests; DISPLAY is set for this process and its children."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb not installed (apt-get install xvfb)")
    try:
        import tkinter  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"this Python has no tkinter ({exc}); apt-get install python3-tk or build Python with tk-dev")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [xvfb, "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-dpi", "96"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    number = b""
    with os.fdopen(read_fd, "rb") as pipe:
        while not number.endswith(b"\n"):
            chunk = pipe.read(1)
            if not chunk:
                break
            number += chunk
    if not number.strip():
        proc.kill()
        pytest.skip("Xvfb did not start")
    display = ":" + number.decode().strip()
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    yield display
    if previous is None:
        os.environ.pop("DISPLAY", None)
    else:
        os.environ["DISPLAY"] = previous
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def notification_service(xdisplay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[
        Callable[[], list[tuple[str, str]]]]:
    """A session bus with dunst on it (the freedesktop notification service), for this test only.

    Yields a function that returns the (summary, body) of every notification shown so far.
    """
    tools = {name: shutil.which(name) for name in ("dbus-daemon", "dunst", "dunstctl", "notify-send")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install dbus dunst libnotify-bin)")
    bus = subprocess.Popen([str(tools["dbus-daemon"]), "--session", "--nofork", "--nopidfile", "--print-address=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert bus.stdout is not None
    address = bus.stdout.readline().strip()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    config = tmp_path / "dunstrc"
    config.write_text("[global]\n    history_length = 100\n")
    daemon = subprocess.Popen([str(tools["dunst"]), "-config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctl = str(tools["dunstctl"])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ctl, *args], capture_output=True, text=True, timeout=10, check=False)

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while run("is-paused").returncode != 0:
        if time.monotonic() > deadline or daemon.poll() is not None:
            daemon.kill()
            bus.kill()
            pytest.skip("dunst did not come up on the session bus")
        time.sleep(0.1)

    def shown() -> list[tuple[str, str]]:
        run("close-all")  # what is on screen goes to the history, where dunstctl can list it
        out = run("history").stdout
        try:
            entries = json.loads(out)["data"][0]
        except (ValueError, KeyError, IndexError):
            return []
        return [(e["summary"]["data"], e["body"]["data"]) for e in entries]

    yield shown
    daemon.terminate()
    daemon.wait(5)
    bus.terminate()
    bus.wait(5)
