"""Accounts and registered channels outlive the process: kill -9 under load, restart, all there."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from tests.conftest import RunningServer, start_server, stop_server
from tests.irc_client import RawClient

ACCOUNTS = 5
PASSWORD = "durable-password"
# The chatter's pace: a busy server's worth of messages (all stored), within flood limits set for it.
CHATTER_LINES_PER_S = 500
LIMITS = ["--flood-burst-lines", "1000", "--flood-lines-per-s", "1000"]


def _chatter(server: RunningServer, stop: threading.Event) -> None:
    """Load while the registrations happen: a client saying things as fast as it can (stored in
    history), in a channel of its own so the others' send queues don't fill."""
    client = server.client()
    try:
        client.register("chatter")
        client.send("JOIN 0")
        client.send("JOIN #load")
        client.expect("366", p1="#load")
        i = 0
        while not stop.wait(1 / CHATTER_LINES_PER_S):
            client.send(f"PRIVMSG #load :load {i}")
            i += 1
    except (OSError, ConnectionError):
        pass  # killed under us
    finally:
        client.close()


def _sasl_login(server: RunningServer, nick: str, account: str) -> RawClient:
    client = RawClient(server.host, server.port)
    client.send("CAP LS 302")
    client.send("CAP REQ sasl")
    client.expect("CAP", p1="ACK")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{account}\0{PASSWORD}".encode()).decode())
    client.expect("903")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    client.send("CAP END")
    client.expect("001")
    return client


def test_kill_9_under_load_keeps_every_confirmed_registration(tmp_path: Path, backend: list[str]) -> None:
    server = start_server(tmp_path, *LIMITS, *backend)
    stop = threading.Event()
    load = threading.Thread(target=_chatter, args=(server, stop))
    load.start()
    try:
        founder = server.client()
        founder.register("owner0")
        founder.send(f"REGISTER * * {PASSWORD}")
        founder.expect("REGISTER", p0="SUCCESS")
        founder.send("JOIN #club")
        founder.expect("366", p1="#club")
        founder.send("TOPIC #club :members only")
        founder.expect("TOPIC")
        founder.send("PRIVMSG ChanServ :REGISTER #club")
        assert "is registered to owner0" in founder.expect("NOTICE").params[1]
        confirmed = []
        for i in range(1, ACCOUNTS):
            client = server.client()
            client.register(f"owner{i}")
            client.send(f"REGISTER * * {PASSWORD}")
            client.expect("REGISTER", p0="SUCCESS")
            confirmed.append(f"owner{i}")
        server.process.kill()  # SIGKILL right after the last confirmation, with the chatter still going
        server.process.wait()
    finally:
        stop.set()
        load.join(timeout=10)
        stop_server(server)

    restarted = start_server(tmp_path, *LIMITS, *backend)
    try:
        for name in ["owner0", *confirmed]:
            client = _sasl_login(restarted, f"{name}_back", name)
            client.close()
        founder = _sasl_login(restarted, "owner0", "owner0")
        founder.send("JOIN #club")
        topic = founder.expect("332", p1="#club")
        assert topic.params[2] == "members only"
        names = founder.expect("353")
        assert "@owner0" in names.params[-1].split()
        founder.close()
    finally:
        stop_server(restarted)
