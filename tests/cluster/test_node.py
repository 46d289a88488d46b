"""Two cluster nodes in one event loop, on a real redis-server: races made exact by driving both nodes'
servers from the test (lines handled in the same loop pass, Redis's answers awaited in between).

The store is not opened (the nodes' history is None): these tests are about the replica and its answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from salotto.cluster.node import ClusterNode
from salotto.config import load_config
from salotto.server.state import Server
from tests.redis_server import RedisServer
from tests.server.harness import User


def _node(url: str, name: str) -> tuple[ClusterNode, Server]:
    config = load_config(None, {
        "backplane": "redis", "redis_url": url, "node_name": name, "cluster_node_timeout_s": 2,
        # Required by the config of a cluster; never opened here.
        "storage_backend": "postgresql", "storage_url": "postgresql://nobody@127.0.0.1/unused",
    })
    node = ClusterNode(config)
    server = Server(config, nick_registry=node.nicks_view, channel_registry=node.channels_view,
                    backplane=node.backplane)
    server.clustered = True
    node.bind(server)
    return node, server


def run_nodes(redis_server: RedisServer, names: str,
              scenario: Callable[[list[tuple[ClusterNode, Server]]], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        nodes: list[tuple[ClusterNode, Server]] = []
        try:
            for name in names:
                node, server = _node(redis_server.url, name)
                nodes.append((node, server))
                await node.start()
                await node.go_live()
            await asyncio.sleep(0.2)
            return await scenario(nodes)
        finally:
            for node, _ in nodes:
                await node.close()

    return asyncio.run(main())


async def settle() -> None:
    await asyncio.sleep(0.3)


def test_two_nodes_registering_at_once_both_get_their_nicks(redis_server: RedisServer) -> None:
    """Each node numbers its own pending changes: a change of node a must not answer node b's change that
    has the same number (bob was told 433 while Redis gave him the nick)."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[list[str], list[str], bool]:
        alice, bob = User(nodes[0][1], "127.0.0.1"), User(nodes[1][1], "127.0.0.1")
        alice.send("NICK alice")
        bob.send("NICK bob")
        alice.send("USER alice 0 * :Alice")
        bob.send("USER bob 0 * :Bob")
        await settle()
        return alice.numerics(), bob.numerics(), nodes[1][1].nick_registry.holder("bob") is bob.client

    alice, bob, held = run_nodes(redis_server, "ab", scenario)
    assert "001" in alice
    assert "001" in bob and "433" not in bob, bob
    assert held


def registered(server: Server, nick: str) -> User:
    user = User(server, "127.0.0.1")
    user.send(f"NICK {nick}")
    user.send(f"USER {nick} 0 * :{nick}")
    return user


def test_a_join_whose_event_a_reload_covers_is_answered_and_kept(redis_server: RedisServer) -> None:
    """A JOIN sent while the node reloads the network's state (after any node went or came back): the
    reload's snapshot includes the join, its event is skipped, and the client must still be in the
    channel here, with its JOIN line (it was answered nothing, and was a member only for the others)."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[list[str], bool, bool]:
        (node_a, server_a), (_, server_b) = nodes
        alice = registered(server_a, "alice")
        await settle()
        alice.lines()
        node_a._resync()  # what a node gone or back makes every node do
        alice.send("JOIN #y")
        await settle()
        here = server_a.channel_registry.get("#y")
        there = server_b.channel_registry.get("#y")
        return (alice.commands(), here is not None and alice.client in here,
                there is not None and there.size() == 1)

    commands, member_here, member_there = run_nodes(redis_server, "ab", scenario)
    assert member_there
    assert member_here
    assert "JOIN" in commands and "366" in commands, commands


def test_a_client_quitting_mid_join_during_a_reload_leaves_no_member_behind(redis_server: RedisServer) -> None:
    """JOIN, then the connection drops, while the node reloads: the snapshot has the membership of a client that is
    gone. It must be taken out again (else the other nodes and Redis keep a member nobody can remove)."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[int | None, int | None]:
        (node_a, server_a), (_, server_b) = nodes
        alice = registered(server_a, "alice")
        bob = registered(server_b, "bob")
        await settle()
        bob.send("JOIN #z")
        await settle()
        node_a._resync()
        alice.send("JOIN #z")
        server_a.connection_lost(alice.client, "Connection reset by peer")
        await settle()
        here, there = server_a.channel_registry.get("#z"), server_b.channel_registry.get("#z")
        return (here.size() if here is not None else None, there.size() if there is not None else None)

    here, there = run_nodes(redis_server, "ab", scenario)
    assert there == 1  # bob alone
    assert here == 1


