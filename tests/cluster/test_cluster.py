"""Three salotto nodes on one Redis and one PostgreSQL database act as one network: what a user on any node
sees is what it would see on a single server. Real processes, a real redis-server and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import Node, cluster_args, kill_node, start_cluster, start_node, stop_cluster, wait_for_log
from tests.irc_client import RawClient
from tests.redis_server import RedisServer

# A node not heard of for this long is taken for dead (short, so the tests need not wait 10 s).
NODE_TIMEOUT_S = 2.0


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer, postgres_url: str) -> Iterator[list[Node]]:
    cluster = start_cluster(tmp_path, 3, redis_server.url, postgres_url,
                            "--cluster-node-timeout-s", str(NODE_TIMEOUT_S))
    yield cluster
    stop_cluster(cluster)


def joined(node: Node, nick: str, *, caps: list[str] | None = None) -> RawClient:
    client = RawClient(node.host, node.port, timeout_s=10)
    client.register(nick, caps=caps)
    client.expect("366", p1="#lobby")
    return client


def names(client: RawClient, channel: str = "#lobby") -> set[str]:
    client.send(f"NAMES {channel}")
    found: set[str] = set()
    for msg in client.lines_until("366"):
        if msg.command == "353":
            found.update(word.lstrip("@+") for word in msg.params[-1].split())
    return found


def wait_for_names(clients: list[RawClient], expected: set[str], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = [names(c) for c in clients]
        if all(s == expected for s in seen):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"NAMES never agreed on {sorted(expected)}: {[sorted(s) for s in seen]}")
        time.sleep(0.2)


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "never came true"
        time.sleep(0.05)


def _topic(client: RawClient, channel: str) -> str | None:
    client.send(f"TOPIC {channel}")
    while True:
        line = client.read_line()
        assert line is not None
        if f" 331 {client.nick} {channel} " in line:
            return None
        if f" 332 {client.nick} {channel} " in line:
            client.expect("333")
            return line.split(" :", 1)[1]


def test_people_on_three_nodes_chat_as_on_one_server(nodes: list[Node]) -> None:
    a, b, c = (joined(node, nick) for node, nick in zip(nodes, ("ann", "ben", "cat"), strict=True))
    wait_for_names([a, b, c], {"ann", "ben", "cat"})
    a.send("PRIVMSG #lobby :hello from node a")
    for other in (b, c):
        msg = other.expect("PRIVMSG")
        assert (msg.source, msg.params) == ("ann!~ann@127.0.0.1", ["#lobby", "hello from node a"])
    c.send("PRIVMSG ben :a private word")
    assert b.expect("PRIVMSG").params == ["ben", "a private word"]
    b.send("NOTICE cat :a notice")
    assert c.expect("NOTICE").params == ["cat", "a notice"]
    # WHOIS, WHO and ISON of a user on another node.
    a.send("WHOIS cat")
    assert a.expect("311").params[1:4] == ["cat", "~cat", "127.0.0.1"]
    a.send("ISON cat nobody ben")
    assert a.expect("303").params[-1].split() == ["cat", "ben"]
    a.send("WHO c*")
    assert a.expect("352").params[5] == "cat"
    # A new channel, its topic and a part, across nodes.
    b.send("JOIN #side")
    b.expect("366", p1="#side")
    c.send("JOIN #side")
    assert b.expect("JOIN").source.startswith("cat!")
    b.send("TOPIC #side :side talk")
    assert c.expect("TOPIC").params == ["#side", "side talk"]
    # A node with no member there hears of the change a moment later (its copy of the network's state).
    eventually(lambda: _topic(a, "#side") == "side talk")
    a.send("LIST #side")
    assert a.expect("322").params[1:3] == ["#side", "2"]
    c.send("PART #side :later")
    assert b.expect("PART").params == ["#side", "later"]
    # A nick change and a quit are seen on every node; the nick is free again after.
    a.send("NICK anna")
    for other in (b, c):
        assert other.expect("NICK").params == ["anna"]
    b.send("QUIT :off I go")
    for other in (a, c):
        assert other.expect("QUIT").params == ["Quit: off I go"]
    wait_for_names([a, c], {"anna", "cat"})
    again = joined(nodes[2], "ben")
    assert again.nick == "ben"

    def lusers() -> bool:
        a.send("LUSERS")
        return a.expect("251").params[-1] == "There are 3 users and 0 invisible on 2 servers"

    eventually(lusers)


def test_two_clients_racing_for_one_nick_on_two_nodes_exactly_one_wins(nodes: list[Node]) -> None:
    racers = [RawClient(nodes[0].host, nodes[0].port, timeout_s=10),
              RawClient(nodes[1].host, nodes[1].port, timeout_s=10)]
    for i, racer in enumerate(racers):
        racer.register(f"racer{i}")
    for round_ in range(15):
        nick = f"prize{round_}"
        start = threading.Barrier(2)

        def go(racer: RawClient, start: threading.Barrier = start, nick: str = nick) -> None:
            start.wait()
            racer.send(f"NICK {nick}")

        threads = [threading.Thread(target=go, args=(r,)) for r in racers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcomes = []
        for racer in racers:
            while True:
                line = racer.read_line()
                assert line is not None, f"no answer to NICK {nick}"
                if " NICK " in line and line.startswith(f":{racer.nick}!"):
                    outcomes.append("won")
                    racer.nick = nick
                    break
                if " 433 " in line:
                    outcomes.append("lost")
                    break
        assert sorted(outcomes) == ["lost", "won"], (nick, outcomes)


def test_channel_modes_hold_for_members_of_every_node(nodes: list[Node]) -> None:
    op = joined(nodes[0], "opal")
    op.send("JOIN #guarded")
    op.expect("366", p1="#guarded")
    other = joined(nodes[1], "otto")
    third = joined(nodes[2], "tess")
    # +k: the wrong key is refused on another node, the right one lets in.
    op.send("MODE #guarded +k sesame")
    op.expect("MODE")
    other.send("JOIN #guarded wrong")
    other.expect("475", p1="#guarded")
    other.send("JOIN #guarded sesame")
    other.expect("366", p1="#guarded")
    # +l 2: full now, for a node that had never seen the channel's members.
    op.send("MODE #guarded +l 2")
    assert other.expect("MODE").params == ["#guarded", "+l", "2"]
    third.send("JOIN #guarded sesame")
    third.expect("471", p1="#guarded")
    # +m: otto (no voice) may not speak; voiced, he may, and tess sees the MODE.
    op.send("MODE #guarded -l")
    op.expect("MODE", p1="-l")
    third.send("JOIN #guarded sesame")
    third.expect("366", p1="#guarded")
    op.send("MODE #guarded +m")
    third.expect("MODE", p1="+m")
    # (A node applies a change before it delivers the line that tells of it: once otto has the MODE line,
    # his node has the mode. Seen from another node, it may be a moment later.)
    other.expect("MODE", p1="+m")
    other.send("PRIVMSG #guarded :can I talk?")
    other.expect("404", p1="#guarded")
    op.send("MODE #guarded +v otto")
    assert third.expect("MODE").params == ["#guarded", "+v", "otto"]
    other.expect("MODE", p1="+v")
    other.send("PRIVMSG #guarded :now I can")
    assert third.expect("PRIVMSG").params == ["#guarded", "now I can"]
    # +b on a member of another node: it may not speak; a ban keeps a newcomer out.
    op.send("MODE #guarded -m+b tess!*@*")
    third.expect("MODE")
    third.send("PRIVMSG #guarded :hello?")
    third.expect("404", p1="#guarded")
    op.send("KICK #guarded tess :out")
    assert third.expect("KICK").params == ["#guarded", "tess", "out"]
    assert other.expect("KICK").params[1] == "tess"
    third.send("JOIN #guarded sesame")
    third.expect("474", p1="#guarded")
    # +i with an invitation across nodes.
    op.send("MODE #guarded -b+i tess!*@*")
    assert other.expect("MODE").params == ["#guarded", "-b+i", "tess!*@*"]
    late = joined(nodes[2], "ivy")
    late.send("JOIN #guarded sesame")
    late.expect("473", p1="#guarded")
    op.send("INVITE ivy #guarded")
    late.expect("INVITE")
    late.send("JOIN #guarded sesame")
    late.expect("366", p1="#guarded")


def test_history_is_shared_and_message_ids_are_unique(nodes: list[Node]) -> None:
    caps = ["draft/chathistory", "message-tags", "server-time", "batch"]
    a = joined(nodes[0], "hana", caps=caps)
    b = joined(nodes[1], "hugo", caps=caps)
    for i in range(5):
        a.send(f"PRIVMSG #lobby :from a {i}")
        b.send(f"PRIVMSG #lobby :from b {i}")
    b.expect("PRIVMSG", p0="#lobby", p1="from a 4")
    late = joined(nodes[2], "lena", caps=caps)
    deadline = time.monotonic() + 10
    while True:
        late.send("CHATHISTORY LATEST #lobby * 50")
        texts = [m.params[-1] for m in late.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"]
        if len(texts) >= 10 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(texts) == sorted([f"from a {i}" for i in range(5)] + [f"from b {i}" for i in range(5)])
    late.send("CHATHISTORY LATEST #lobby * 50")
    ids = [m.tags["msgid"] for m in late.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"]
    assert len(set(ids)) == len(ids) == 10


def test_every_member_sees_a_channel_in_one_order(nodes: list[Node]) -> None:
    speakers = [joined(node, f"say{i}") for i, node in enumerate(nodes)]
    listeners = [joined(node, f"hear{i}") for i, node in enumerate(nodes)]
    everyone = {f"say{i}" for i in range(3)} | {f"hear{i}" for i in range(3)}
    wait_for_names(listeners, everyone)
    count = 40

    def talk(i: int, speaker: RawClient) -> None:
        for n in range(count):
            speaker.send(f"PRIVMSG #lobby :{i}-{n}")

    threads = [threading.Thread(target=talk, args=(i, s)) for i, s in enumerate(speakers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    orders = []
    for listener in listeners:
        got: list[str] = []
        while len(got) < 3 * count:
            got.append(listener.expect("PRIVMSG").params[-1])
        orders.append(got)
    assert orders[0] == orders[1] == orders[2]
    for i in range(3):  # and each speaker's own messages in the order it sent them
        assert [t for t in orders[0] if t.startswith(f"{i}-")] == [f"{i}-{n}" for n in range(count)]


def test_an_operator_kills_a_user_of_another_node(tmp_path: Path, redis_server: RedisServer,
                                                   postgres_url: str) -> None:
    from salotto.passwords import hash_password

    config = f'[opers.root]\npassword_hash = "{hash_password("rootpw")}"\n'
    cluster = start_cluster(tmp_path, 2, redis_server.url, postgres_url, config_text=config)
    try:
        oper = joined(cluster[0], "boss")
        victim = joined(cluster[1], "vic")
        oper.send("OPER root rootpw")
        oper.expect("381")
        oper.send("KILL vic :spam")
        assert "Killed" in victim.expect("ERROR").params[-1]
        assert oper.expect("QUIT").source.startswith("vic!")
    finally:
        stop_cluster(cluster)


def test_a_dead_node_is_noticed_and_the_survivors_agree(nodes: list[Node]) -> None:
    caps = ["draft/chathistory", "message-tags", "server-time", "batch"]
    a = joined(nodes[0], "alma", caps=caps)
    b = joined(nodes[1], "bert", caps=caps)
    c = joined(nodes[2], "cleo", caps=caps)
    wait_for_names([a, b, c], {"alma", "bert", "cleo"})
    received: list[str] = []
    for i in range(10):
        c.send(f"PRIVMSG #lobby :c says {i}")
    for _ in range(10):
        received.append(a.expect("PRIVMSG").params[-1])
    killed_at = time.monotonic()
    kill_node(nodes[2])
    for survivor in (a, b):
        quit_ = survivor.expect("QUIT", timeout_s=NODE_TIMEOUT_S + 8)
        assert quit_.source.startswith("cleo!")
        assert quit_.params == ["c went away"]
    assert time.monotonic() - killed_at < NODE_TIMEOUT_S + 5
    wait_for_names([a, b], {"alma", "bert"})
    # The nick is free again, and what anyone received is in history.
    d = joined(nodes[0], "cleo", caps=caps)
    d.send("CHATHISTORY LATEST #lobby * 50")
    stored = [m.params[-1] for m in d.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"]
    assert set(received) <= set(stored)


def test_redis_gone_for_five_seconds_loses_nothing_received_and_the_network_converges(
        nodes: list[Node], redis_server: RedisServer) -> None:
    caps = ["draft/chathistory", "message-tags", "server-time", "batch"]
    clients = [joined(node, f"r{i}", caps=caps) for i, node in enumerate(nodes)]
    wait_for_names(clients, {"r0", "r1", "r2"})
    clients[1].send("JOIN #own")
    clients[1].expect("366", p1="#own")
    redis_server.stop()
    sent = []
    for i, client in enumerate(clients):  # while Redis is away: local users still hear each other
        client.send(f"PRIVMSG #lobby :during {i}")
        sent.append(f"during {i}")
    clients[0].send("NICK r0new")
    clients[0].expect("437")
    clients[1].send("TOPIC #own :not now")
    assert clients[1].expect("437").params[1] == "#own"
    time.sleep(5)
    redis_server.start()
    # The network converges: every node is back on Redis, the same NAMES everywhere, and it works again.
    for node in nodes:
        wait_for_log(node, "back in step with the network", timeout_s=10)
    wait_for_names(clients, {"r0", "r1", "r2"}, timeout_s=15)
    clients[1].send("PRIVMSG #lobby :after")
    assert clients[2].expect("PRIVMSG", p0="#lobby").params[-1] == "after"
    late = joined(nodes[0], "reader", caps=caps)
    late.send("CHATHISTORY LATEST #lobby * 50")
    stored = [m.params[-1] for m in late.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"]
    assert set(sent) <= set(stored)


def test_a_node_that_cannot_reach_redis_says_so(tmp_path: Path, postgres_url: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "salotto", "serve", "--listen", "127.0.0.1:0", "--web-listen", "",
         "--data-dir", str(tmp_path / "data"), "--backplane", "redis", "--redis-url", "redis://:pw@127.0.0.1:1/0",
         "--storage-backend", "postgresql", "--storage-url", postgres_url],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "config key 'redis_url'" in result.stderr and "cannot join the cluster" in result.stderr
    assert ":***@" in result.stderr and ":pw@" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_node_that_stops_cleanly_or_restarts_at_once_is_not_waited_for(
        tmp_path: Path, redis_server: RedisServer, postgres_url: str) -> None:
    # A long timeout: what the others see must come from the stop and the restart, not from the timeout.
    cluster = start_cluster(tmp_path, 3, redis_server.url, postgres_url, "--cluster-node-timeout-s", "60")
    try:
        a = joined(cluster[0], "stays")
        others = [joined(cluster[1], "stopper"), joined(cluster[2], "crasher")]
        wait_for_names([a, *others], {"stays", "stopper", "crasher"})
        cluster[1].process.terminate()
        quit_ = a.expect("QUIT", timeout_s=5)
        assert (quit_.source.split("!")[0], quit_.params) == ("stopper", ["Server shutting down (SIGTERM)"])
        # Killed, and started again with the same name before anyone took it for dead: its earlier
        # life's users go at once.
        kill_node(cluster[2])
        cluster[2] = start_node(tmp_path, "c", *cluster_args("c", redis_server.url, postgres_url),
                                "--cluster-node-timeout-s", "60")
        quit_ = a.expect("QUIT", timeout_s=10)
        assert (quit_.source.split("!")[0], quit_.params) == ("crasher", ["c restarted"])
        assert joined(cluster[2], "crasher").nick == "crasher"
    finally:
        stop_cluster(cluster)


def test_what_a_dead_node_had_not_stored_yet_is_stored_by_another(
        tmp_path: Path, redis_server: RedisServer, postgres_url: str) -> None:
    caps = ["draft/chathistory", "message-tags", "server-time", "batch"]
    # Node b stores its journal into the database only every 60 s: when it dies, what it relayed is in its
    # journal (on its own disk, gone with the machine) and in its copy in Redis.
    a_node = start_node(tmp_path, "a", *cluster_args("a", redis_server.url, postgres_url),
                        "--cluster-node-timeout-s", str(NODE_TIMEOUT_S))
    b_node = start_node(tmp_path, "b", *cluster_args("b", redis_server.url, postgres_url),
                        "--cluster-node-timeout-s", str(NODE_TIMEOUT_S), "--history-store-interval-s", "60",
                        "--history-store-max-messages", "100000")
    try:
        reader = joined(a_node, "reader", caps=caps)
        writer = joined(b_node, "writer")
        for i in range(20):
            writer.send(f"PRIVMSG #lobby :unstored {i}")
        received = [reader.expect("PRIVMSG").params[-1] for _ in range(20)]
        kill_node(b_node)
        reader.expect("QUIT", timeout_s=NODE_TIMEOUT_S + 8)

        def stored() -> bool:
            reader.send("CHATHISTORY LATEST #lobby * 50")
            got = [m.params[-1] for m in reader.lines_until("BATCH", skip_first=True) if m.command == "PRIVMSG"]
            return set(received) <= set(got)

        eventually(stored, timeout_s=10)
    finally:
        stop_cluster([a_node, b_node])


def test_metrics_show_the_backplane(tmp_path: Path, redis_server: RedisServer, postgres_url: str) -> None:
    import urllib.request

    cluster = start_cluster(tmp_path, 2, redis_server.url, postgres_url, "--web-listen", "127.0.0.1:0")
    try:
        a = joined(cluster[0], "metered")
        other = joined(cluster[1], "other")
        a.send("PRIVMSG #lobby :counted")
        a.send("LUSERS")
        a.expect("251")

        def metrics() -> dict[str, float]:
            text = urllib.request.urlopen(f"http://127.0.0.1:{cluster[0].web_port}/metrics", timeout=5).read()
            return {line.split()[0]: float(line.split()[1]) for line in text.decode().splitlines()
                    if line.startswith("salotto_backplane") or line.startswith("salotto_cluster")}

        other.expect("PRIVMSG")
        eventually(lambda: metrics().get("salotto_cluster_users") == 2)
        seen = metrics()
        assert seen["salotto_backplane_up"] == 1 and seen["salotto_cluster_nodes"] == 2
        assert seen["salotto_backplane_published_total"] >= 1 and seen["salotto_backplane_received_total"] >= 1
        assert seen["salotto_backplane_pipelines_total"] >= 1 and seen["salotto_backplane_publish_seconds_total"] > 0
        assert seen["salotto_backplane_reconnects_total"] == 0
    finally:
        stop_cluster(cluster)
