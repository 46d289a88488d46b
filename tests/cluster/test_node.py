

def test_a_corrupt_entry_in_redis_does_not_stop_a_node_following_the_network(redis_server: RedisServer) -> None:
    """A user's entry in Redis that is not JSON (a bug, a hand edit, someone else writing there): the node
    reloading the network's state skips it, and goes on applying the changes that follow (it stayed
    'loading' for ever, buffering every later change)."""
    import redis

    async def scenario(nodes: list[tuple[ClusterNode, Server]]) -> bool:
        (node_a, server_a), (_, server_b) = nodes
        with redis.Redis.from_url(redis_server.url) as direct:
            direct.hset("salotto:users", "zz:1", b"\xff not json")
        node_a._resync()
        await settle()
        bob = registered(server_b, "bob")
        await settle()
        bob.send("JOIN #after")
        await settle()
        channel = server_a.channel_registry.get("#after")
        return channel is not None and channel.size() == 1

    assert run_nodes(redis_server, "ab", scenario)
