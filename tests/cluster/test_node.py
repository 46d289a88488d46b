"""Two cluster nodes in one event loop, on a real redis-server: races made exact by driving both nodes'
servers from the test (lines handled in the same loop pass, Redis's answers awaited in between).

The store is not opened (the nodes' history is None): these tests are about the replica and its answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

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