def test_a_mode_whose_event_a_reload_covers_changes_the_local_members_status(redis_server: RedisServer) -> None:
    """MODE +v on a member of this node while the node reloads: the snapshot covers the change, and the
    member's status must be the one Redis has here too (it stayed without +v on its own node)."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[str, str]:
        (node_a, server_a), (_, server_b) = nodes
        alice = registered(server_a, "alice")
        await settle()
        alice.send("JOIN #m")
        await settle()
        node_a._resync()
        alice.send("MODE #m +v alice")
        await settle()
        here, there = server_a.channel_registry.get("#m"), server_b.channel_registry.get("#m")
        assert here is not None and there is not None
        remote_alice = server_b.nick_registry.holder("alice")
        assert remote_alice is not None
        return here.status(alice.client), there.status(remote_alice)

    here, there = run_nodes(redis_server, "ab", scenario)
    assert there == "ov"
    assert here == there


def test_a_message_sent_as_redis_comes_back_reaches_the_members_of_its_node(redis_server: RedisServer) -> None:
    """A PRIVMSG handled in the loop pass where the link to Redis is back: this node delivers it to its own
    members when its publication comes back, so the channel must be subscribed before it is published
    (bob got nothing until someone on his node spoke again)."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> list[str]:
        [(node_a, server_a)] = nodes
        alice, bob = registered(server_a, "alice"), registered(server_a, "bob")
        await settle()
        alice.send("JOIN #c")
        await settle()
        bob.send("JOIN #c")
        await settle()
        bob.lines()
        link = node_a.link
        back = link._on_up

        def up_then_speak() -> None:
            back()
            alice.send("PRIVMSG #c :first words after Redis came back")

        link._on_up = up_then_speak
        await asyncio.to_thread(redis_server.stop)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(redis_server.start)
        for _ in range(40):
            await asyncio.sleep(0.1)
            if link.up and not node_a._loading:
                break
        await asyncio.sleep(0.5)
        return [line for line in bob.lines() if "PRIVMSG" in line]

    assert run_nodes(redis_server, "a", scenario) == [
        ":alice!~alice@127.0.0.1 PRIVMSG #c :first words after Redis came back"]


