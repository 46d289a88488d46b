"""What a modern client uses works across the nodes of a cluster: accounts and SASL, MONITOR, away-notify,
draft/multiline, read markers, registered channels. Real processes, a real redis-server and PostgreSQL."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Node, start_cluster, stop_cluster
from tests.irc_client import RawClient
from tests.redis_server import RedisServer

PASSWORD = "cluster-password"


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer, postgres_url: str) -> Iterator[list[Node]]:
    cluster = start_cluster(tmp_path, 3, redis_server.url, postgres_url, "--cluster-node-timeout-s", "3")
    yield cluster
    stop_cluster(cluster)


def joined(node: Node, nick: str, *, caps: list[str] | None = None) -> RawClient:
    client = RawClient(node.host, node.port, timeout_s=10)
    client.register(nick, caps=caps)
    client.expect("366", p1="#lobby")
    return client


def sasl_login(node: Node, nick: str, account: str, *, caps: tuple[str, ...] = ()) -> RawClient:
    client = RawClient(node.host, node.port, timeout_s=10)
    client.send("CAP LS 302")
    client.send("CAP REQ :" + " ".join(["sasl", *caps]))
    client.expect("CAP", p1="ACK")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{account}\0{PASSWORD}".encode()).decode())
    while True:
        line = client.read_line()
        assert line is not None and " 904 " not in line, f"SASL as {account} failed: {line}"
        if " 903 " in line:
            break
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    client.send("CAP END")
    client.expect("366", p1="#lobby")
    return client


def retry(attempt: Callable[[], object], timeout_s: float = 5.0) -> None:
    """Call ``attempt`` until it stops raising AssertionError (another node hears of a change a moment later)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            attempt()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_an_account_registered_on_one_node_logs_in_on_another(nodes: list[Node]) -> None:
    owner = joined(nodes[0], "owner")
    owner.send(f"REGISTER * * {PASSWORD}")
    owner.expect("REGISTER", p0="SUCCESS")
    # Another node knows the account: SASL there, and WHOIS shows it logged in from both sides.
    retry(lambda: sasl_login(nodes[1], "owner2", "owner"))
    watcher = joined(nodes[2], "watcher")
    watcher.send("WHOIS owner")
    assert watcher.expect("330").params[1:3] == ["owner", "owner"]
    # A channel registered on node a keeps its founder's access on node c.
    owner.send("JOIN #club")
    owner.expect("366", p1="#club")
    owner.send("PRIVMSG ChanServ :REGISTER #club")
    assert "registered" in owner.expect("NOTICE").params[1]

    def info() -> None:
        watcher.send("PRIVMSG ChanServ :INFO #club")
        notices = " ".join(line for line in watcher.nothing_more(0.5) if " NOTICE " in line)
        assert "#club: founder owner" in notices, notices

    retry(info)


def test_monitor_away_notify_and_multiline_reach_other_nodes(nodes: list[Node]) -> None:
    caps = ["message-tags", "server-time", "batch", "away-notify", "draft/multiline", "echo-message"]
    watcher = joined(nodes[1], "watcher", caps=caps)
    watcher.send("MONITOR + later")
    watcher.expect("731")
    later = joined(nodes[0], "later", caps=caps)
    assert watcher.expect("730").params[-1].startswith("later!")
    later.send("AWAY :gone fishing")
    assert watcher.expect("AWAY").params == ["gone fishing"]
    plain = joined(nodes[2], "plain")
    later.send("BATCH +ml draft/multiline #lobby")
    later.send("@batch=ml PRIVMSG #lobby :first line")
    later.send("@batch=ml PRIVMSG #lobby :second line")
    later.send("BATCH -ml")
    opened = watcher.expect("BATCH")
    assert opened.params[1:] == ["draft/multiline", "#lobby"]
    inner = [m.params[-1] for m in watcher.lines_until("BATCH") if m.command == "PRIVMSG"]
    assert inner == ["first line", "second line"]
    assert [plain.expect("PRIVMSG").params[-1] for _ in range(2)] == ["first line", "second line"]
    later.send("QUIT :bye")
    assert watcher.expect("731").params[-1] == "later"


def test_a_read_marker_moves_for_the_accounts_connections_on_every_node(nodes: list[Node]) -> None:
    first = joined(nodes[0], "reader")
    first.send(f"REGISTER * * {PASSWORD}")
    first.expect("REGISTER", p0="SUCCESS")
    caps = ("draft/read-marker", "server-time")
    phone = None

    def log_in() -> None:
        nonlocal phone
        phone = sasl_login(nodes[1], "reader_phone", "reader", caps=caps)

    retry(log_in)
    assert phone is not None
    laptop = sasl_login(nodes[2], "reader_laptop", "reader", caps=caps)
    laptop.send("MARKREAD #lobby timestamp=2026-12-01T10:00:00.000Z")
    laptop.expect("MARKREAD")
    assert phone.expect("MARKREAD").params == ["#lobby", "timestamp=2026-12-01T10:00:00.000Z"]

    def asked() -> None:
        assert phone is not None
        phone.send("MARKREAD #lobby")
        assert phone.expect("MARKREAD").params == ["#lobby", "timestamp=2026-12-01T10:00:00.000Z"]

    retry(asked)
