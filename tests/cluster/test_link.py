"""The Redis link on its own, against a real redis-server: what it promises its callers when Redis fails."""

from __future__ import annotations

import asyncio
from typing import Any

from salotto.cluster.link import LinkDown, RedisLink
from tests.redis_server import RedisServer


def test_a_command_in_flight_when_redis_dies_is_answered_link_down(redis_server: RedisServer) -> None:
    """A pipeline already sent when the connection breaks: each of its callbacks still runs, once, with
    LinkDown (a JOIN waiting on it would otherwise never be answered, and its client's input held for ever)."""

    async def scenario() -> list[Any]:
        answers: list[Any] = []
        downs: list[str] = []
        link = RedisLink(redis_server.url, on_message=lambda c, d: None, on_up=lambda: None,
                         on_down=downs.append, before_send=lambda: None)
        await link.connect()
        try:
            # Blocks Redis's answer for 5 s: the pipeline is in flight when the server dies.
            link.command(("BLPOP", "salotto:test:never", 5), answers.append)
            await asyncio.sleep(0.3)
            assert answers == []
            await asyncio.to_thread(redis_server.kill)
            for _ in range(100):
                if answers and downs:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # nothing more comes
        finally:
            await link.close()
        return answers

    answers = asyncio.run(scenario())
    assert len(answers) == 1
    assert isinstance(answers[0], LinkDown)


def test_a_queued_command_is_answered_once_when_the_subscribed_connection_breaks(redis_server: RedisServer) -> None:
    """The subscribed connection fails while the command connection is busy: what was queued behind the
    busy pipeline is answered LinkDown, once, and not sent afterwards (its callback would run twice)."""
    import redis

    async def scenario() -> tuple[list[Any], list[Any]]:
        busy: list[Any] = []
        queued: list[Any] = []
        link = RedisLink(redis_server.url, on_message=lambda c, d: None, on_up=lambda: None,
                         on_down=lambda why: None, before_send=lambda: None)
        await link.connect()
        try:
            link.subscribe(["salotto:test:channel"])
            await asyncio.sleep(0.2)
            link.command(("BLPOP", "salotto:test:never", 1), busy.append)
            await asyncio.sleep(0.2)
            link.command(("INCR", "salotto:test:counter"), queued.append)
            with redis.Redis.from_url(redis_server.url) as other:
                other.client_kill_filter(_type="pubsub")
            await asyncio.sleep(2.0)  # the BLPOP times out meanwhile; the writer would go on
            with redis.Redis.from_url(redis_server.url) as other:
                counter = other.get("salotto:test:counter")
        finally:
            await link.close()
        return queued, [counter]

    queued, counter = asyncio.run(scenario())
    assert len(queued) == 1 and isinstance(queued[0], LinkDown)
    assert counter == [None]  # never sent