def test_a_message_that_is_not_utf8_crosses_nodes_and_keeps_the_link_up(redis_server: RedisServer) -> None:
    """IRC relays bytes: a line in Latin-1 (kept as lone surrogates inside the server) is published like
    any other. Encoding it strictly failed in the link's writer, which took Redis for broken: every
    client could make its node drop and resynchronise its link at will."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[list[bytes], int, str]:
        (node_a, server_a), (node_b, server_b) = nodes
        alice, bob = registered(server_a, "alice"), registered(server_b, "bob")
        await settle()
        alice.send("JOIN #c")
        await settle()
        bob.send("JOIN #c")
        await settle()
        bob.lines()
        server_a.handle_line(alice.client, b"PRIVMSG #c :caf\xe9 cr\xe8me")
        server_a.handle_line(alice.client, b"TOPIC #c :th\xe9")
        await settle()
        node_b._resync()  # the topic as Redis holds it, read back
        await settle()
        bob.conn.drain()
        got = [line for line in bytes(bob.conn.data).split(b"\r\n")
               if line.startswith((b":alice!~alice@127.0.0.1 PRIVMSG", b":alice!~alice@127.0.0.1 TOPIC"))]
        channel = server_b.channel_registry.get("#c")
        assert channel is not None
        return got, node_a.link.reconnects + node_b.link.reconnects, channel.topic

    got, reconnects, topic = run_nodes(redis_server, "ab", scenario)
    assert got == [b":alice!~alice@127.0.0.1 PRIVMSG #c :caf\xe9 cr\xe8me", b":alice!~alice@127.0.0.1 TOPIC #c :th\xe9"]
    assert reconnects == 0
    assert topic == b"th\xe9".decode("utf-8", "surrogateescape")


def test_a_typing_notice_between_two_users_of_one_node_arrives_at_once(redis_server: RedisServer) -> None:
    """A TAGMSG to a user of the same node is delivered when the node's marker comes back from Redis.
    A typing notice is not kept in history, so nothing else woke the link's writer: the marker waited for
    the next unrelated command (the liveness refresh, up to cluster_node_timeout_s / 3 later)."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> list[str]:
        [(_, server_a)] = nodes
        users = []
        for nick in ("alice", "bob"):
            user = User(server_a, "127.0.0.1")
            user.send("CAP LS 302")
            user.send("CAP REQ :message-tags")
            user.send(f"NICK {nick}")
            user.send(f"USER {nick} 0 * :{nick}")
            user.send("CAP END")
            users.append(user)
        alice, bob = users
        await settle()
        bob.lines()
        waits = []
        for _ in range(5):
            alice.send("@+typing=active TAGMSG bob")
            started = time.monotonic()
            got: list[str] = []
            while not got and time.monotonic() - started < 3:
                await asyncio.sleep(0.005)
                got = [line for line in bob.lines() if "TAGMSG bob" in line]
            waits.append(time.monotonic() - started)
        return waits

    waits = run_nodes(redis_server, "a", scenario)
    assert max(waits) < 0.1, waits  # a round trip to Redis on loopback, not the next unrelated command


