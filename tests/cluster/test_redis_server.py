"""The throwaway Redis server of tests/redis_server.py, which the cluster's tests stand on: it answers the
redis library (sync and asyncio) at its URL, comes back on the same port after a stop or a crash, and keeps
nothing across one (no persistence)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis
import redis.asyncio

from tests.redis_server import RedisServer


def test_answers_the_redis_library_at_its_url(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping() is True
        client.set("greeting", "ciao")
        assert client.get("greeting") == b"ciao"
    finally:
        client.close()


def test_answers_the_asyncio_client(redis_server: RedisServer) -> None:
    async def main() -> object:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            await client.set("k", "v")
            return await client.get("k")
        finally:
            await client.aclose()

    assert asyncio.run(main()) == b"v"


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_comes_back_on_the_same_port_empty(redis_server: RedisServer, how: str) -> None:
    url, first_pid = redis_server.url, redis_server.pid
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.set("kept?", "no")
        getattr(redis_server, how)()
        assert not redis_server.running
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_server.start()
        assert redis_server.url == url and redis_server.pid != first_pid
        assert client.ping() is True  # the same client reconnects to the same address
        assert client.get("kept?") is None
        assert client.dbsize() == 0
    finally:
        client.close()
    redis_server.stop()
    # No snapshot or append-only file was written, at shutdown or before.
    assert not list(redis_server.base.glob("*.rdb")) and not list(redis_server.base.glob("appendonly*"))


def test_cpu_seconds_count_the_servers_work(redis_server: RedisServer) -> None:
    before = redis_server.cpu_seconds()
    assert before >= 0
    client = redis.Redis.from_url(redis_server.url)
    try:
        deadline = time.monotonic() + 30
        while redis_server.cpu_seconds() <= before:  # the kernel counts in clock ticks (10 ms)
            assert time.monotonic() < deadline, "redis-server used no CPU time for thousands of commands"
            pipe = client.pipeline(transaction=False)
            for i in range(5000):
                pipe.set(f"key{i}", "x" * 100)
            pipe.execute()
    finally:
        client.close()
    redis_server.stop()
    with pytest.raises(RuntimeError, match="not running"):
        redis_server.cpu_seconds()


def test_a_start_that_cannot_listen_says_why(redis_server: RedisServer) -> None:
    redis_server.stop()
    # Someone else took the port meanwhile.
    with socket.create_server(("127.0.0.1", redis_server.port)), \
            pytest.raises(RuntimeError, match=f"(?s)exited with .*{redis_server.port}: bind: Address already in use"):
        redis_server.start()
    assert not redis_server.running
    redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping() is True
    finally:
        client.close()
