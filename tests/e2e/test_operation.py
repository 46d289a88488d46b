"""Running the server: shutdown, reload, logs, autojoin and many clients, against ``salotto serve``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import socket
import time
from pathlib import Path

from salotto import runtime
from salotto.config import load_config
from salotto.passwords import hash_password
from tests.conftest import start_server, stop_server
from tests.e2e.helpers import joined, read_until_closed, wait_for_log
from tests.irc_client import RawClient
from tests.tls_certs import make_certificate, needs_openssl
from tests.web.conftest import free_port

OPER_PASSWORD = "correct horse"
# A cheap scrypt cost keeps OPER fast in tests; the stored hash carries its own parameters.
OPER_HASH = hash_password(OPER_PASSWORD, n=2**10)


def config_text(motd_file: Path, max_targets: int, extra: str = "") -> str:
    return (
        f'motd_file = "{motd_file}"\nmax_targets = {max_targets}\n{extra}'
        f'[opers.admin]\npassword_hash = "{OPER_HASH}"\n'
    )


def isupport(client: RawClient) -> list[str]:
    return [token for msg in client.received if msg.command == "005" for token in msg.params[1:-1]]


def motd(client: RawClient) -> list[str]:
    return [msg.params[-1] for msg in client.received if msg.command == "372"]


def test_sigterm_tells_clients_and_exits_0(tmp_path: Path) -> None:
    running = start_server(tmp_path)
    try:
        alice = joined(running, "alice")
        bob = joined(running, "bob")
        unregistered = running.client()
        running.process.send_signal(signal.SIGTERM)
        for client in (alice, bob, unregistered):
            lines = read_until_closed(client)
            errors = [line for line in lines if line.startswith("ERROR")]
            assert len(errors) == 1 and "shutting down" in errors[0], lines
        assert not any(msg.command == "QUIT" for msg in alice.received)  # no QUIT storm at shutdown
        assert running.process.wait(timeout=10) == 0
    finally:
        stop_server(running)
    log = running.log()
    assert "received SIGTERM, shutting down" in log and "Traceback" not in log


def test_sighup_reloads_the_config_and_keeps_connections(tmp_path: Path) -> None:
    motd_a, motd_b = tmp_path / "motd-a.txt", tmp_path / "motd-b.txt"
    motd_a.write_text("first motd\n")
    motd_b.write_text("second motd\nline two\n")
    running = start_server(tmp_path, config_text=config_text(motd_a, 4))
    try:
        old = joined(running, "old")
        assert motd(old) == ["- first motd"]
        assert "MAXTARGETS=4" in isupport(old)
        (tmp_path / "salotto.toml").write_text(config_text(motd_b, 7))
        running.process.send_signal(signal.SIGHUP)
        wait_for_log(running, "configuration reloaded")
        new = joined(running, "new")
        assert motd(new) == ["- second motd", "- line two"]
        assert "MAXTARGETS=7" in isupport(new)
        # The old connection is still there and talks to the new one.
        old.expect("JOIN")
        old.send("PRIVMSG #lobby :still here")
        assert new.expect("PRIVMSG").params == ["#lobby", "still here"]
        old.send("MOTD")
        old.expect("376")
        assert motd(old)[-2:] == ["- second motd", "- line two"]
    finally:
        stop_server(running)
    assert running.process.returncode == 0


def test_rehash_by_an_operator_reloads_and_an_invalid_config_keeps_the_old_one(tmp_path: Path) -> None:
    motd_file = tmp_path / "motd.txt"
    motd_file.write_text("hello\n")
    config_path = tmp_path / "salotto.toml"
    running = start_server(tmp_path, config_text=config_text(motd_file, 4))
    try:
        admin = joined(running, "admin")
        admin.send("REHASH")
        admin.expect("481")  # not an operator yet
        admin.send("OPER admin wrong")
        admin.expect("464")
        admin.send(f"OPER admin :{OPER_PASSWORD}")
        admin.expect("381")

        config_path.write_text(config_text(motd_file, 9))
        admin.send("REHASH")
        assert admin.expect("382").params[1] == str(config_path)
        second = joined(running, "second")
        assert "MAXTARGETS=9" in isupport(second)

        # A key only a restart can apply: reloaded around it, and the log says so.
        config_path.write_text(config_text(motd_file, 7, "history_enabled = false\n"))
        admin.send("REHASH")
        admin.expect("382")
        line = wait_for_log(running, "restart")[0]
        assert "history_enabled changed in the config: only a restart applies that" in line
        tokens = isupport(joined(running, "after"))
        assert "MAXTARGETS=7" in tokens and any(t.startswith("CHATHISTORY=") for t in tokens)  # history runs on
        config_path.write_text(config_text(motd_file, 9))
        admin.send("REHASH")
        admin.expect("382")

        for broken in ("max_targets = 0\n", "max_targets = 5\nnot toml [\n", 'no_such_key = "x"\n'):
            config_path.write_text(broken)
            admin.send("REHASH")
            admin.expect("382")
            notice = admin.expect("NOTICE")
            assert "REHASH failed" in notice.params[-1], notice
            third = joined(running, "third")
            assert "MAXTARGETS=9" in isupport(third)
            third.send("QUIT")
        # SIGHUP with a broken file: the same.
        running.process.send_signal(signal.SIGHUP)
        wait_for_log(running, "rehash failed", count=4)
        fourth = joined(running, "fourth")
        assert "MAXTARGETS=9" in isupport(fourth)
        # The operator is still connected and still an operator.
        admin.send("PING :alive")
        admin.expect("PONG")
        assert running.process.poll() is None
    finally:
        stop_server(running)
    assert "Traceback" not in running.log()


def test_rehash_with_the_motd_file_gone_keeps_the_old_motd(tmp_path: Path) -> None:
    motd_file = tmp_path / "motd.txt"
    motd_file.write_text("the old motd\n")
    running = start_server(tmp_path, config_text=config_text(motd_file, 4))
    try:
        joined(running, "early")  # once a client is served, the signal handlers are in place
        motd_file.unlink()
        running.process.send_signal(signal.SIGHUP)
        line = wait_for_log(running, "rehash failed")[0]
        assert "motd_file" in line and str(motd_file) in line
        client = joined(running, "reader")
        assert motd(client) == ["- the old motd"]
    finally:
        stop_server(running)


def test_log_format_json_gives_json_lines(tmp_path: Path) -> None:
    running = start_server(tmp_path, "--log-format", "json")
    try:
        alice = joined(running, "alice")
        alice.send("QUIT :done")
        read_until_closed(alice)
        wait_for_log(running, "disconnected alice")
    finally:
        stop_server(running)
    entries = [json.loads(line) for line in running.log().splitlines()]
    assert entries and all({"time", "level", "message"} <= set(entry) for entry in entries)
    messages = [entry["message"] for entry in entries]
    assert "connection from 127.0.0.1 (tcp)" in messages
    assert "registered alice!~alice@127.0.0.1 (tcp)" in messages
    assert "disconnected alice (127.0.0.1): Quit: done" in messages
    assert {entry["level"] for entry in entries} == {"info"}


def test_autojoin_empty_disables_it_and_several_channels_can_be_given(tmp_path: Path) -> None:
    running = start_server(tmp_path, "--autojoin", "")
    try:
        loner = running.client()
        loner.register("loner")
        loner.expect("376")
        assert loner.nothing_more(0.3) == []
        assert not any(msg.command == "JOIN" for msg in loner.received)
        loner.send("JOIN #lobby")
        loner.expect("366")
    finally:
        stop_server(running)
    (tmp_path / "two").mkdir()
    running = start_server(tmp_path / "two", "--autojoin", "#one", "--autojoin", "#two")
    try:
        client = running.client()
        client.register("both")
        client.expect("366", p1="#one")
        client.expect("366", p1="#two")
    finally:
        stop_server(running)


def test_hundreds_of_clients_land_in_lobby_and_one_message_reaches_all(tmp_path: Path) -> None:
    count = 300
    running = start_server(tmp_path, "--max-connections-per-ip", str(count + 10))
    started = time.monotonic()
    clients: list[RawClient] = []
    try:
        for i in range(count):
            client = RawClient(running.host, running.port, timeout_s=30)
            client.send_raw(f"NICK user{i}\r\nUSER u{i} 0 * :user {i}\r\n".encode())
            clients.append(client)
        for client in clients:
            client.expect("366", p1="#lobby", timeout_s=30)
        last = clients[-1]
        names = {
            name.lstrip("@+") for msg in last.received if msg.command == "353" for name in msg.params[-1].split()
        }
        assert names == {f"user{i}" for i in range(count)}
        clients[0].send("PRIVMSG #lobby :hello, everyone")
        for client in clients[1:]:
            msg = client.expect("PRIVMSG", timeout_s=30)
            assert msg.params == ["#lobby", "hello, everyone"]
        elapsed = time.monotonic() - started
        assert elapsed < 30, elapsed  # about 2 s on a quiet machine
    finally:
        for client in clients:
            client.close()
        stop_server(running)
    assert running.log().count("registered user") == count


class _SignalWatch(io.StringIO):
    """Stdout that notes which signals have handlers at the moment the server says it listens."""

    def __init__(self) -> None:
        super().__init__()
        self.default_at_ready: dict[str, bool] = {}

    def write(self, text: str) -> int:
        if "listening on" in text and not self.default_at_ready:
            for sig in (signal.SIGHUP, signal.SIGTERM):
                handler = signal.getsignal(sig)
                self.default_at_ready[sig.name] = handler == signal.SIG_DFL
        return super().write(text)


def test_signal_handlers_are_in_place_when_the_server_says_it_listens(tmp_path: Path) -> None:
    watch = _SignalWatch()
    config = load_config(None, {"listen": ["127.0.0.1:0"], "web_listen": [], "data_dir": str(tmp_path)})

    async def main() -> None:
        stop = asyncio.Event()
        with contextlib.redirect_stdout(watch):
            task = asyncio.create_task(runtime.run(config, {}, stop))
            deadline = time.monotonic() + 10
            while not watch.default_at_ready and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            stop.set()
            assert await task == 0

    asyncio.run(main())
    assert watch.default_at_ready == {"SIGHUP": False, "SIGTERM": False}


def test_a_reload_applies_a_new_log_level(tmp_path: Path) -> None:
    motd_file = tmp_path / "motd.txt"
    motd_file.write_text("hi\n")
    running = start_server(tmp_path, config_text=config_text(motd_file, 4))
    try:
        joined(running, "early")
        (tmp_path / "salotto.toml").write_text(config_text(motd_file, 9, 'log_level = "warning"\n'))
        running.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        probes = 0
        while "MAXTARGETS=9" not in isupport(joined(running, f"probe{probes}")):  # reloaded (silently now)
            assert time.monotonic() < deadline, "the reload did not apply"
            probes += 1
        late = joined(running, "late")
        late.send("OPER admin wrong")  # logged as a warning, after late's registration
        late.expect("464")
        wait_for_log(running, "failed OPER")
        assert "registered early" in running.log() and "registered late" not in running.log()
    finally:
        stop_server(running)


def test_at_the_open_files_limit_connections_are_refused_and_the_rest_keeps_working(tmp_path: Path) -> None:
    """With few descriptors, the server says at start that max_clients cannot fit, refuses connections past
    its budget with a clear ERROR (counted), and those already in, history reads included, keep working."""
    running = start_server(tmp_path, "--history-replay-lines", "0", "--max-connections-per-ip", "1000",
                           open_files_limit=120)
    try:
        alice = joined(running, "alice")
        alice.send("CAP REQ :draft/chathistory batch server-time")
        alice.expect("CAP")
        alice.send("PRIVMSG #lobby :before the crowd")
        crowd, refusals, held = [], [], []
        for _ in range(80):  # a budget of 120 - 64 = 56 connections: some of these are refused
            client = running.client()
            held.append(client)
            client.send("PING :x")
            line = client.read_line(timeout_s=5.0) or ""
            (refusals if line.startswith("ERROR") else crowd).append(line)
        assert refusals and all("open-files limit" in line for line in refusals), refusals[:3]
        assert len(crowd) + 1 == 56
        alice.send("CHATHISTORY LATEST #lobby * 10")  # the store still opens its readers' connections
        assert alice.expect("PRIVMSG").params[1] == "before the crowd"
    finally:
        stop_server(running)
    log = running.log()
    assert "exceed what the open-files limit 120 allows" in log and "Traceback" not in log
    assert "refusing connections: the open-files limit leaves room for 56" in log


def _closed(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (without waiting: an open, silent one has nothing to read)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@needs_openssl
def test_idle_connections_to_the_tls_port_cannot_take_the_last_descriptors(tmp_path: Path) -> None:
    """The review's reproduction, with 120 descriptors: idle TCP connections to the TLS port (never a
    ClientHello) used to be nobody's count until their handshake, and took every descriptor the process
    had; a plaintext client then got a reset, and nothing was logged. Now each is counted when accepted:
    past max_pending_connections_per_ip from one address, and past the open-files budget (56) from many,
    they are closed at once and logged, and the plaintext client is told why it must wait."""
    cert, key = make_certificate(tmp_path, "server")
    tls_port = free_port()
    running = start_server(tmp_path, "--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert-file", str(cert),
                           "--tls-key-file", str(key), open_files_limit=120)
    idle: list[socket.socket] = []
    try:
        for source in ["127.0.0.2"] * 40 + [f"127.0.1.{i}" for i in range(1, 81)]:
            idle.append(socket.create_connection(("127.0.0.1", tls_port), timeout=10, source_address=(source, 0)))
        # 20 from 127.0.0.2 (max_pending_connections_per_ip) and 36 others fill the budget of 56.
        refused = wait_for_log(running, "before its TLS handshake", count=20 + 44)
        assert sum("127.0.0.2 (tls) before its TLS handshake: Too many connections from your address" in line
                   for line in refused) == 20
        assert sum("Server is full (open-files limit)" in line for line in refused) == 44
        time.sleep(0.2)
        assert [_closed(sock) for sock in idle] == [False] * 20 + [True] * 20 + [False] * 36 + [True] * 44
        plain = running.client()
        # Told at once, without asking: a line sent first could meet the close unread and turn it into
        # a reset that discards the answer.
        assert "Server is full (open-files limit)" in (plain.read_line(timeout_s=5.0) or "")
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 10
        while True:  # the handshakes' places come back as the server sees each socket close
            try:
                joined(running, "plain")
                break
            except (AssertionError, ConnectionError):  # still full: told so, or reset (NICK sent unread)
                assert time.monotonic() < deadline, running.log()[-2000:]
                time.sleep(0.1)
    finally:
        for sock in idle:
            sock.close()
        stop_server(running)
    assert "Traceback" not in running.log()