def test_a_corrupt_entry_in_redis_does_not_stop_a_node_following_the_network(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    """A user's entry in Redis that is not JSON (a bug, a hand edit, someone else writing there): the node
    reloading the network's state skips it, and goes on applying the changes that follow (it stayed
    'loading' for ever, buffering every later change)."""
    import redis

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> bool:
        (node_a, server_a), (_, server_b) = nodes
        with redis.Redis.from_url(redis_server.url) as direct:
            direct.hset("salotto:users", "zz:1", b"\xff not json")
            direct.hset("salotto:users", "zz:2", b'{"nick": "x"}')
            direct.hset("salotto:users", "zz:3", b'[1, 2]')
            direct.hset("salotto:ch:#lobby", "topic", b"{not json")
        node_a._resync()
        await settle()
        bob = registered(server_b, "bob")
        await settle()
        bob.send("JOIN #after")
        await settle()
        channel = server_a.channel_registry.get("#after")
        return channel is not None and channel.size() == 1

    assert run_nodes(redis_server, "ab", scenario)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an error, not a skipped entry"
    assert any("ignoring a user Redis holds" in r.getMessage() for r in caplog.records)


def test_a_member_kicked_by_another_node_during_a_reload_leaves_the_channel_on_its_own_node(
        redis_server: RedisServer) -> None:
    """KICK of a user of node a by an operator on node b while node a reloads: the reload's snapshot covers
    the kick (its event is skipped), so node a must take its member out too (it stayed in the channel on
    its own node only, still sent the channel's messages published there)."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[bool, bool]:
        (node_a, server_a), (_, server_b) = nodes
        alice, bob = registered(server_a, "alice"), registered(server_b, "bob")
        await settle()
        bob.send("JOIN #k")
        await settle()
        alice.send("JOIN #k")
        await settle()
        node_a._resync()
        bob.send("KICK #k alice :out")
        await settle()
        here, there = server_a.channel_registry.get("#k"), server_b.channel_registry.get("#k")
        assert here is not None and there is not None
        remote_alice = server_b.nick_registry.holder("alice")
        return alice.client in here, remote_alice in there

    member_here, member_there = run_nodes(redis_server, "ab", scenario)
    assert not member_there
    assert not member_here


def test_a_node_starting_does_not_warn_of_missed_changes(redis_server: RedisServer,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A node joining a network that has a history of changes takes them from its first snapshot: no
    'missed state changes' warning (which an operator reads as messages lost) and no second reload."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> int:
        return nodes[1][0].resyncs

    with caplog.at_level(logging.INFO, logger="salotto.cluster"):
        resyncs = run_nodes(redis_server, "ab", scenario)
    assert not [r.getMessage() for r in caplog.records if "missed state changes" in r.getMessage()]
    assert resyncs == 1


def test_a_resynchronisation_refused_by_redis_is_tried_again(redis_server: RedisServer,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """Redis back but refusing writes (full: maxmemory; or a replica after a failover): re-asserting this
    node's state fails. The node says so and tries again until it succeeds (the resync task died with
    'Task exception was never retrieved', and the node never re-asserted its users)."""
    import redis

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[bool, bool]:
        [(node_a, server_a)] = nodes
        registered(server_a, "alice")
        await settle()
        with redis.Redis.from_url(redis_server.url) as direct:
            direct.config_set("maxmemory", "1")
            direct.client_kill_filter(_type="pubsub")
        await asyncio.sleep(1.5)
        refused = not node_a.asserted
        with redis.Redis.from_url(redis_server.url) as direct:
            direct.config_set("maxmemory", "0")
            direct.delete("salotto:nicks")  # what the node must assert again
        for _ in range(50):
            await asyncio.sleep(0.1)
            if node_a.asserted:
                break
        with redis.Redis.from_url(redis_server.url) as direct:
            held = direct.hget("salotto:nicks", "alice") is not None
        return refused, held

    refused, held = run_nodes(redis_server, "a", scenario)
    assert refused
    assert held
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_refused_joins_cost_the_other_nodes_nothing(redis_server: RedisServer) -> None:
    """A JOIN refused on what a node sees (+i, +k, +l, a ban) is checked against Redis, and that check
    changes nothing: it must not be a state change published to every node (a banned client's JOIN flood
    made every node of the network receive and apply one event per attempt)."""

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[int, list[str]]:
        (_, server_a), (node_b, server_b) = nodes
        alice, bob = registered(server_a, "alice"), registered(server_b, "bob")
        await settle()
        bob.send("JOIN #closed")
        await settle()
        bob.send("MODE #closed +i")
        await settle()
        alice.lines()
        received = node_b.link.received
        for _ in range(20):
            alice.send("JOIN #closed")
        await settle()
        return node_b.link.received - received, alice.numerics()

    heard, numerics = run_nodes(redis_server, "ab", scenario)
    assert numerics == ["473"] * 20
    assert heard == 0


def test_a_client_gone_before_its_nick_claim_came_back_leaves_no_nick_behind(redis_server: RedisServer) -> None:
    """The connection drops while its nick claim is on its way to Redis: the nick must be free again on
    every node and in Redis (a ghost would answer 433 to everyone for ever)."""
    import redis

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> tuple[list[str], bool]:
        (_, server_a), (_, server_b) = nodes
        ghost = User(server_a, "127.0.0.1")
        ghost.send("NICK casper")
        ghost.send("USER casper 0 * :Casper")  # the claim goes out now
        server_a.connection_lost(ghost.client, "Connection reset by peer")
        await settle()
        with redis.Redis.from_url(redis_server.url) as direct:
            in_redis = direct.hget("salotto:nicks", "casper") is not None
        again = registered(server_b, "casper")
        await settle()
        return again.numerics(), in_redis

    numerics, in_redis = run_nodes(redis_server, "ab", scenario)
    assert not in_redis
    assert "001" in numerics and "433" not in numerics
